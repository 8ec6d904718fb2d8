"""Small shared widgets and helpers for the pages."""
from __future__ import annotations

import contextlib
import re

import streamlit as st

from app.labels import web_message
from engine.errors import TinyStudioError


@contextlib.contextmanager
def user_errors():
    """Show a user error as one line and stop this run; the app and the saved sessions stay as they were."""
    try:
        yield
    except TinyStudioError as e:
        head, _, supported = str(e).partition("; supported ops: ")
        st.error(web_message(head), icon=":material/error:")
        if supported:  # an unsupported op: the list of what is supported is long; it goes below, folded
            with st.expander(f"Supported ops ({len(supported.split(', '))})"):
                st.write(supported)
        st.stop()


def parse_shape_text(text: str, required: bool = False) -> tuple[int, ...] | None:
    text = (text or "").strip()
    if not text:
        if required:
            raise TinyStudioError("give an input shape, e.g. 1,3,32,32")
        return None
    try:
        shape = tuple(int(p) for p in re.split(r"[,x\s]+", text) if p)
    except ValueError:
        raise TinyStudioError(f"input shape '{text}': expected comma-separated integers like 1,3,224,224") from None
    if not shape or min(shape) < 1:
        raise TinyStudioError(f"input shape '{text}': every dimension must be a positive integer")
    return shape


def safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "session"


def zoo_param_inputs(params: list[dict], model: str = "") -> dict:
    """Inputs for a zoo model's parameters; returns only the values that differ from the defaults.
    Keys are per model: models share parameter names (classes, width) with different defaults."""
    values = {}
    cols = st.columns(3)
    for i, p in enumerate(params):
        col = cols[i % 3]
        key = f"zoo_{model}_{p['name']}"
        label = p["name"].replace("_", " ")  # "calibration samples", not the raw key (the CLI's name is in the key)
        if p.get("choices"):
            v = col.selectbox(label, p["choices"], index=list(p["choices"]).index(p["default"]), help=p["help"],
                              key=key)
        elif p["type"] == "bool":
            v = col.checkbox(label, value=bool(p["default"]), help=p["help"], key=key)
        elif p["type"] == "int":
            v = col.number_input(label, value=int(p["default"]), min_value=p.get("min"), max_value=p.get("max"),
                                 step=1, help=p["help"], key=key)
        elif p["type"] == "float":
            v = col.number_input(label, value=float(p["default"]), min_value=p.get("min"),
                                 max_value=p.get("max"), help=p["help"], key=key, format="%g")
        else:
            v = col.text_input(label, value=str(p["default"]), help=p["help"], key=key)
        if v != p["default"]:
            values[p["name"]] = str(v).lower() if isinstance(v, bool) else v
    return values


def short_count(n: int) -> str:
    """A count that fits a metric tile: 24,332 · 2.657 M · 1.2 G (the exact figure goes in its help)."""
    for scale, unit in ((1e9, "G"), (1e6, "M")):
        if abs(n) >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n:,}"


def short_bytes(n: float) -> str:
    return f"{n / 2**20:,.2f} MB" if abs(n) >= 2**20 else f"{n / 1024:,.1f} KB"


DEFAULT_MCUS = ("stm32f746ng", "nrf5340", "esp32s3")


def mcu_picker(default: tuple[str, ...] = DEFAULT_MCUS) -> tuple[list[str], str | None]:
    """Pick several MCUs and a runtime (None = each MCU's default runtime)."""
    from hwmodels.mcu import load_mcus
    from hwmodels.runtime import load_runtimes

    mcus = load_mcus()
    runtimes = ["default for each core", *load_runtimes()]
    # Streamlit drops a widget's state when a page without it runs; the choice is kept under other keys and
    # handed back to the widgets when the page shows them again.
    if "mcus" not in st.session_state:
        st.session_state["mcus"] = st.session_state.get("chosen_mcus", [m for m in default if m in mcus])
    if "runtime" not in st.session_state:
        st.session_state["runtime"] = st.session_state.get("chosen_runtime", runtimes[0])
    c1, c2 = st.columns([4, 1])
    chosen = c1.multiselect("MCUs", list(mcus), key="mcus",
                            format_func=lambda m: f"{m} ({mcus[m].core}, {mcus[m].sram_kb:g} KB)",
                            help="Shown with each MCU's core and SRAM; the table below compares their fit.")
    runtime = c2.selectbox("Runtime", runtimes, key="runtime",
                           help="Default: tinystudio-c, the C library TinyStudio's export generates (static arena, "
                                "no interpreter), as deployed; the TFLM-based runtimes for comparison.")
    st.session_state["chosen_mcus"], st.session_state["chosen_runtime"] = chosen, runtime
    return chosen, None if runtime.startswith("default") else runtime


def fit_cards(prof, per_row: int = 3, key: str = "fit") -> None:
    """One card per MCU, above any table (see fit_card); shared by Profile and Compress."""
    targets = list(prof.targets)
    for start in range(0, len(targets), per_row):
        for col, t in zip(st.columns(per_row), targets[start:start + per_row]):
            with col:
                fit_card(t, key)


def fit_card(t, key: str = "fit") -> None:
    """Fits or not and by how much, RAM and flash with what dominates them, latency and energy (all estimates)
    of one hwmodels TargetEstimate, in a bordered container keyed f"{key}_card_{mcu}"."""
    from app.charts import fit_summary

    f = fit_summary(t)
    with st.container(border=True, key=f"{key}_card_{t.mcu}"):
        mark = ":green[**✓ fits**]" if f["fits"] else ":red[**✗ does not fit**]"
        st.markdown(f"**{t.mcu}** · {t.runtime}  \n{mark}")
        for what, r in (("RAM", f["ram"]), ("Flash", f["flash"])):
            colour = "green" if r["fits"] else "red"
            nb = chr(0xA0)  # a share's figure and its % stay on one line
            shares = " · ".join(f"{name} {share * 100:.0f}{nb}%".replace(" ", nb) for name, share in r["shares"])
            st.markdown(f"**{what}** {r['text']}  \n:{colour}[{r['margin']}]  \n:gray[{shares}]",
                        help=f"{r['parts']}; the largest: {r['dominant']}")
            st.markdown(_use_bar(r["use"], r["fits"]), unsafe_allow_html=True)
        note = "" if f["calibrated"] else " (derived runtime figures)"
        st.markdown(f"**Latency** {f['latency']} · **energy** {f['energy']}  \n:gray[estimates{note}]")


def _use_bar(use: float, fits: bool) -> str:
    """A thin bar of the share of the MCU's capacity used: green when it fits, red (full) when it does not."""
    width = max(0.0, min(use, 1.0)) * 100 if use == use else 100.0
    colour = "#2e9e5b" if fits else "#d33f3f"
    return (f'<div style="background:#e8e8ec;border-radius:3px;height:8px;margin:-6px 0 10px 0">'
            f'<div style="width:{width:.1f}%;background:{colour};height:8px;border-radius:3px"></div></div>')
