"""Training and evaluation of IR graphs on data sets (engine.data), through PyTorch on CPU.

    data = load_dataset("digits")
    g = adapt_zoo("zoo:lenet5", data)                     # the zoo model sized for the data
    g2, rep = train(g, data, epochs=10, seed=0)          # best-validation weights + TrainReport
    evaluate(g2, data)                                    # {"accuracy", "loss", "confusion", ...}; int8 graphs too

See loop.py (train), evaluate.py, adapt.py (adapt_zoo) and fakequant.py (the fake_quant spec for QAT).
"""
from engine.train.adapt import adapt_zoo
from engine.train.evaluate import evaluate
from engine.train.fakequant import weight_quantizer
from engine.train.loop import TrainReport, train

__all__ = ["TrainReport", "adapt_zoo", "evaluate", "train", "weight_quantizer"]
