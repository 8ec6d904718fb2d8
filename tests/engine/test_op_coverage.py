"""Every registered op runs in int8 end to end (an int8 lowering in LOWER and a C emitter in EMIT; views and
no-ops need no C, the generated code aliases or drops them) or says why not with `float_only`.

Run with -s to see the float-only list: `pytest -s tests/engine/test_op_coverage.py`.
"""
from __future__ import annotations

from engine.codegen.layers import EMIT
from engine.int8.lower import LOWER
from engine.ops import OPS


def _runs_in_int8_c(name: str) -> bool:
    op = OPS[name]
    return name in LOWER and (name in EMIT or op.is_view or op.is_noop)


def test_every_op_has_int8_and_c_or_is_declared_float_only():
    missing = sorted(n for n in OPS if not _runs_in_int8_c(n) and not OPS[n].float_only)
    assert not missing, (f"ops with neither an int8 lowering + C emitter nor a float_only reason: {missing} "
                         "(see engine/ops/README.md, 'add an op')")


def test_float_only_declarations_are_not_stale():
    stale = sorted(n for n in OPS if OPS[n].float_only and _runs_in_int8_c(n))
    assert not stale, f"ops declared float_only that have an int8 lowering and a C emitter: {stale}"


def test_lowerings_and_emitters_name_registered_ops():
    assert not sorted(set(LOWER) - set(OPS)), "LOWER names unknown ops"
    assert not sorted(set(EMIT) - set(OPS)), "EMIT names unknown ops"


def test_print_float_only_ops():
    float_only = sorted(n for n in OPS if OPS[n].float_only)
    print(f"\n{len(float_only)} of {len(OPS)} ops are float only:")
    for n in float_only:
        print(f"  {n}: {OPS[n].float_only}")
    assert len(float_only) < len(OPS)
