"""Small C text builders: identifiers, literals, const arrays and struct initializers.

    c_ident("CONV_2D_0/x")                    -> "conv_2d_0_x"
    c_float(0.00390625)                       -> "0.00390625f"
    CArray("kws_l0_w", "int8_t", w).render()  -> "const int8_t kws_l0_w[640] = {\n    1, -3, ...\n};"
    c_struct({"batches": 1, "shape": [1, 2]}) -> "{.batches = 1, .shape = {1, 2}}"   (wrapped when long)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_C_TYPES = {"int8_t": np.int8, "uint8_t": np.uint8, "int16_t": np.int16, "int32_t": np.int32, "int64_t": np.int64}
_KEYWORDS = frozenset("auto break case char const continue default do double else enum extern float for goto if "
                      "inline int long register restrict return short signed sizeof static struct switch typedef "
                      "union unsigned void volatile while".split())


def c_ident(text: str, fallback: str = "model") -> str:
    """A lowercase C identifier made of [a-z0-9_], never starting with a digit or being a keyword."""
    s = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    s = re.sub(r"_+", "_", s) or fallback
    if s[0].isdigit() or s in _KEYWORDS:
        s = f"m_{s}"
    return s


def c_comment(text: str) -> str:
    """Text safe inside /* ... */ (no comment terminator, one line)."""
    return " ".join(str(text).replace("*/", "* /").replace("/*", "/ *").split())


def c_float(value: float) -> str:
    """A float literal that reads back as the same float32."""
    v = float(np.float32(value))
    for digits in range(6, 10):
        text = f"{v:.{digits}g}"
        if float(np.float32(float(text))) == v:
            break
    if not any(ch in text for ch in ".en"):
        text += ".0"
    return text + "f"


def c_int(value: int) -> str:
    v = int(value)
    if v == -(1 << 31):  # the literal 2147483648 does not fit int32: write the minimum as an expression
        return "(-2147483647 - 1)"
    return str(v)


def c_struct(fields: dict, width: int = 100) -> str:
    """A designated initializer; list values become brace lists, dict values nested initializers.
    Longer than `width`: one line per group of fields, indented by 4 (the caller indents the block)."""
    parts = []
    for key, value in fields.items():
        if isinstance(value, dict):
            parts.append(f".{key} = {c_struct(value, 10**6)}")
        elif isinstance(value, (list, tuple)):
            parts.append(f".{key} = {{{', '.join(c_int(v) for v in value)}}}")
        else:
            parts.append(f".{key} = {c_int(value)}")
    text = "{" + ", ".join(parts) + "}"
    if len(text) <= width:
        return text
    lines, line = [], ""
    for part in parts:
        if line and len(line) + len(part) + 2 > width:
            lines.append(line + ",")
            line = ""
        line = f"{line}, {part}" if line else part
    lines.append(line)
    return "{\n" + "\n".join("    " + ln for ln in lines) + "\n}"


def pack_int4(values) -> np.ndarray:
    """Values in [-8, 7], two per byte, low nibble first (TFLite's int4 packing); an odd count ends in a
    zero high nibble.  pack_int4([1, -2, 7]) -> [0xE1, 0x07]."""
    v = np.asarray(values, np.int64).reshape(-1)
    if v.size and (v.min() < -8 or v.max() > 7):
        raise ValueError("int4 values outside [-8, 7]")
    nib = (v & 0xF).astype(np.uint8)
    if nib.size % 2:
        nib = np.append(nib, np.uint8(0))
    return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8)


@dataclass(frozen=True)
class CArray:
    """A const array for the weights file: name, element type, values (flattened), one-line comment."""

    name: str
    ctype: str
    values: np.ndarray
    comment: str = ""

    def __post_init__(self):
        info = np.iinfo(_C_TYPES[self.ctype])
        v = np.asarray(self.values)
        if v.size and (v.min() < info.min or v.max() > info.max):
            raise ValueError(f"{self.name}: values outside {self.ctype}")

    @property
    def count(self) -> int:
        return int(np.asarray(self.values).size)

    @property
    def nbytes(self) -> int:
        return self.count * np.dtype(_C_TYPES[self.ctype]).itemsize

    def declaration(self) -> str:
        return f"extern const {self.ctype} {self.name}[{max(self.count, 1)}];"

    def render(self, per_line: int = 24) -> str:
        vals = [c_int(v) for v in np.asarray(self.values).reshape(-1).tolist()] or ["0"]
        if self.ctype == "int64_t":  # int16 layers' biases: literals beyond int32 need C99's INT64_C
            vals = [f"INT64_C({v})" if abs(int(v)) > (1 << 31) - 1 else v for v in vals]
        lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
        head = f"/* {c_comment(self.comment)} */\n" if self.comment else ""
        body = ",\n    ".join(lines)
        return f"{head}const {self.ctype} {self.name}[{max(self.count, 1)}] = {{\n    {body}\n}};\n"


def one_buffer_wrapper(fn: str, multi: str, ctype: str, in_sizes, out_sizes) -> list[str]:
    """C lines of `int fn(const ctype *input, ctype *output)`: all inputs (and all outputs) back to back in one
    buffer, split at `in_sizes` / `out_sizes` (elements of `ctype`) into the pointer arrays `multi` takes."""
    lines = [f"int {fn}(const {ctype} *input, {ctype} *output)", "{",
             f"    const {ctype} *inputs[{len(in_sizes)}];", f"    {ctype} *outputs[{len(out_sizes)}];"]
    for role, sizes in (("input", in_sizes), ("output", out_sizes)):
        at = 0
        for i, n in enumerate(sizes):
            lines.append(f"    {role}s[{i}] = {role} + {at};")
            at += n
    return lines + [f"    return {multi}(inputs, outputs);", "}", ""]


def static_array(ctype: str, name: str, values, const: bool = False) -> str:
    """A file-scope `static [const] ctype name[n] = {...};` (RAM when not const: the training step's copies)."""
    v = np.asarray(values).reshape(-1)
    if ctype == "float":
        body = ", ".join(c_float(float(x)) for x in v)
    else:
        body = ", ".join(str(int(x)) for x in v)
    lines, line = [], ""
    for part in body.split(", "):
        if len(line) + len(part) > 110:
            lines.append(line.rstrip())
            line = ""
        line += part + ", "
    lines.append(line.rstrip(", "))
    return (f"static {'const ' if const else ''}{ctype} {name}[{v.size}] = {{\n    "
            + "\n    ".join(lines) + "\n};")
