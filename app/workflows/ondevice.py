"""What the CLI (`tinystudio profile --training`) and the Train-on-device page share: SPEC -> training profile.

    prof = training_report(graph, "sparse:256K", ["stm32f746ng"], data_name="keywords")
"""
from __future__ import annotations

from engine.errors import TinyStudioError

DEFAULT_DATA = "keywords"


def training_report(graph, spec_text: str, mcus: list[str], data_name: str | None = None, optimizer: str = "sgd",
                    weights: str = "float32"):
    return training_reports(graph, spec_text, mcus, data_name, optimizer, weights)[0]


def training_reports(graph, spec_text: str, mcus: list[str], data_name: str | None = None, optimizer: str = "sgd",
                     weights: str = "float32"):
    """(TrainingProfile, SparseResult or None): with sparse:BYTES also the planner's probes and prediction."""
    from engine.ondevice import parse_spec, resolve
    from engine.ondevice import sparse as sp
    from engine.ondevice.memory import training_profile

    spec = parse_spec(spec_text)
    result = None
    if spec.kind == "sparse":
        from engine.data import load_dataset

        result = sp.plan_sparse(graph, spec.budget_bytes, load_dataset(data_name or DEFAULT_DATA))
        plan = result.plan
    elif data_name:
        raise TinyStudioError("--data is only used with --training sparse:BYTES")
    else:
        plan = resolve(graph, spec)
    return training_profile(graph, plan, list(mcus) or None, optimizer=optimizer, weights=weights), result


def probe_rows(result) -> list[dict]:
    """One row per probe of the sparse planner, best gain per byte first (the page's and the CLI's table)."""
    chosen = set(result.plan.layers)
    rows = [{"layer": p.layer, "channels": p.fraction, "accuracy": round(p.accuracy, 4), "gain": round(p.gain, 4),
             "z": round(p.z, 2), "counts": "yes" if p.significant else "no (noise)" if p.gain > 0 else "no",
             "extra SRAM B": p.extra_bytes, "gain per KB": round(p.gain_per_kb, 5),
             "chosen": "yes" if p.layer in chosen and result.plan.fraction(p.layer) == p.fraction else ""}
            for p in result.probes]
    return sorted(rows, key=lambda r: -r["gain per KB"])


def sparse_summary(result) -> str:
    """One line: the predicted accuracy and where the gain comes from."""
    extra = [f"{k} ({result.plan.fraction(k):g})" for k in result.plan.layers[:-1]]
    return (f"predicted accuracy {result.predicted_accuracy:.1%} on the validation split: classifier alone "
            f"{result.baseline_accuracy:.1%} (before fine-tuning {result.start_accuracy:.1%}), predicted gain "
            f"{result.predicted_gain:+.1%} from " + (", ".join(extra) if extra else "no layer (no probe's gain "
                                                      "is above its noise)")
            + f"; {len(result.probes)} probes of {result.probe_steps} SGD steps"
            + (" (cached)" if result.cached else ""))


SPEC_KINDS = {"last": "Last K layers", "all": "All layers", "bias": "Biases only", "sparse": "Sparse update (planner)"}


def spec_text(kind: str, k: int = 1, budget_kb: float = 256.0) -> str:
    """The SPEC string the page's widgets describe (the same the CLI takes)."""
    return {"last": f"last:{int(k)}", "sparse": f"sparse:{int(budget_kb * 1024)}"}.get(kind, kind)


def sparse_report(graph, budget_bytes: int, mcu: str, data_name: str):
    """(SparseResult, TrainingProfile) for the page: the planner's choice and its profile."""
    prof, r = training_reports(graph, f"sparse:{int(budget_bytes)}", [mcu], data_name)
    return r, prof


def layer_rows(prof) -> list[dict]:
    """One row per layer, then one per fixed buffer of the exported C (its bytes under "RAM weights B")."""
    rows = [{"layer": lt.name, "op": lt.op,
             "updated": f"{lt.channel_fraction:.0%} of channels" if lt.updated else ("bias" if lt.bias_only else "—"),
             "kept activations B": lt.kept_bytes, "gradient B": lt.grad_bytes, "dW B (applied, not stored)":
             lt.weight_grad_bytes, "RAM weights B": lt.ram_weight_bytes, "forward ms": round(lt.forward_ms, 3),
             "backward ms": round(lt.backward_ms, 3)} for lt in prof.layers]
    return rows + [{"layer": f"({name})", "op": what, "updated": "—", "kept activations B": 0, "gradient B": 0,
                    "dW B (applied, not stored)": 0, "RAM weights B": b, "forward ms": 0.0, "backward ms": 0.0}
                   for name, b, what in prof.fixed]


def timeline_figure(prof, budget_bytes: int | None = None):
    """Stacked bytes per forward/backward step: kept activations and activation gradients (the arena), plus
    what stays outside it (RAM weights + optimizer state + the C's fixed buffers); the peak line and the budget.
    Weight gradients have no bar: each is applied as it is computed."""
    import plotly.graph_objects as go

    rows = prof.timeline()
    x = [r["what"] for r in rows]
    fixed = prof.outside_arena_bytes
    fig = go.Figure()
    for key, label in (("fixed", "weights in RAM + optimizer + logits, weight row, scratch"),
                       ("act", "activations"), ("grad", "activation gradients")):
        y = [fixed] * len(rows) if key == "fixed" else [r[key] for r in rows]
        fig.add_bar(x=x, y=y, name=label)
    fig.add_hline(y=prof.peak_sram_bytes, line_dash="dot",
                  annotation_text="peak (planned arena + outside it; = the exported C's RAM)")
    if budget_bytes:
        fig.add_hline(y=budget_bytes, line_color="red", annotation_text="budget")
    fig.update_layout(barmode="stack", title="Memory timeline of one training step (forward, then backward)",
                      yaxis_title="bytes", height=380, margin=dict(t=40, b=10, l=10, r=10))
    return fig


def poet_report(graph, prof, budget_bytes: int, objective: str):
    """(PoetPlan, one line on its replay in the reference) for the page."""
    from engine.ondevice.poet import poet_plan, verify_poet

    plan = poet_plan(prof, budget_bytes, objective)
    if not plan.feasible:
        return plan, "not run (infeasible)"
    rep = verify_poet(graph, prof, plan)
    return plan, (f"{rep['checked']} dropped activations ({rep['recomputed']} recomputed, {rep['paged']} paged) "
                  "equal the kept ones bit for bit")
