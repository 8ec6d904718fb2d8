"""Int8 numerics: TFLite's integer quantization scheme as numpy kernels, bit-exact to tflite-micro.

    from engine.int8 import run_int8, prepare_int8
    y = run_int8(graph, {"input_1": x})["Identity"]     # int8 in, int8 out

quant_math (multipliers, rounding) -> fixedpoint (gemmlowp exp/logistic/tanh) -> kernels by family
(conv, pool, elementwise, softmax) -> prepare (IR node -> frozen parameter record, params.py; read by
these kernels and by the C emitter in engine/codegen) -> lower (record -> numpy kernel) -> execute.
"""
from engine.int8.execute import Int8Plan, prepare_int8, run_int8

__all__ = ["Int8Plan", "prepare_int8", "run_int8"]
