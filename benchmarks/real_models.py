"""Real model files (issue 12): every published .tflite file of the tflite-micro examples and of MLPerf Tiny's
trained models, imported, run against the tflite-micro interpreter and exported, as a new user would.

Per file (`check_model`):
- import: `load_tflite` (ok, or the one-line error it gives);
- reference vs oracle: our reference (run_int8 for a quantized file, run_graph for a float one) against the
  tflite-micro interpreter on N random inputs (int8 inputs uniform over [-128, 127]; float inputs of an int8
  model with float edges on the input grid, so both sides quantize to the same integers; float models N(0, 1)).
  Integer outputs: how many inputs give the interpreter's bytes; float outputs: the largest absolute difference;
- export vs oracle: `export_model` (what `tinystudio export` runs: PTQ for a float file, C generation, bundle).
  An int8 file's C is built on the host and run on the same N inputs; its bytes are compared with the
  interpreter's (through the model's QUANTIZE/DEQUANTIZE edges where it has float ones). A float file is
  quantized (synthetic calibration), so the C is compared with our int8 reference (the export's own check).
Every failure is a one-line message; an exception that is not a TinyStudioError is reported as a CRASH (a bug).

Run: .venv/bin/python benchmarks/real_models.py [--inputs N] [--only SUBSTRING] [--max-kb 2500] [--no-export]
Prints a markdown table (the README's "Real model files") and the failures grouped by cause.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.errors import TinyStudioError  # noqa: E402
from engine.ir import variables  # noqa: E402

MIRRORS = {"tflite-micro": Path("/work/.mirror/tensorflow+tflite-micro/repo"),
           "mlcommons-tiny": Path("/work/.mirror/mlcommons+tiny/repo")}
# Which files of each mirror are "published model files": tflite-micro's examples (and the model files its
# examples and docs use), MLPerf Tiny's trained models. tflite-micro's integration_tests (SEANet int16 layers)
# have their own suite.
PATTERNS = {"tflite-micro": ("tensorflow/lite/micro/examples/", "tensorflow/lite/micro/models/",
                             "python/tflite_micro/", "third_party/xtensa/examples/"),
            "mlcommons-tiny": ("benchmark/training/",)}
MCU = "stm32h743zi"   # 2 MB flash, 1 MB RAM: export never fails for size (fit is reported, not checked here)


@dataclass
class Check:
    file: str                     # path in its repository
    source: str                   # "tflite-micro" | "mlcommons-tiny" | a test data folder
    kind: str = "?"               # int8 | int8, float edges | float | float, int8 weights | ...
    imported: str = ""            # "ok" or the error
    reference: str = ""           # vs tflite-micro
    export: str = ""              # vs tflite-micro (int8) or vs our int8 reference (PTQ of a float file)
    import_ok: bool = False
    reference_exact: bool | None = None   # None: not run / float (see reference_max_diff)
    reference_max_diff: float | None = None
    export_ok: bool = False
    export_exact: bool | None = None
    crashes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def row(self) -> str:
        # the importer's list of supported ops is left out of the table (it is in the README's list)
        imported = self.imported.split("; supported ops:")[0]
        return f"| `{self.file}` | {self.source} | {self.kind} | {imported} | {self.reference} | {self.export} |"


def one_line(e: BaseException, limit: int = 220) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def list_files(max_bytes: int | None = None) -> list[tuple[str, str, int]]:
    """(source, path, bytes) of every model file in the mirrors, in path order."""
    out = []
    for source, repo in MIRRORS.items():
        if not repo.exists():
            continue
        listing = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "-l", "HEAD"], capture_output=True,
                                 text=True, check=True).stdout
        for line in listing.splitlines():
            meta, path = line.split("\t", 1)
            size = meta.split()[3]
            if path.endswith(".tflite") and path.startswith(PATTERNS[source]) and size.isdigit():
                if max_bytes is None or int(size) <= max_bytes:
                    out.append((source, path, int(size)))
    return sorted(out)


def read_mirror(source: str, path: str) -> bytes:
    return subprocess.run(["git", "-C", str(MIRRORS[source]), "show", f"HEAD:{path}"], capture_output=True,
                          check=True).stdout


# ---- the oracle ------------------------------------------------------------------------------------------

def tflm(data: bytes):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(data, arena_size=max(8 << 20, 16 * len(data)))


def make_inputs(graph, n: int, seed: int) -> list[list[np.ndarray]]:
    """n random feeds, one array per graph input (see the module docstring for the distributions)."""
    from engine.codegen.float_edges import split_float_edges

    rng = np.random.default_rng(seed)
    edges = {e.float_name: e for e in split_float_edges(graph)[1]}
    feeds = []
    for _ in range(n):
        feed = []
        for name in graph.inputs:
            t = graph.tensors[name]
            if t.dtype in ("int8", "int16", "uint8"):
                info = np.iinfo(np.dtype(t.dtype))
                feed.append(rng.integers(info.min, info.max + 1, t.shape).astype(t.dtype))
            elif name in edges:
                e = edges[name]
                q = rng.integers(-128, 128, t.shape)
                feed.append((np.float32(e.scale) * (q - e.zero_point)).astype(np.float32))
            else:
                feed.append(rng.normal(0, 1, t.shape).astype(t.dtype))
        feeds.append(feed)
    return feeds


def run_oracle(interp, feeds: list[list[np.ndarray]], n_out: int, stream: bool = False) -> list[list[np.ndarray]]:
    """The interpreter's outputs; each input from the initial state, or with `stream` one stream of all the
    inputs (variable tensors carried over, as the generated C's `<name>_run` carries them)."""
    outs = []
    interp.reset()
    for feed in feeds:
        if not stream:
            interp.reset()   # variable tensors back to their initial values: every input starts a fresh stream
        for i, x in enumerate(feed):
            interp.set_input(x, i)
        interp.invoke()
        outs.append([interp.get_output(i).copy() for i in range(n_out)])
    return outs


def compare(ours: list[list[np.ndarray]], ref: list[list[np.ndarray]]) -> tuple[int, float, str]:
    """(inputs whose every output equals the oracle's, max abs difference, first difference described)."""
    exact, worst, first = 0, 0.0, ""
    for k, (a, b) in enumerate(zip(ours, ref)):
        same = True
        for j, (x, y) in enumerate(zip(a, b)):
            x = np.asarray(x).reshape(np.shape(y))
            d = np.abs(x.astype(np.float64) - np.asarray(y, np.float64))
            worst = max(worst, float(d.max(initial=0.0)))
            if d.any():
                same = False
                if not first:
                    p = np.unravel_index(int(d.argmax()), d.shape)
                    first = f"input {k}, output {j}: {int((d > 0).sum())} of {d.size} differ, at {p} ours {x[p]} tflm {y[p]}"
        exact += same
    return exact, worst, first


# ---- one file -----------------------------------------------------------------------------------------------

def kind_of(graph) -> str:
    from engine.codegen.float_edges import split_float_edges
    from engine.compress.base import is_quantized_graph

    acts = {t.dtype for t in graph.tensors.values() if t.data is None}
    if is_quantized_graph(graph):
        _, ins, outs = split_float_edges(graph)
        bits = "int16" if "int16" in acts else "int8"
        return f"{bits}, float edges" if ins or outs else bits
    if any(t.quant is not None for t in graph.initializers()):
        return "float, int8 weights"
    return "float"


def _reference(graph, feeds):
    from engine.compress.base import is_quantized_graph
    from engine.execute import run_graph
    from engine.int8 import prepare_int8

    if is_quantized_graph(graph):
        plan = prepare_int8(graph)
        return [[plan.run(dict(zip(graph.inputs, f)))[o] for o in graph.outputs] for f in feeds]
    return [[run_graph(graph, dict(zip(graph.inputs, f)))[o] for o in graph.outputs] for f in feeds]


def _c_vs_oracle(graph, lib, feeds, oracle, work: Path) -> tuple[int, float, str]:
    """Build the export's C on the host, feed it the int8 form of every feed (through the float edges'
    grids), compare its int8 outputs with the oracle's (the oracle's float outputs put on the same grids)."""
    from engine.codegen.float_edges import split_float_edges
    from engine.codegen.hostbuild import compile_host, run_host

    _, ins, outs = split_float_edges(graph)
    in_edge, out_edge = {e.int_name: e for e in ins}, {e.int_name: e for e in outs}
    pos_in = {n: i for i, n in enumerate(graph.inputs)}
    pos_out = {n: i for i, n in enumerate(graph.outputs)}
    rows = []
    for feed in feeds:
        parts = []
        for spec in lib.inputs:
            if spec.name in in_edge:
                e = in_edge[spec.name]
                x = feed[pos_in[e.float_name]]
                parts.append(np.clip(np.round(x / np.float32(e.scale)) + e.zero_point, -128, 127).astype(np.int8))
            else:
                parts.append(np.asarray(feed[pos_in[spec.name]], np.int8))
        rows.append(np.concatenate([p.reshape(-1) for p in parts]))
    exe = compile_host(lib, work)
    got = run_host(exe, np.stack(rows))
    ours, ref = [], []
    for g_row, o_row in zip(got, oracle):
        at, mine, theirs = 0, [], []
        for spec in lib.outputs:
            mine.append(g_row[at:at + spec.size])
            at += spec.size
            if spec.name in out_edge:
                e = out_edge[spec.name]
                y = o_row[pos_out[e.float_name]]
                theirs.append((np.round(np.asarray(y, np.float64) / np.float32(e.scale)) + e.zero_point).reshape(-1))
            else:
                theirs.append(np.asarray(o_row[pos_out[spec.name]]).reshape(-1))
        ours.append(mine)
        ref.append(theirs)
    return compare(ours, ref)


def check_model(file: str, data: bytes, source: str = "", n: int = 20, seed: int = 0, export: bool = True,
                mcu: str = MCU) -> Check:
    from engine.importers.tflite_import import load_tflite

    t0 = time.monotonic()
    c = Check(file, source)
    try:
        graph = load_tflite(Path(file).name, data=data)
        c.imported, c.import_ok = "ok", True
        c.kind = kind_of(graph)
    except TinyStudioError as e:
        c.imported = f"fails: {one_line(e)}"
    except Exception as e:  # noqa: BLE001 - a crash is what this table exists to find
        c.imported = f"CRASH {type(e).__name__}: {one_line(e)}"
        c.crashes.append(c.imported)
    if not c.import_ok:
        c.reference = c.export = "—"
        c.seconds = time.monotonic() - t0
        return c
    feeds = make_inputs(graph, n, seed)
    try:
        oracle = run_oracle(tflm(data), feeds, len(graph.outputs))
    except Exception as e:  # noqa: BLE001 - the interpreter's own refusal: export is still checked (vs ours)
        c.reference = f"tflite-micro cannot run it: {one_line(e)}"
        if export:
            _export(c, graph, feeds, None, n, mcu)
        c.seconds = time.monotonic() - t0
        return c
    try:
        exact, worst, first = compare(_reference(graph, feeds), oracle)
        integer = all(np.issubdtype(np.asarray(y).dtype, np.integer) for y in oracle[0])
        c.reference_max_diff = worst
        if integer:
            c.reference_exact = exact == n
            c.reference = f"bit-exact {exact}/{n}" + ("" if exact == n else f" ({first})")
        else:
            c.reference_exact = worst == 0.0 if c.kind.startswith("int") else None
            top = max(float(np.abs(np.asarray(y, np.float64)).max(initial=0.0)) for o in oracle for y in o)
            c.reference = ("identical" if worst == 0 else f"max abs diff {worst:.3g} (outputs up to {top:.3g})"
                           ) + f", {n} inputs"
    except TinyStudioError as e:
        c.reference = f"fails: {one_line(e)}"
    except Exception as e:  # noqa: BLE001
        c.reference = f"CRASH {type(e).__name__}: {one_line(e)}"
        c.crashes.append(c.reference)
    if export:
        if variables(graph):  # a stateful model: the C streams, so its oracle streams too
            oracle = run_oracle(tflm(data), feeds, len(graph.outputs), stream=True)
        _export(c, graph, feeds, oracle, n, mcu)
    c.seconds = time.monotonic() - t0
    return c


def _export(c: Check, graph, feeds, oracle, n: int, mcu: str) -> None:
    from engine.export import export_model

    quantized = c.kind.startswith(("int8", "int16"))
    vs_oracle = quantized and oracle is not None
    try:
        with tempfile.TemporaryDirectory(prefix="real-models-") as td:
            res = export_model(graph, mcu, Path(td) / "m.zip", verify="none" if vs_oracle else "host",
                               n_inputs=0 if vs_oracle else n, name="m")
            c.export_ok = True
            if vs_oracle:
                exact, _, first = _c_vs_oracle(res.graph, res.lib, feeds, oracle, Path(td) / "host")
                c.export_exact = exact == n
                c.export = f"C bit-exact {exact}/{n}" + ("" if exact == n else f" ({first})")
            else:
                v = res.verify
                c.export_exact = bool(v.bit_exact)
                c.export = f"{'' if quantized else 'PTQ int8; '}C = our int8 reference {v.matched}/{v.inputs}"
    except TinyStudioError as e:
        c.export = f"fails: {one_line(e)}"
    except Exception as e:  # noqa: BLE001
        c.export = f"CRASH {type(e).__name__}: {one_line(e)}"
        c.crashes.append(c.export)


# ---- the table ----------------------------------------------------------------------------------------------

HEADER = ("| file | source | kind | import | reference vs tflite-micro | export (C) vs oracle |\n"
          "|---|---|---|---|---|---|")


def cause(c: Check) -> str | None:
    """The failure class of a file (None when everything passed)."""
    for text in (c.imported, c.reference, c.export):
        if text.startswith("CRASH"):
            return "crash (a bug)"
    if not c.import_ok:
        op = re.search(r"unsupported op '([^']+)'", c.imported)
        if op:
            return f"unsupported op: {op.group(1)}"
        dtype = re.search(r"has type (\w+), which TinyStudio does not support", c.imported)
        if dtype:
            return f"unsupported dtype: {dtype.group(1)}"
        return "import refused"
    if c.reference.startswith("tflite-micro cannot"):
        return "oracle cannot run it"
    if c.reference.startswith("fails"):
        return "reference fails"
    if c.reference_exact is False:
        return "reference differs from tflite-micro"
    if c.export.startswith("fails"):
        return "export fails"
    if c.export_exact is False:
        return "C differs"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=20)
    ap.add_argument("--only", default="", help="only files whose path contains this")
    ap.add_argument("--max-kb", type=int, default=2500, help="skip larger files (listed as skipped)")
    ap.add_argument("--no-export", action="store_true")
    args = ap.parse_args()
    files = [f for f in list_files() if args.only in f[1]]
    if not files:
        print("no model files found (are the mirrors in /work/.mirror?)")
        return 1
    print(HEADER)
    checks, skipped = [], []
    for source, path, size in files:
        if size > args.max_kb * 1024:
            skipped.append(f"`{path}` ({size / 1024:.0f} KB > --max-kb)")
            continue
        c = check_model(path, read_mirror(source, path), source, args.inputs, export=not args.no_export)
        checks.append(c)
        print(c.row(), flush=True)
        print(f"<!-- {c.seconds:.1f} s -->", file=sys.stderr, flush=True)
    by_cause: dict[str, list[str]] = {}
    for c in checks:
        why = cause(c)
        if why:
            by_cause.setdefault(why, []).append(c.file)
    print(f"\n{sum(cause(c) is None for c in checks)} of {len(checks)} files pass every check"
          + (f"; skipped: {', '.join(skipped)}" if skipped else ""))
    for why, names in sorted(by_cause.items(), key=lambda kv: -len(kv[1])):
        print(f"- {why}: {len(names)} — " + ", ".join(f"`{Path(p).name}`" for p in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
