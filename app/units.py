"""Human units for every figure the studio shows: one place, so pages, cards and charts agree.

    fmt_bytes(311040)      '303.8 KB'     fmt_bytes(1758528)  '1.677 MB'     fmt_bytes(512)  '512 B'
    fmt_ms(0.0421)         '42.1 µs'      fmt_ms(261.54)      '261.5 ms'    fmt_ms(1986.3)  '1.986 s'
    fmt_uj(1334657.5)      '1.33 J'       fmt_uj(51785)       '51.8 mJ'     fmt_uj(12.5)    '12.5 µJ'
    fmt_pct(0.9638)        '96.38 %'      fmt_count(26660752) '26.66 M'

KB and MB are binary (1 KB = 1,024 B), as the MCU files give SRAM and flash in KB. Three or four significant
digits keep a card readable; the exact figure goes into a tooltip.
"""
from __future__ import annotations

import math


def _round_sig(x: float, digits: int) -> float:
    return float(f"{x:.{digits}g}") if x and math.isfinite(x) else x


def _sig(x: float, digits: int = 3) -> str:
    """x rounded to `digits` significant digits, with thousands separators, no exponent and no trailing
    zeros after the point (1.5 KB, not 1.500 KB)."""
    x = _round_sig(x, digits)
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
    text = f"{x:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _scaled(value: float, steps: tuple[tuple[float, str], ...], digits: int) -> str:
    """The largest unit in which the rounded value is at least 1 (999.96 ms -> '1 s', not '1,000 ms')."""
    for scale, unit in steps:
        if abs(_round_sig(value / scale, digits)) >= 1:
            return f"{_sig(value / scale, digits)} {unit}"
    scale, unit = steps[-1]
    return f"{_sig(value / scale, digits)} {unit}"


def fmt_bytes(n: float | None, digits: int = 4) -> str:
    """Bytes in the unit that keeps the number under 1,000 (1,000 KB is written 0.9766 MB)."""
    if n is None:
        return "—"
    if abs(n) < 1000:
        return f"{int(n):,} B"
    for scale, unit in ((2**10, "KB"), (2**20, "MB"), (2**30, "GB")):
        if abs(_round_sig(n / scale, digits)) < 1000 or unit == "GB":
            return f"{_sig(n / scale, digits)} {unit}"
    raise AssertionError("unreachable")


def fmt_ms(ms: float | None, digits: int = 4) -> str:
    """A duration given in milliseconds: µs below 1 ms, s from 1,000 ms."""
    if ms is None:
        return "—"
    return _scaled(ms, ((1e3, "s"), (1.0, "ms"), (1e-3, "µs")), digits)


def fmt_uj(uj: float | None, digits: int = 3) -> str:
    """An energy given in microjoules: mJ from 1,000 µJ, J from 1,000,000 µJ."""
    if uj is None:
        return "—"
    return _scaled(uj, ((1e6, "J"), (1e3, "mJ"), (1.0, "µJ")), digits)


def fmt_pct(fraction: float | None, decimals: int = 2) -> str:
    """0.9638 -> '96.38 %' (a fraction in, a percentage out)."""
    if fraction is None or not math.isfinite(fraction):
        return "—"
    return f"{fraction * 100:,.{decimals}f} %"


def fmt_count(n: float | None) -> str:
    """Counts (MACs, parameters): 24,332 · 26.66 M · 1.81 G."""
    if n is None:
        return "—"
    for scale, unit in ((1e9, "G"), (1e6, "M")):
        if abs(n) >= scale:
            return f"{_sig(n / scale, 4)} {unit}"
    return f"{int(n):,}"


# The before/after figures of a compression (engine.compress's before/after/delta keys), as people read them.
FIGURES = {"macs": ("MACs", fmt_count), "weight_bytes": ("Weights", fmt_bytes),
           "activation_peak_bytes": ("Activation arena", fmt_bytes), "accuracy": ("Accuracy", fmt_pct)}


def _signed(key: str, d: float | None) -> str:
    if d is None:
        return "—"
    # a change of accuracy is in percentage points
    text = f"{abs(d) * 100:,.2f} pp" if key == "accuracy" else FIGURES[key][1](abs(d))
    return ("+" if d > 0 else "−" if d < 0 else "±") + text


def figure_rows(before: dict, after: dict, delta: dict, columns=("before", "after"),
                keys=tuple(FIGURES)) -> list[dict]:
    """[{"figure": "Weights", "before": "61.04 KB", "after": "15.95 KB", "change": "−45.09 KB"}, ...]; the
    row's `key` keeps the stored name (to drop a row, e.g. an untrained model's accuracy)."""
    rows = []
    for k in keys:
        name, fmt = FIGURES[k]
        rows.append({"figure": name, columns[0]: fmt(before.get(k)), columns[1]: fmt(after.get(k)),
                     "change": _signed(k, delta.get(k)), "key": k})
    return rows
