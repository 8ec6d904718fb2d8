"""Which kernel library files a generated model needs, read from the templates themselves.

    files = kernel_files([model_c], "kws")    # ("tinystudio_kernels.h", ..., "ts_fc_ref.c", ...)
    table = kernel_table()              # every C function defined in a .c template -> that file

The library in engine/codegen/templates is one file per kernel family and ISA level (ts_conv_ref.c,
ts_conv_dsp.c, ...). A bundle gets the files that define the `ts_...(` functions its model's C calls, then
everything those files need, to a fixed point: the headers they #include and the files defining the functions
they call (a portable entry point calls its DSP version, so the DSP file always travels with the reference
one; whether it compiles to anything is the target's business). The table is built by reading the templates,
so a kernel that moves from one file to another needs no edit here.
"""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from engine.int8.dsp_requant import REQUANT_FIELD

# The public header: the generated model includes it by name.
PUBLIC_HEADER = "tinystudio_kernels.h"
# Templates that are not part of the kernel library.
NOT_LIBRARY = ("host_main.c", "host_main_float.c")

# a layer's parameter struct asking for the general requantization (Requant.GENERAL, or an ADD's non-zero mode)
_GENERAL_REQUANT = re.compile(rf"\.{REQUANT_FIELD} = [1-9]")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# A function definition at file scope: return type and name at the start of a line, the body's brace after
# the parameter list (prototypes end with ';' instead).
_DEFINITION = re.compile(r"^(?!static\b|TS_)[A-Za-z_][\w \t]*?\**\b(ts_\w+)\s*\([^;{}]*\)\s*\{", re.M)
# A prototype (declaration without body), removed before looking for calls.
_PROTOTYPE = re.compile(r"^[A-Za-z_][\w \t]*?\**\b(ts_\w+)\s*\([^;{}]*\)\s*;", re.M)
_CALL = re.compile(r"\b(ts_\w+)\s*\(")


def _templates() -> dict[str, str]:
    root = resources.files("engine.codegen").joinpath("templates")
    return {p.name: p.read_text() for p in root.iterdir()
            if p.name.endswith((".c", ".h")) and p.name not in NOT_LIBRARY}


def _code(text: str) -> str:
    return _COMMENT.sub(" ", text)


@lru_cache(maxsize=1)
def library_files() -> tuple[str, ...]:
    """Every file of the kernel library (headers first, then sources), sorted within each kind."""
    names = _templates()
    return tuple(sorted(n for n in names if n.endswith(".h"))) + tuple(sorted(n for n in names if n.endswith(".c")))


@lru_cache(maxsize=1)
def kernel_table() -> dict[str, str]:
    """Function name -> the .c template that defines it (external functions only)."""
    table: dict[str, str] = {}
    for name, text in sorted(_templates().items()):
        if not name.endswith(".c"):
            continue
        for fn in _DEFINITION.findall(_code(text)):
            if fn in table:
                raise ValueError(f"kernel function {fn} is defined in both {table[fn]} and {name}")
            table[fn] = name
    return table


def calls(c_text: str) -> set[str]:
    """The names of the `ts_...` functions a C text calls (prototypes are not calls)."""
    return set(_CALL.findall(_PROTOTYPE.sub(" ", _code(c_text))))


@lru_cache(maxsize=1)
def _needs() -> dict[str, frozenset[str]]:
    """File -> the library files it needs directly (its includes, and the files defining what it calls)."""
    table = kernel_table()
    out = {}
    for name, text in _templates().items():
        code = _code(text)
        deps = {inc for inc in _INCLUDE.findall(code)}
        deps |= {table[fn] for fn in calls(code) if fn in table}
        deps.discard(name)
        out[name] = frozenset(deps)
    return out


def kernel_files(model_sources, own_prefix: str = "") -> tuple[str, ...]:
    """The library files the generated C sources `model_sources` need, in library_files() order: the public
    header, the files defining every kernel they call, and everything those need in turn. Raises ValueError
    for a `ts_` call no template defines (the emitter and the templates disagree); the model's own functions
    (`<own_prefix>_run`, ...) are not kernels."""
    table, needs = kernel_table(), _needs()
    wanted = {PUBLIC_HEADER}
    for text in model_sources:
        for fn in calls(text):
            if fn in table:
                wanted.add(table[fn])
            elif not (own_prefix and fn.startswith(own_prefix + "_")):
                raise ValueError(f"the generated C calls {fn}, which no kernel template defines")
    todo = list(wanted)
    while todo:
        for dep in needs[todo.pop()]:
            if dep not in needs:
                raise ValueError(f"kernel library file {dep} is included but not among the templates")
            if dep not in wanted:
                wanted.add(dep)
                todo.append(dep)
    return tuple(f for f in library_files() if f in wanted)


def public_header(text: str, dsp_default: bool, model_c: str, codes) -> str:
    """tinystudio_kernels.h for one library: its DSP default, and the kernel copies none of its layers uses
    switched off, so that they cost no code (the Helium kernels' general requantization, the DSP eight-pixel
    pointwise block and the narrow pointwise loops, as the layers' codes say, and DSP_PATHS by the layers'
    dsp_paths; a layer that does not qualify runs the same code either way)."""
    codes = list(codes)
    text = text.replace("@USE_DSP_DEFAULT@", "1" if dsp_default else "0")
    if not _GENERAL_REQUANT.search(model_c):
        text = text.replace("#define TINYSTUDIO_GENERAL_REQUANT 1", "#define TINYSTUDIO_GENERAL_REQUANT 0")
    if not any(c.conv_eight for c in codes):
        text = text.replace("#define TINYSTUDIO_CONV_EIGHT 1", "#define TINYSTUDIO_CONV_EIGHT 0")
    if not any(c.conv_narrow for c in codes):
        text = text.replace("#define TINYSTUDIO_CONV_NARROW 1", "#define TINYSTUDIO_CONV_NARROW 0")
    used = set().union(*(c.dsp_paths for c in codes))
    for switch in DSP_PATHS:
        if switch not in used:
            text = text.replace(f"#define {switch} 1", f"#define {switch} 0")
    return text


# The DSP fast paths a library links only when one of its layers can take them (tinystudio_kernels.h).
DSP_PATHS = ("TINYSTUDIO_CONV_RGB", "TINYSTUDIO_CONV_FIRST", "TINYSTUDIO_DW_SMALL", "TINYSTUDIO_DW_S2",
             "TINYSTUDIO_DW_GROUP")


def dsp_paths(p: dict, kernel: str) -> set[str]:
    """The switches of DSP_PATHS a call of `kernel` with the ts_conv_params `p` (a dict of its fields) can take,
    by the C's own tests: ts_conv_rgb_ok, ts_conv_s8_dsp's K % 4 != 0 first-layer test (after rgb; not in
    ts_conv_s8_w16_dsp), ts_dw_small_fits, ts_dw_s2_ok (after small) and ts_dw_group (whole groups of 4
    channels that neither those nor ts_dw_planar take). Must mirror the C: a layer missed here runs the general
    loops (slower, same result)."""
    full = (p["act_min"], p["act_max"]) == (-128, 127) and not p[REQUANT_FIELD]
    k33 = p["k_h"] == p["k_w"] == 3 and p["dil_h"] == p["dil_w"] == 1
    out: set[str] = set()
    if kernel in ("ts_conv_s8", "ts_conv_s8_w16") and p.get("groups", 1) == 1:
        if p["in_c"] == 3 and k33 and p["out_c"] >= 2 and full:
            out.add("TINYSTUDIO_CONV_RGB")
        else:
            k_all = p["k_h"] * p["k_w"] * p["in_c"]
            if kernel == "ts_conv_s8" and k_all % 4 and k_all > 4 and p["per_channel"]:
                out.add("TINYSTUDIO_CONV_FIRST")
    elif kernel == "ts_depthwise_conv_s8":
        h, w, oh, ow = p["in_h"], p["in_w"], p["out_h"], p["out_w"]
        s1, s2 = p["stride_h"] == p["stride_w"] == 1, p["stride_h"] == p["stride_w"] == 2
        if (full and k33 and s1 and p["pad_top"] == p["pad_left"] == 1 and (oh, ow) == (h, w)
                and w in (12, 6, 3) and h >= 2):
            out.add("TINYSTUDIO_DW_SMALL")
        elif (full and k33 and s2 and h >= 3 and w >= 3 and 0 <= p["pad_top"] <= 1 and 0 <= p["pad_left"] <= 1
              and 2 * (oh - 1) - p["pad_top"] + 2 <= h and 2 * (ow - 1) - p["pad_left"] + 2 <= w):
            out.add("TINYSTUDIO_DW_S2")
        elif not (full and k33 and s1 and max(oh, ow) >= 6) and p["in_c"] >= 4:  # not ts_dw_planar's
            out.add("TINYSTUDIO_DW_GROUP")
    return out
