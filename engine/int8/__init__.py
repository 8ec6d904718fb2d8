"""Int8 numerics: TFLite's integer quantization scheme as numpy kernels, bit-exact to tflite-micro.

    from engine.int8 import run_int8, prepare_int8
    y = run_int8(graph, {"input_1": x})["Identity"]     # int8 in, int8 out

quant_math (multipliers, rounding) -> fixedpoint (gemmlowp exp/logistic/tanh) -> kernels by family
(conv, pool, elementwise, softmax) -> lower (IR node -> kernel with precomputed parameters) -> execute.
"""
from engine.int8.execute import Int8Plan, prepare_int8, run_int8

__all__ = ["Int8Plan", "prepare_int8", "run_int8"]
