"""Graph passes: functions Graph -> (Graph, PassReport) with a checked contract (see base.py).

    from engine.passes import fold_batchnorm, fuse_activations, to_nhwc, quantize_model
    g2, report = fold_batchnorm(g, verbose=True)
    qg, ptq = quantize_model(g, calibration=x_batch)       # int8 graph + agreement report
"""
from engine.passes.base import PassReport, format_graph, graph_pass, run_passes
from engine.passes.fold import fold_batchnorm
from engine.passes.fuse import fuse_activations, fuse_gemm
from engine.passes.layout import to_nhwc
from engine.passes.noops import remove_noops
from engine.passes.calibrate import synthetic_calibration
from engine.passes.ptq import PTQReport, dequantize_outputs, quantize_inputs, quantize_model
from engine.passes.quantize import quantize_int8

__all__ = ["PassReport", "format_graph", "graph_pass", "run_passes", "fold_batchnorm", "fuse_activations",
           "fuse_gemm", "to_nhwc", "remove_noops", "synthetic_calibration", "quantize_int8", "quantize_model",
           "quantize_inputs", "dequantize_outputs", "PTQReport"]
