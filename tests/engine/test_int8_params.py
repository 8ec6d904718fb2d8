"""The per-layer parameter records (engine/int8/params.py): computed once by prepare_node, read by the
numpy int8 kernels and the C emitter alike; the requantization modes the emitter writes exist in the C.

1. every parameter struct field the emitter writes (on one-op models of every kernel) is declared by the
   kernel templates, and every `general_requant` value written is a Requant member;
2. the Requant values are the ones the templates branch on (zero test) and document;
3. the numpy kernel and the C emitter read one record: a changed record changes both;
4. records are frozen, every op with a C emitter or an int8 kernel has a prepare step.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from engine.codegen import generate_library
from engine.codegen.layers import EMIT
from engine.importers.tflite_import import load_tflite
from engine.int8.dsp_requant import REQUANT_FIELD, Requant
from engine.int8.lower import KERNELS, LOWER, lower_node
from engine.int8.params import ConvParams, Params
from engine.int8.prepare import PREPARE, prepare_node
from tests.engine.test_codegen import NOT_GENERATED, ONE_OP, small_graph

TEMPLATES = Path(__file__).resolve().parents[2] / "engine" / "codegen" / "templates"


def template_text() -> str:
    """Every kernel template file (the library may be split into several .c/.h files)."""
    files = sorted(p for p in TEMPLATES.iterdir() if p.suffix in (".c", ".h"))
    assert files, f"no kernel templates in {TEMPLATES}"
    return "\n".join(p.read_text() for p in files)


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", " ", text, flags=re.S))


def c_structs(text: str) -> dict[str, set[str]]:
    """typedef struct { ... } name;  ->  {name: field names} (no nested struct definitions in the kernels)."""
    out = {}
    for body, name in re.findall(r"typedef\s+struct\s*\w*\s*\{([^{}]*)\}\s*(\w+)\s*;", _strip_comments(text)):
        fields = set()
        for decl in body.split(";"):
            words = decl.strip().split(None, 1)
            if len(words) < 2:
                continue
            _, names = words  # first word the type (int32_t, ts_bcast, ...)
            fields |= {re.sub(r"\[.*?\]", "", n).strip().lstrip("*") for n in names.split(",")}
        out[name] = fields
    return out


def initializers(source: str) -> list[tuple[str, dict[str, str]]]:
    """`static const ts_x_params p = {...};` in generated C -> (struct, {top-level field: value text})."""
    found = []
    for m in re.finditer(r"static const (ts_\w+) p = \{", source):
        depth, i, start = 1, m.end(), m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(source[i], 0)
            i += 1
        body, fields, level, key_pos = source[start:i - 1], {}, 0, []
        for j, ch in enumerate(body):
            level += {"{": 1, "}": -1}.get(ch, 0)
            if ch == "." and level == 0:
                key_pos.append(j)
        for a, b in zip(key_pos, key_pos[1:] + [len(body)]):
            key, _, value = body[a + 1:b].partition("=")
            fields[key.strip()] = value.strip().rstrip(",").strip()
        found.append((m.group(1), fields))
    return found


@pytest.fixture(scope="module")
def one_op_sources():
    """Generated model C of every one-op model the codegen tests build (all kernels and edge cases)."""
    out = {}
    for name, build in ONE_OP.items():
        if name in NOT_GENERATED:
            continue
        m, y = build()
        data = m.w.finish([x for x, _, _ in m.inputs], getattr(m, "outs", [y]))
        lib = generate_library(load_tflite(f"{name}.tflite", data=data), "m")
        out[name] = lib.files[f"{lib.name}.c"]
    return out


def test_every_emitted_field_is_declared_by_the_kernel_templates(one_op_sources):
    structs = c_structs(template_text())
    assert {"ts_conv_params", "ts_fc_params", "ts_add_params"} <= set(structs), sorted(structs)
    written_modes, kinds = set(), set()
    for name, source in one_op_sources.items():
        for struct, fields in initializers(source):
            kinds.add(struct)
            assert struct in structs, f"{name}: the emitter writes {struct}, which no template declares"
            missing = set(fields) - structs[struct]
            assert not missing, f"{name}: {struct} has no field {sorted(missing)} in engine/codegen/templates"
            if REQUANT_FIELD in fields:
                value = int(fields[REQUANT_FIELD])
                assert value in {int(mode) for mode in Requant}, f"{name}: {REQUANT_FIELD} = {value}"
                written_modes.add(value)
    assert {"ts_conv_params", "ts_fc_params", "ts_add_params", "ts_pool_params", "ts_softmax_params"} <= kinds
    assert written_modes == {int(mode) for mode in Requant}, f"the one-op models write only {written_modes}"


def test_requant_modes_are_the_values_the_templates_branch_on():
    text = template_text()
    structs = c_structs(text)
    for struct in ("ts_conv_params", "ts_fc_params", "ts_add_params"):
        assert REQUANT_FIELD in structs[struct], f"{struct} lost its {REQUANT_FIELD} field"
    # The kernels test the field for non-zero (`p->general_requant ?`, `if (!p->general_requant)`):
    assert re.search(rf"->\s*{REQUANT_FIELD}\b", _strip_comments(text)), f"no kernel branches on {REQUANT_FIELD}"
    assert Requant.SHORT == 0 and all(mode != 0 for mode in Requant if mode is not Requant.SHORT)
    # ... and document the portable value next to the field: "int32_t general_requant; /* 1: ... portable"
    documented = re.findall(rf"\b{REQUANT_FIELD};\s*/\*\s*(\d+):([^*]*)", text)
    assert documented, f"no template documents the values of {REQUANT_FIELD}"
    for value, words in documented:
        assert int(value) == Requant.GENERAL and "portable" in words, (value, words)


def _conv_node(g):
    return next(n for n in g.nodes if n.op == "Conv")


def test_numpy_kernel_and_c_emitter_read_one_record(monkeypatch):
    g = small_graph()
    node = _conv_node(g)
    rec = prepare_node(g, node)
    assert isinstance(rec, ConvParams)
    x = np.random.default_rng(0).integers(-128, 128, g.tensors[node.inputs[0]].shape).astype(np.int8)
    base = lower_node(g, node)([x])[0].astype(np.int64)
    source = generate_library(g, "m").files["m.c"]
    fields = dict(initializers(source))["ts_conv_params"]
    assert int(fields["output_offset"]) == rec.y_zp and int(fields["act_min"]) == rec.act_min
    assert int(fields[REQUANT_FIELD]) == rec.dsp.mode

    real = PREPARE["Conv"]
    shifted = {"y_zp": rec.y_zp + 3, "act_min": -128, "act_max": 127}
    monkeypatch.setitem(PREPARE, "Conv", lambda g_, n_: dataclasses.replace(real(g_, n_), **shifted))
    moved = lower_node(g, node)([x])[0].astype(np.int64)
    assert np.array_equal(moved, np.clip(moved, -128, 127)) and (moved - base).max() == 3
    fields = dict(initializers(generate_library(g, "m").files["m.c"]))["ts_conv_params"]
    assert int(fields["output_offset"]) == rec.y_zp + 3 and int(fields["act_min"]) == -128


def test_records_are_frozen_and_prepared_for_every_generated_op():
    g = small_graph()
    rec = prepare_node(g, _conv_node(g))
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.y_zp = 0
    for arr in (rec.centered, rec.multiplier, rec.shift, rec.dsp.bias, rec.dsp.multiplier, rec.dsp.shift):
        assert not arr.flags.writeable
    assert set(EMIT) <= set(PREPARE), sorted(set(EMIT) - set(PREPARE))
    assert LOWER is PREPARE
    from engine.int8.lstm import LstmParams
    from engine.int8.svdf import SvdfParams
    # the records of params.py, plus those of the families that live in their own modules (stateful ops)
    kinds = set(Params.__args__) | {SvdfParams, LstmParams}
    assert kinds == set(KERNELS), sorted(k.__name__ for k in kinds ^ set(KERNELS))
