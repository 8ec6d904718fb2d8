"""The ONNX backend node tests: import each, run the float reference, compare with the expected outputs,
and print how many import and match, by op.

The node tests are the onnx package's own cases (onnx.backend.test.case.node: one small model per op
variant with its inputs and expected outputs). The pip wheel ships their generators but not the data/node
folder the onnx repository stores; `collect_testcases()` builds the same models and data in memory, so
nothing is downloaded.

Each case ends in one of:
  match        imports, runs, every output within tolerance (the case's rtol/atol, at least 1e-4: our
               float reference computes in float32)
  match_const  matches once the operands the IR needs constant (axes, pads, scales, shapes: graph inputs
               in these tests, constants in real models) are bound to their test values
  differs      imports and runs, but an output differs (shape, dtype or values)
  unsupported  UnsupportedOpError: the op (or this form of it) is not in the IR
  refused      another clear one-line TinyStudio error (non-constant shape operands, dtypes the IR does not
               hold, sequence/optional inputs ...)
  crash        any other exception: a bug (tests/engine/test_onnx_node_tests.py requires none)

    .venv/bin/python -m benchmarks.onnx_node_tests              # table by op, then totals
    .venv/bin/python -m benchmarks.onnx_node_tests --markdown   # the README's list
"""
from __future__ import annotations

import argparse
import re
import sys
import traceback
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.errors import TinyStudioError, UnsupportedOpError  # noqa: E402
from engine.execute import run_graph  # noqa: E402
from engine.importers.onnx_import import load_onnx  # noqa: E402
from engine.int8.execute import run_int8  # noqa: E402
from engine.ir import FLOAT_DTYPES  # noqa: E402

OUTCOMES = ("match", "match_const", "differs", "unsupported", "refused", "crash")


@dataclass
class Result:
    name: str
    op: str
    outcome: str
    detail: str = ""


def cases():
    """The onnx package's node test cases (name, model, inputs, outputs, rtol, atol)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return [c for c in collect_testcases() if c.kind == "node" and c.data_sets]


def _op_of(model) -> str:
    ops = [n.op_type for n in model.graph.node]
    return ops[-1] if len(ops) != 1 else ops[0]


def _compare(got: np.ndarray, want, rtol: float, atol: float) -> str:
    if isinstance(want, np.generic):  # a 0-d result stored as a numpy scalar
        want = np.asarray(want)
    if not isinstance(want, np.ndarray):
        return f"expected a {type(want).__name__}, not a tensor"
    got = np.asarray(got)
    if got.shape != want.shape:
        return f"shape {list(got.shape)} vs expected {list(want.shape)}"
    if want.dtype.kind in "fc" or got.dtype.kind in "fc":
        try:
            w = want.astype(np.float64)
        except (TypeError, ValueError):
            return f"expected dtype {want.dtype}"
        g = got.astype(np.float64)
        ok = np.isclose(g, w, rtol=max(rtol, 1e-4), atol=max(atol, 1e-4), equal_nan=True)
        if not ok.all():
            err = np.abs(g - w)[~ok]
            return f"max difference {float(np.nanmax(err)) if err.size else float('nan'):.3g}"
        return ""
    if not np.array_equal(got.astype(want.dtype) if want.dtype != object else got, want):
        return "values differ"
    return ""


def _array(x):
    """Test data as numpy: TensorProto values (float16, 4-bit and 8-bit float types ...) converted."""
    if isinstance(x, np.generic):
        return np.asarray(x)
    if isinstance(x, onnx.TensorProto):
        try:
            return numpy_helper.to_array(x)
        except Exception:  # noqa: BLE001 - onnx raises several types for element types numpy lacks
            return x
    return x


_COMPUTED = re.compile(r"\('([^']+)'\) must be a constant")


def _frozen(model, values: dict[str, np.ndarray]):
    """The model with some graph inputs made initializers (their test values)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [i for i in m.graph.input if i.name not in values]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    m.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in values.items())
    return m


def _import_and_run(c, model, names, inputs):
    shapes = {n: tuple(x.shape) for n, x in zip(names, inputs)}
    g = load_onnx(f"{c.name}.onnx", data=model.SerializeToString(), input_shapes=shapes)
    feeds = {n: x for n, x in zip(names, inputs) if n in g.inputs}
    integer = any(g.tensors[n].quant is not None and g.tensors[n].dtype not in FLOAT_DTYPES for n in g.inputs)
    got = (run_int8 if integer else run_graph)(g, feeds)
    for name in g.outputs:  # the float reference carries real values through quantized tensors
        t = g.tensors[name]
        if t.quant is not None and t.dtype not in FLOAT_DTYPES and np.asarray(got[name]).dtype.kind == "f":
            got[name] = t.quant.quantize(got[name], t.dtype)
    return g, got


def run_case(c) -> Result:
    """One case; an operand the IR needs constant (axes, scales, shapes given as graph inputs in these tests)
    is bound to its test value and the case retried: a match then counts as `match (constant operands)`."""
    op = _op_of(c.model)
    inputs, outputs = ([_array(x) for x in xs] for xs in c.data_sets[0])
    init = {t.name for t in c.model.graph.initializer}
    names = [i.name for i in c.model.graph.input if i.name not in init]
    model, frozen = c.model, {}
    try:
        if any(not isinstance(x, np.ndarray) for x in inputs) or len(inputs) != len(names):
            raise TinyStudioError("sequence, optional or non-numpy inputs (the IR holds tensors only)")
        values = dict(zip(names, inputs))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            while True:
                try:
                    keep = [n for n in names if n not in frozen]
                    g, got = _import_and_run(c, model, keep, [values[n] for n in keep])
                    break
                except TinyStudioError as e:
                    m = _COMPUTED.search(str(e))
                    if m is None or m.group(1) not in values or m.group(1) in frozen:
                        raise
                    frozen[m.group(1)] = values[m.group(1)]
                    model = _frozen(c.model, frozen)
    except UnsupportedOpError as e:
        return Result(c.name, op, "unsupported", e.op)
    except TinyStudioError as e:
        return Result(c.name, op, "refused", str(e).splitlines()[0][:200])
    except Exception as e:  # noqa: BLE001 - a crash is what this harness exists to find
        tb = traceback.extract_tb(e.__traceback__)[-1]
        return Result(c.name, op, "crash", f"{type(e).__name__}: {e} ({tb.filename}:{tb.lineno})"[:300])
    if len(g.outputs) != len(outputs):
        return Result(c.name, op, "differs", f"{len(g.outputs)} outputs vs {len(outputs)} expected")
    for name, want in zip(g.outputs, outputs):
        why = _compare(got[name], want, c.rtol, c.atol)
        if why:
            return Result(c.name, op, "differs", f"{name}: {why}" + (f" (constant: {', '.join(frozen)})"
                                                                     if frozen else ""))
    return Result(c.name, op, "match_const" if frozen else "match", ", ".join(frozen))


def run_all(selected=None) -> list[Result]:
    """Every case's result; an `_expanded` case (the op's function body) is counted under its op."""
    results = [run_case(c) for c in (selected if selected is not None else cases())]
    op_of = {r.name: r.op for r in results}
    for r in results:
        base = r.name.replace("_expanded", "", 1)
        if base != r.name:
            r.op = op_of.get(base, r.op)
    return results


def by_op(results: list[Result]) -> dict[str, Counter]:
    table: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        table[r.op][r.outcome] += 1
    return dict(sorted(table.items()))


def totals(results: list[Result]) -> Counter:
    return Counter(r.outcome for r in results)


def print_table(results: list[Result], markdown: bool = False) -> None:
    table = by_op(results)
    tot = totals(results)
    cols = ("cases", "import", "match", "match_const", "differs", "unsupported", "refused", "crash")
    if markdown:
        print("| op | " + " | ".join(cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
    else:
        print(f"{'op':26}" + "".join(f"{c:>12}" for c in cols))
    for op, c in table.items():
        row = (sum(c.values()), c["match"] + c["match_const"] + c["differs"], *(c[k] for k in cols[2:]))
        if markdown:
            print(f"| {op} | " + " | ".join(str(v) for v in row) + " |")
        else:
            print(f"{op:26}" + "".join(f"{v:12}" for v in row))
    n = len(results)
    print(f"\n{n} node tests: {tot['match'] + tot['match_const'] + tot['differs']} import and run, {tot['match']} "
          f"match, {tot['match_const']} more match with constant operands, {tot['differs']} differ, "
          f"{tot['unsupported']} unsupported op, {tot['refused']} refused with a clear error, {tot['crash']} crash")
    print(f"\nunsupported ops ({len(unsupported_ops(results))}): {', '.join(unsupported_ops(results))}")


def unsupported_ops(results: list[Result]) -> list[str]:
    """Ops (as named in UnsupportedOpError) of the cases refused as unsupported."""
    return sorted({r.detail for r in results if r.outcome == "unsupported"})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--details", action="store_true", help="print every case that does not match, and why")
    args = ap.parse_args(argv)
    results = run_all()
    print_table(results, args.markdown)
    if args.details:
        for r in results:
            if r.outcome != "match":
                print(f"{r.outcome:11} {r.name}: {r.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
