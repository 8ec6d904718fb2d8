"""`tinystudio` command line: a thin layer over the engine. Speaks JSON with --json.

User errors (engine.errors.TinyStudioError) print one line on stderr and exit 2; never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from app.commands.challenge import add_parser as add_challenge_parser
from app.commands.compress import cmd_compress
from app.commands.datasets import cmd_datasets
from app.commands.diff import cmd_diff
from app.commands.export import cmd_export
from app.commands.grade import add_parser as add_grade_parser
from app.commands.inspect import cmd_inspect, inspect_report  # noqa: F401 - the API
from app.commands.mcus import cmd_mcus
from app.commands.profile import cmd_profile
from app.commands.run import cmd_run
from app.commands.search import add_parser as add_search_parser
from app.commands.sessions import add_parser as add_sessions_parser
from app.commands.studio import cmd_studio, default_db_path, studio_command  # noqa: F401 - the API
from app.commands.train import cmd_train
from app.commands.users import add_parser as add_users_parser
from app.commands.zoo import cmd_zoo
from engine import __version__
from engine.deployed import PRECISIONS
from engine.errors import TinyStudioError

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinystudio", description="Design neural networks for microcontrollers.")
    p.add_argument("--version", action="version", version=f"tinystudio {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_cmd(name: str, help_: str):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("model", metavar="MODEL", help="a .onnx, .tflite or .pt2 file, or zoo:NAME[?k=v&...]")
        sp.add_argument("--input-shape", action="append", metavar="[NAME:]N,C,H,W",
                        help="fix dynamic input dims (repeat for several inputs)")
        sp.add_argument("--json", action="store_true", help="print JSON")
        return sp

    model_cmd("inspect", "Print the graph: layers, shapes, MACs, parameters.").set_defaults(fn=cmd_inspect)
    r = model_cmd("run", "Run the model with the reference executor on inputs from .npy/.npz files.")
    r.add_argument("--input", action="append", metavar="[NAME=]X.npy",
                   help="input array (.npy, or .npz with one array per input name)")
    r.add_argument("--dataset", metavar="NAME|PATH",
                   help="try the model on a sample of this data set (validation split): prediction, class scores "
                        "and true label, float and int8")
    r.add_argument("--sample", type=int, metavar="I", help="the validation sample to try (default: a random one)")
    r.add_argument("--output", metavar="Y.npy", help="save the output (.npy, or .npz for several outputs)")
    r.add_argument("--float", action="store_true",
                   help="run a quantized model with the float reference on dequantized values instead of the "
                        "int8 kernels")
    r.set_defaults(fn=cmd_run)
    pr = model_cmd("profile", "Per-layer profile: memory plan, and latency, energy and fit on MCUs (estimates).")
    pr.add_argument("--mcu", action="append", metavar="ID", help="target MCU (repeatable; see `tinystudio mcus`)")
    pr.add_argument("--runtime", metavar="ID",
                    help="runtime profile (default: tflm-cmsis-nn on Arm cores, esp-nn on ESP32 parts)")
    pr.add_argument("--precision", choices=PRECISIONS, default="as-is",
                    help="as-is (default): the model as given; int8: as deployed, the graph the export generates "
                         "C from (BN folded, activations fused, int8); float32: a float model as is, an int8 one "
                         "dequantized")
    pr.add_argument("--training", metavar="SPEC",
                    help="profile one on-device training step instead: all, last:K, bias or sparse:BYTES "
                         "(peak training SRAM over forward + backward, flash, time per step)")
    pr.add_argument("--data", metavar="DATASET", help="with --training sparse:BYTES: the dataset the planner's "
                    "fine-tuning probes use (default: keywords)")
    add_schedule_options(pr)
    pr.set_defaults(fn=cmd_profile)
    ex = model_cmd("export", "Quantize (if float), generate C, verify it and write a firmware bundle (zip).")
    ex.add_argument("--mcu", required=True, metavar="ID", help="target MCU (see `tinystudio mcus`)")
    ex.add_argument("--out", required=True, metavar="BUNDLE.zip", help="the zip file to write")
    ex.add_argument("--verify", choices=("none", "host", "qemu"), default="host",
                    help="compare the C with the int8 reference: host gcc (default) or QEMU for the MCU's core")
    ex.add_argument("--inputs", type=int, default=20, metavar="N",
                    help="random inputs to verify besides the golden one (default 20)")
    ex.add_argument("--name", metavar="NAME",
                    help="name of the bundle and its C library (made a C identifier; default: the model file's "
                         "or zoo model's name)")
    ex.add_argument("--calibration", metavar="FILE.npz",
                    help="calibration samples for quantizing a float model (.npy, or .npz with one array per input)")
    ex.add_argument("--wide-weights", action="store_true",
                    help="store conv weights pre-widened to int16: fewer instructions per MAC on Cortex-M4/M7/M33 "
                         "DSP kernels for about twice their flash (the report gives the extra bytes)")
    ex.add_argument("--training", metavar="SPEC",
                    help="also export the on-device training step <name>_train_step for SPEC: all, last:K, bias or "
                         "sparse:BYTES (fully connected layers, convs, depthwise convs), verified against PyTorch")
    ex.add_argument("--data", metavar="DATASET", help="with --training sparse:BYTES: the dataset the planner's "
                                                      "probes fine-tune on (default keywords)")
    add_schedule_options(ex)
    ex.set_defaults(fn=cmd_export)
    mc = sub.add_parser("mcus", help="List the MCUs and runtime profiles.")
    mc.add_argument("--json", action="store_true")
    mc.set_defaults(fn=cmd_mcus)
    z = sub.add_parser("zoo", help="List the model zoo and its parameters.")
    z.add_argument("--json", action="store_true")
    z.set_defaults(fn=cmd_zoo)
    df = model_cmd("diff", "What changed from MODEL to OTHER (layers added, removed, rewired; attributes, channels, "
                           "weight types), as the studio's History says it.")
    df.add_argument("other", metavar="OTHER", help="the second model (same forms as MODEL)")
    df.set_defaults(fn=cmd_diff)
    tr = model_cmd("train", "Train a model on a data set (CPU, deterministic with --seed); write .onnx or .tsgraph.")
    tr.add_argument("--dataset", required=True, metavar="NAME|PATH",
                    help="a built-in (see `tinystudio datasets`) or a .npz, .csv or .zip file")
    tr.add_argument("--epochs", type=int, default=20, help="most epochs to run (default 20)")
    tr.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 0.003)")
    tr.add_argument("--batch-size", type=int, default=32, help="default 32")
    tr.add_argument("--seed", type=int, default=0, help="split, initialization and shuffling seed (default 0)")
    tr.add_argument("--patience", type=int, default=5,
                    help="stop after this many epochs without a better validation loss (0: never; default 5)")
    tr.add_argument("--out", required=True, metavar="FILE", help="the trained model: .onnx or .tsgraph")
    tr.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    tr.set_defaults(fn=cmd_train)
    cp = model_cmd("compress", "Run one compression action and print what it buys and costs (before/after).")
    cp.add_argument("--action", required=True, metavar="NAME",
                    help="fold-bn, quantize-int8, qat-int8, mixed-precision, ternary, prune-magnitude, "
                         "prune-channels, low-rank, distill, early-exit")
    cp.add_argument("--param", action="append", metavar="KEY=VALUE", help="action parameter (repeatable)")
    cp.add_argument("--dataset", metavar="NAME|PATH",
                    help="a built-in (see `tinystudio datasets`) or a .npz, .csv or .zip file; every action but "
                         "fold-bn needs one")
    cp.add_argument("--out", required=True, metavar="FILE", help="the new model: .onnx or .tsgraph")
    cp.add_argument("--seed", type=int, default=0, help="split, training and sampling seed (default 0)")
    cp.add_argument("--train-epochs", type=int, default=20,
                    help="a zoo: MODEL is trained on the data set first for at most this many epochs (default 20)")
    cp.add_argument("--no-train", action="store_true", help="do not train a zoo: MODEL before compressing")
    cp.set_defaults(fn=cmd_compress)
    ds = sub.add_parser("datasets", help="List the built-in data sets.")
    ds.add_argument("--json", action="store_true")
    ds.set_defaults(fn=cmd_datasets)
    add_search_parser(sub)
    add_grade_parser(sub)
    add_users_parser(sub)
    add_sessions_parser(sub)
    add_challenge_parser(sub)
    s = sub.add_parser("studio", help="Start the web studio.")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 to serve a lab network)")
    s.add_argument("--db", metavar="PATH", help="DuckDB file (default: in the user's data folder)")
    s.add_argument("--scheduler", metavar="ADDRESS", help="run the studio's heavy work (training, compression, "
                   "export, search trials) on the Dask cluster at ADDRESS, e.g. tcp://HOST:8786 (default: "
                   "$TINYSTUDIO_SCHEDULER, else local worker processes)")
    s.set_defaults(fn=cmd_studio)
    return p


def add_schedule_options(sp) -> None:
    # Plain strings: the commands check them and say what is wrong in one line (exit 2).
    sp.add_argument("--schedule", default="layer", metavar="KIND",
                    help="how the layers run: layer (default), inplace, patch, fused or auto (the smallest arena "
                         "within --max-mac-overhead)")
    sp.add_argument("--max-mac-overhead", default="0.10", metavar="F",
                    help="most recomputed MACs a schedule may add, as a fraction (default 0.10 = 10 %%)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except TinyStudioError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
