"""The Train page's figures are built from the records they are given (pure functions, no Streamlit)."""
from __future__ import annotations

from app import train_charts
from app.workflows.compress import result_trained, without_untrained_accuracy
from app.workflows.train import per_class_accuracy

HISTORY = [{"epoch": 1, "train_loss": 1.5, "val_loss": 1.2, "val_accuracy": 0.6, "seconds": 0.1},
           {"epoch": 2, "train_loss": 0.7, "val_loss": 0.8, "val_accuracy": 0.8, "seconds": 0.1}]
CONF = [[8, 2, 0], [1, 9, 0], [0, 0, 5]]


def test_curves_confusion_per_class_scores():
    fig = train_charts.curves(HISTORY)
    assert [t.name for t in fig.data] == ["training loss", "validation loss", "validation accuracy"]
    assert list(fig.data[1].y) == [1.2, 0.8] and list(fig.data[2].y) == [0.6, 0.8]
    heat = train_charts.confusion(CONF, ("cat", "dog", "cow")).data[0]
    assert [list(r) for r in heat.z] == CONF and list(heat.x) == ["cat", "dog", "cow"]
    rows = per_class_accuracy(CONF, ("cat", "dog", "cow"))
    assert [(r["class"], r["samples"], r["correct"]) for r in rows] == [("cat", 10, 8), ("dog", 10, 9), ("cow", 5, 5)]
    assert [r["accuracy"] for r in rows] == [0.8, 0.9, 1.0]
    assert list(train_charts.per_class(rows).data[0].y) == [0.8, 0.9, 1.0]
    modes = [{"mode": "float", "class": "dog", "scores": [0.1, 0.7, 0.2]},
             {"mode": "int8", "class": "dog", "scores": [0.12, 0.68, 0.2]}]
    fig = train_charts.scores(modes, ("cat", "dog", "cow"), label=1)
    assert list(fig.data[0].x) == ["cat", "dog (true)", "cow"] and list(fig.data[1].y) == [0.12, 0.68, 0.2]
    assert [t.name for t in fig.data] == ["float: predicts dog", "int8: predicts dog"]


def test_untrained_accuracy_is_hidden_and_fine_tuning_trains():
    rows = [{"figure": "macs", "now": 1}, {"figure": "accuracy", "now": 0.1}]
    assert without_untrained_accuracy(rows, trained=False) == rows[:1]
    assert without_untrained_accuracy(rows, trained=True) == rows
    assert result_trained(False, "prune-channels", {"epochs": 2})
    assert not result_trained(False, "prune-channels", {"epochs": 0})
    assert not result_trained(False, "quantize-int8", {})
    assert result_trained(True, "quantize-int8", {})
