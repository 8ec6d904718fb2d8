"""Static kernel buffers outside the arena (the int8 LSTM's gate vectors) are in the RAM estimate, sized as the
generated C declares them; before, the DTLN estimate said 1,452 B where the C measured 3,444 B."""
from __future__ import annotations

import re
from pathlib import Path

from engine.codegen import generate_library
from engine.importers.tflite_import import load_tflite
from hwmodels.estimate import estimate_target, kernel_buffer_bytes

DATA = Path(__file__).resolve().parents[1] / "data" / "models" / "tflite-micro"


def _declared_static_bytes(lib) -> int:
    sizes = {"int8_t": 1, "int16_t": 2, "int32_t": 4}
    text = lib.files[f"{lib.name}.c"]
    return sum(sizes[t] * int(n) for t, n in re.findall(r"^\s+static (int\d+_t) \w+\[(\d+)\];", text, re.M))


def test_lstm_gate_buffers_match_the_generated_c():
    for name, want in (("dtln_noise_suppression.tflite", 2 * 4 * 128 * 2), ("trained_lstm_int8.tflite", None)):
        g = load_tflite(name, data=(DATA / name).read_bytes())
        lib = generate_library(g, "m")
        declared = _declared_static_bytes(lib)
        assert declared > 0 and kernel_buffer_bytes(g) == declared, (name, kernel_buffer_bytes(g), declared)
        if want is not None:
            assert declared == want


def test_float_models_and_other_ops_need_none():
    g = load_tflite("trained_lstm.tflite", data=(DATA / "trained_lstm.tflite").read_bytes())
    assert kernel_buffer_bytes(g) == 0


def test_ram_estimate_counts_them():
    g = load_tflite("d.tflite", data=(DATA / "dtln_noise_suppression.tflite").read_bytes())
    with_buffers = estimate_target(g, "nrf52840", "tinystudio-c", arena_bytes=400, weight_bytes=0)
    parts = dict(with_buffers.ram_parts)
    # persistent holds the runtime's structs, the 768 B of LSTM state and the 2,048 B of gate vectors
    assert parts["persistent"] >= 768 + 2048, parts
