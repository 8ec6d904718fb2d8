"""Plotly figures for the Train page: pure functions of training records (no streamlit), so they are testable.

    curves(history)                    loss (train, validation) and validation accuracy per epoch
    confusion(matrix, class_names)     true class x predicted class, counts in the cells
    per_class(rows)                    validation accuracy per class (app.workflows.train.per_class_accuracy)
    scores(modes, class_names, label)  class scores of one input, float and int8 side by side
"""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

BLUE, ORANGE, GREEN, RED = "#4c78a8", "#f58518", "#54a24b", "#e45756"


def _base(fig: go.Figure, title: str, height: int = 320) -> go.Figure:
    # The legend sits under the plot: above it, it would cover the subplot titles.
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=20, t=60, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=-0.3, x=0.5, xanchor="center", yanchor="top"))
    return fig


def curves(history: list[dict]) -> go.Figure:
    """Loss (left) and validation accuracy (right) per epoch."""
    ep = [h["epoch"] for h in history]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "validation accuracy"), horizontal_spacing=0.12)
    fig.add_trace(go.Scatter(x=ep, y=[h["train_loss"] for h in history], name="training loss", mode="lines+markers",
                             line=dict(color=BLUE)), 1, 1)
    fig.add_trace(go.Scatter(x=ep, y=[h["val_loss"] for h in history], name="validation loss", mode="lines+markers",
                             line=dict(color=ORANGE)), 1, 1)
    fig.add_trace(go.Scatter(x=ep, y=[h["val_accuracy"] for h in history], name="validation accuracy",
                             mode="lines+markers", line=dict(color=GREEN),
                             hovertemplate="epoch %{x}: %{y:.2%}<extra></extra>"), 1, 2)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(ep) <= 20 else None)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], row=1, col=2)
    return _base(fig, "Training curves", height=360)


def confusion(matrix: list[list[int]], class_names) -> go.Figure:
    names = [str(c) for c in class_names] if class_names and len(class_names) == len(matrix) else \
        [str(i) for i in range(len(matrix))]
    fig = go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues", text=matrix, texttemplate="%{text}",
                               hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>", showscale=False))
    fig.update_xaxes(title_text="predicted class", type="category")
    fig.update_yaxes(title_text="true class", type="category", autorange="reversed")
    return _base(fig, "Confusion matrix (validation split)", height=max(320, 28 * len(names) + 120))


def per_class(rows: list[dict]) -> go.Figure:
    fig = go.Figure(go.Bar(x=[r["class"] for r in rows], y=[r["accuracy"] for r in rows], marker_color=BLUE,
                           customdata=[[r["correct"], r["samples"]] for r in rows],
                           hovertemplate="class %{x}: %{y:.1%} (%{customdata[0]} of %{customdata[1]})<extra></extra>"))
    fig.update_xaxes(title_text="class", type="category")
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], title_text="accuracy")
    return _base(fig, "Accuracy per class (validation split)")


def scores(modes: list[dict], class_names, label: int | None = None) -> go.Figure:
    """Bars of class scores per executor (float, int8); the true class's label is marked."""
    n = len(modes[0]["scores"]) if modes else 0
    names = [str(c) for c in class_names] if class_names and len(class_names) == n else [str(i) for i in range(n)]
    if label is not None and 0 <= label < n:
        names = [f"{c} (true)" if i == label else c for i, c in enumerate(names)]
    colors = {"float": BLUE, "int8": ORANGE}
    fig = go.Figure([go.Bar(x=names, y=m["scores"], name=f"{m['mode']}: predicts {m['class']}",
                            marker_color=colors.get(m["mode"], GREEN),
                            hovertemplate="%{x}: %{y:.2%}<extra></extra>") for m in modes])
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="class", type="category")
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], title_text="score")
    return _base(fig, "Class scores")
