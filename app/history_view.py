"""What the History page shows, as pure functions (testable without Streamlit): the version tree as table rows,
each action in words, accuracy as recorded, latency and fit per MCU, and human labels for stored keys.

    describe_action(v, labels, changes="conv1: 64 → 32 output channels")   # "pruned channels ...; conv1: ..."
    accuracy_text(store.version_accuracy(st, vid))   # "96.38 % (digits)" | "untrained (...)" | "not measured"
    LABELS["weight_bytes"]        # "Weights (B)"
"""
from __future__ import annotations

import math

# Stored keys (metrics, compare totals, per-layer rows) as people say them.
LABELS = {
    "macs": "MACs", "flops": "FLOPs", "params": "Parameters", "layers": "Layers",
    "weight_bytes": "Weights (B)", "quant_bytes": "Quantization data (B)", "arena_bytes": "Activation arena (B)",
    "activation_peak_bytes": "Activation arena (B)", "accuracy": "Accuracy",
}



def label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " ").capitalize())


def percent(x) -> str:
    """A fraction as people read it: 0.96381 -> '96.38 %'."""
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return ""
    return f"{100 * x:.2f} %"


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _fraction(params: dict) -> str:
    return _pct(params["keep"]) if isinstance(params.get("keep"), (int, float)) else ""


def _size(n) -> str:
    if not isinstance(n, (int, float)):
        return ""
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} KB"


def _epochs(p: dict) -> str:
    e = p.get("epochs")
    return "" if e is None else ("no fine-tuning" if e == 0 else f"{e} fine-tuning epoch{'s' if e != 1 else ''}")


def _join(*parts) -> str:
    return ", ".join(str(p) for p in parts if p)


def _dataset(p: dict) -> str:
    d = p.get("dataset")
    if isinstance(d, dict) and d.get("source"):
        return f"on {d['source']}"
    return f"on {d}" if isinstance(d, str) and d else ""


def action_words(action: str, p: dict, labels: dict[int, str]) -> str:
    """The action alone, from its stored parameters. `labels` maps version ids to 'v3' (or 'v3 of KWS')."""
    p = p or {}
    if action == "zoo":
        return f"from the zoo: {p.get('spec', '')}".rstrip(": ")
    if action == "import":
        return _join(f"uploaded {p.get('file', 'a file')}", _size(p.get("bytes")))
    if action == "blank":
        shape = p.get("input_shape")
        return "blank canvas" + (f", input {'x'.join(map(str, shape))}" if shape else "")
    if action == "edit":
        return f"edited on the {p['via']}" if p.get("via") else "edited"
    if action == "restore":
        return f"restored {labels.get(p.get('version_id'), 'an earlier version')}"
    if action == "schedule":  # store.schedules: the same graph with a chosen execution schedule
        rec = p.get("schedule") if isinstance(p.get("schedule"), dict) else {}
        sch = rec.get("schedule") if isinstance(rec.get("schedule"), dict) else {}
        return _join(f"schedule {sch.get('kind', '?')}", rec.get("requested") and f"asked {rec['requested']}",
                     isinstance(rec.get("max_mac_overhead"), (int, float)) and
                     f"MAC limit {_pct(rec['max_mac_overhead'])}")
    if action == "branch":
        return f"branched from {labels.get(p.get('version_id'), 'another session')}"
    if action == "train":
        return _join("trained", _dataset(p), p.get("epochs") and f"{p['epochs']} epochs",
                     p.get("lr") and f"learning rate {p['lr']:g}", p.get("batch_size") and f"batch {p['batch_size']}")
    if action == "search":
        params = ", ".join(f"{k}={v}" for k, v in sorted((p.get("params") or {}).items()))
        return _join(f"from search study '{p.get('study', '?')}', {p.get('strategy', '')} trial {p.get('trial', '?')}",
                     p.get("space") and f"space {p['space']}", _dataset(p), params)
    if action == "quantize-int8":
        n = p.get("calibration_samples")
        kind = "int16x8 PTQ (int16 activations)" if p.get("activations") == "int16" else "int8 PTQ"
        return _join(kind, n and f"{n} calibration samples", p.get("method") and f"{p['method']} ranges",
                     p.get("layout"))
    if action == "qat-int8":
        return _join("int8 quantization-aware training", _epochs(p))
    if action == "fold-bn":
        return "BatchNorm folded into the convolutions, activations fused"
    if action == "prune-channels":
        what = "channel groups" if p.get("target") == "channels" else "MACs"
        return _join(f"channels pruned to {_fraction(p)} of the {what}".replace(" to  of", " to a share of"),
                     p.get("criterion") and f"{p['criterion']} importance", _epochs(p))
    if action == "prune-magnitude":
        s = p.get("sparsity")
        return _join("magnitude pruning", isinstance(s, (int, float)) and f"{_pct(s)} of weights zeroed", _epochs(p))
    if action == "low-rank":
        how = f"{_pct(p['energy'])} of the spectrum kept" if p.get("target", "energy") == "energy" and \
            isinstance(p.get("energy"), (int, float)) else (_fraction(p) and f"{_fraction(p)} of the weights kept")
        return _join("low-rank factorization", how, _epochs(p))
    if action == "mixed-precision":
        return _join("mixed int8/int4 weights", p.get("target") == "bytes" and _fraction(p) and
                     f"to {_fraction(p)} of the int8 bytes", _epochs(p))
    if action == "ternary":
        return _join("ternary weights", _epochs(p))
    if action == "distill":
        return _join("knowledge distillation", _epochs(p))
    if action == "early-exit":
        return "early exit added"
    shown = {k: v for k, v in p.items() if k not in ("accuracy", "dataset") and not isinstance(v, (dict, list))}
    return _join(action, *(f"{k.replace('_', ' ')} {v}" for k, v in list(shown.items())[:4]))


def describe_action(v, labels: dict[int, str], changes: str | None = None) -> str:
    """The action in words, then what it changed in the graph (engine.diff), when that adds something."""
    words = action_words(v.action, v.params, labels)
    if changes and changes != "no change to the graph" and v.action not in ("zoo", "import", "blank"):
        return f"{words}: {changes}"
    return words


def accuracy_text(prov: dict) -> str:
    """A version's accuracy as the store's provenance rules give it (store.version_accuracy), or an honest word
    for why there is none: "96.38 % (digits)" | "untrained (...)" | "not measured"."""
    if not prov.get("trained"):
        reason = str(prov.get("reason") or "")
        return "untrained (random weights)" if "random" in reason else f"untrained ({reason})" if reason else "untrained"
    a = prov.get("accuracy")
    if isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a):
        d = prov.get("dataset")
        where = f" ({d['source']})" if isinstance(d, dict) and d.get("source") else ""
        return percent(float(a) / 100 if a > 1 else float(a)) + where
    return "not measured"


def fit_cell(t) -> str:
    """One MCU's estimate in a table cell: '1.23 ms · fits' or '1.23 ms · RAM 140 %, flash 80 %'."""
    ms = f"{t.latency_ms:,.2f} ms" if t.latency_ms < 1000 else f"{t.latency_ms / 1000:,.2f} s"
    if t.fits:
        return f"{ms} · fits"
    checks = (("RAM", t.ram_use, t.fits_ram), ("flash", t.flash_use, t.fits_flash))
    over = [f"{name} {100 * use:.0f} %" for name, use, ok in checks if not ok]
    return f"{ms} · no: " + ", ".join(over)


def tree_rows(versions, current: int | None = None, shown: int | None = None, described: dict | None = None,
              accuracy: dict | None = None, fits: dict | None = None) -> list[dict]:
    """Depth-first from the roots, children indented. `described`, `accuracy`: text per version id; `fits`:
    {version id: {column: cell}}. ● marks the current version, ◀ the one the pages show when it is another."""
    described, accuracy, fits = described or {}, accuracy or {}, fits or {}
    children: dict[int | None, list] = {}
    ids = {v.id for v in versions}
    for v in versions:
        parent = v.parent_id if v.parent_id in ids else None
        children.setdefault(parent, []).append(v)
    rows: list[dict] = []

    def walk(parent, depth):
        for v in sorted(children.get(parent, []), key=lambda x: x.id):
            m = v.metrics or {}
            mark = (" ●" if v.id == current else "") + (" ◀" if v.id == shown and shown != current else "")
            row = {"version": f"{'  ' * depth}{'└ ' if depth else ''}{v.label}{mark}", "action": v.action,
                   "what changed": described.get(v.id, ""), "accuracy": accuracy.get(v.id, ""),
                   label("macs"): m.get("macs"), label("params"): m.get("params"),
                   label("weight_bytes"): m.get("weight_bytes"), label("arena_bytes"): m.get("arena_bytes")}
            row.update(fits.get(v.id, {}))
            row["created"] = v.created[:19].replace("T", " ")
            rows.append(row)
            walk(v.id, depth + 1)

    walk(None, 0)
    return rows


FIGURES = "figures of"  # first column of the figures table (the tree table's is "version")


def split_rows(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """tree_rows as two tables that each fit a page's width: what each version is (action in words, accuracy),
    and its figures (latency and fit per MCU, MACs, bytes), in the same order."""
    what_keys = ("version", "action", "what changed", "accuracy")
    what = [{k: r[k] for k in what_keys} for r in rows]
    figures = [{FIGURES: r["version"].strip().lstrip("└ "), **{k: v for k, v in r.items() if k not in what_keys}}
               for r in rows]
    return what, figures


def layer_delta_rows(layers: list[dict]) -> list[dict]:
    """compare_versions' per-layer records as flat table rows: A, B and B - A side by side per figure."""
    def shape(rec):
        return "×".join(map(str, rec["output_shape"])) if rec and rec.get("output_shape") is not None else ""

    rows = []
    for r in layers:
        a, b = r["a"] or {}, r["b"] or {}
        row = {"layer": r["name"], "op": r["op"], "status": r["status"]}
        for key, name in (("macs", "MACs"), ("params", "Parameters"), ("weight_bytes", "Weights (B)")):
            row[f"{name} A"], row[f"{name} B"], row[f"Δ {name}"] = a.get(key), b.get(key), r["delta"][key]
        row["output A"], row["output B"] = shape(r["a"]), shape(r["b"])
        rows.append(row)
    return rows
