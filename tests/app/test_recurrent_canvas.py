"""The LSTM models on the canvas: a round trip keeps the graph, and the recurrent `activations` list (a list of
names, attribute kind "strs") is edited as comma-separated text like the other list attributes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from app.canvas.graph_json import from_canvas, to_canvas
from engine.execute import run_graph
from engine.importers.tflite_import import load_tflite
from engine.serialize import content_hash
from tests.app.test_canvas_json import browser_echo

DATA = Path(__file__).resolve().parents[1] / "data" / "models" / "tflite-micro"


def test_lstm_models_round_trip_through_the_canvas():
    for name in ("trained_lstm.tflite", "trained_lstm_int8.tflite", "dtln_noise_suppression.tflite"):
        g = load_tflite(str(DATA / name))
        assert content_hash(from_canvas(browser_echo(to_canvas(g)), g)) == content_hash(g), name


def test_activations_text_becomes_a_list_of_names():
    g = load_tflite(str(DATA / "trained_lstm.tflite"))
    doc = browser_echo(to_canvas(g))
    node = next(n for n in doc["nodes"] if n.get("op") == "LSTM")
    node["attrs"]["activations"] = "Sigmoid, Tanh, Tanh"   # what the form field sends
    g2 = from_canvas(doc, g)
    assert content_hash(g2) == content_hash(g)
    node["attrs"]["activations"] = "HardSigmoid, Tanh, Tanh"
    g3 = from_canvas(doc, g)
    lstm = next(n for n in g3.nodes if n.op == "LSTM")
    assert lstm.attrs["activations"] == ["HardSigmoid", "Tanh", "Tanh"]
    x = np.random.default_rng(0).random((1, 28, 28)).astype(np.float32)
    assert not np.allclose(run_graph(g3, {g3.inputs[0]: x})[g3.outputs[0]], run_graph(g, {g.inputs[0]: x})[g.outputs[0]])
