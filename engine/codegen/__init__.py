"""C code generation: an int8 graph -> a C99 library (static arena, const weights, one function per layer).

    lib = generate_library(graph, name="kws")          # plan = plan_memory(graph) unless given
    for path, text in lib.files.items(): (out / path).write_text(text)
    lib.arena_bytes, lib.inputs[0].size, lib.macs

The generated C computes the same bytes as engine.int8.run_int8 (portable kernels and the DSP path alike);
engine.codegen.hostbuild builds and runs it on the host to check that. Modules: cwrite (C text), layers (one
emitter per op family: parameters from engine/int8's own helpers), generate (files, arena checks),
templates/ (the kernel library: tinystudio_kernels.h, ts_fixedpoint.[ch], ts_<family>_ref.c portable kernels,
ts_<family>_dsp.c Arm DSP kernels; host_main.c), kernelfiles (which library files a model's C needs),
hostbuild (gcc build and run).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class IOSpec:
    name: str                  # tensor name in the graph
    c_name: str                # C identifier
    shape: tuple[int, ...]
    dtype: str                 # "int8"
    scale: float
    zero_point: int
    size: int                  # bytes
    float_name: str | None = None  # the model's float32 tensor when it converts at this edge (float_edges.py)


@dataclass(frozen=True)
class CodegenOptions:
    dsp: str = "auto"          # "auto": SMLAD path when __ARM_FEATURE_DSP is defined; "off": portable kernels only
    # int16 pre-widened conv weights (ts_conv_s8_w16): about twice their flash for fewer instructions per MAC
    wide_weights: bool = False


@dataclass(frozen=True)
class CLibrary:
    name: str                  # C identifier prefix, e.g. "kws"
    files: dict[str, str]      # relative path -> text
    header: str                # f"{name}.h"
    sources: tuple[str, ...]   # the .c files to compile
    arena_bytes: int           # == the memory plan's arena
    inputs: tuple[IOSpec, ...]
    outputs: tuple[IOSpec, ...]
    macs: int
    stamp: dict = field(default_factory=dict)   # tool version, settings, graph content hash, arena, scratch
    weights_bytes: int = 0     # const data emitted (weights, biases, multipliers, shifts, tables): flash estimate
    # one record per generated layer (views generate none), in execution order: index, node, op, kernel, macs,
    # comment, weights_bytes, scratch_bytes, arena ((tensor, offset, bytes, written), ...)
    layers: tuple[dict, ...] = ()


def generate_library(graph, name: str = "model", plan=None, options: CodegenOptions = CodegenOptions(),
                     schedule=None) -> CLibrary:
    """Generate the C library of an int8 TFLite-form graph; raises engine.errors.GraphError naming node and op
    for anything it cannot generate."""
    from engine.codegen.generate import generate  # here: generate.py imports the dataclasses above
    return generate(graph, name, plan, options, schedule)


__all__ = ["CLibrary", "CodegenOptions", "IOSpec", "generate_library"]
