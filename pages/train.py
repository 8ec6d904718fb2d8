"""Train: fit the current version to a data set in the background (live curves), see how it did, try it."""
from __future__ import annotations

import streamlit as st

import store as db
from app import train_charts, widgets
from app.data_panel import data_panel
from app.state import get_store, require_current, session_caption
from app.train_view import fit_for_training, latest_job, live_training, start_training, training_result
from app.workflows.train import TrainSettings
from engine.tryit import dataset_sample, sample_from_image, sample_from_npy, try_input

st.title("Train")
s, v, graph = require_current()
session_caption(s, v)
store = get_store()

state = db.version_accuracy(store, v.id)
if state["trained"]:
    acc = state["accuracy"]
    st.success(f"Version {v.label} is trained ({state['reason']})"
               + (f": validation accuracy **{acc:.2%}**" if isinstance(acc, (int, float)) else "") + ".",
               icon=":material/check_circle:")
else:
    st.warning(f"Version {v.label} is **untrained** ({state['reason']}): train it on a data set below.",
               icon=":material/warning:")

with st.expander("Data", expanded=True):
    with widgets.user_errors():
        data = data_panel(f"train_data_{s.id}", s.id, prefer=(state["dataset"] or {}).get("source"))

to_train, note = None, None
if data is not None:
    with widgets.user_errors():
        to_train, note = fit_for_training(graph, data, v, s)
    if note:
        st.info(f"The zoo model is rebuilt for this data set, as `tinystudio train` does: {note}.",
                icon=":material/aspect_ratio:")

with st.form("train_form"):
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", min_value=1, max_value=1000, value=20, step=1,
                             help="The most epochs to run; training stops early when the validation loss has not "
                                  "improved for 5 epochs, and keeps the best epoch's weights.")
    lr = c2.number_input("Learning rate", min_value=1e-6, max_value=1.0, value=3e-3, format="%g", step=1e-3,
                         help="Adam's learning rate")
    batch = c3.number_input("Batch size", min_value=1, max_value=4096, value=32, step=1)
    seed = c4.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1,
                           help="initialization of the shuffling and dropout; the split is the data panel's")
    go = st.form_submit_button("Train in the background", type="primary", disabled=to_train is None)
if data is None:
    st.caption("Choose a data set above to train.")
running = latest_job(s.id)
if go and to_train is not None:
    if running is not None and running.status in ("queued", "running"):
        st.warning(f"train #{running.id} is still running; wait for it to finish.")
    else:
        with widgets.user_errors():
            settings = TrainSettings(int(epochs), float(lr), int(batch), int(seed)).check()
            job = start_training(s.id, v.id, to_train, data, settings, note)
            # Watch this job from now on: a short run can finish before the fragment ever sees it running, and
            # the page must still rerun once it is done (the new version, the caption).
            st.session_state[f"_train_running_{s.id}"] = job.id
            st.rerun()

live_training(s.id)
job = latest_job(s.id)
if job is not None and job.status == "done" and isinstance(job.result, dict):
    training_result(job)

st.divider()
st.subheader("Try it")
if data is None:
    st.caption("Choose a data set above to try the current version on its samples.")
elif note:  # the zoo model is rebuilt for this data set: the current version cannot take its samples yet
    st.info(f"Train first: {v.label} takes a different input than data set '{data.name}'; the version that "
            "training makes can be tried here.", icon=":material/info:")
else:
    images = len(data.input_shape) == 3 and data.input_shape[0] in (1, 3)
    how = st.radio("Input", ["a data set sample", "my input (.npy)"] + (["my image"] if images else []),
                   horizontal=True, key=f"try_kind_{s.id}")
    x = label = None
    n = len(data.x_val)
    if how == "a data set sample":
        key = f"try_index_{s.id}"
        st.session_state.setdefault(key, 0)
        st.session_state[key] = min(st.session_state[key], n - 1)
        c1, c2 = st.columns([3, 1])
        c2.write("")
        if c2.button("Random sample", key=f"try_random_{s.id}"):
            import random

            st.session_state[key] = random.randrange(n)
        index = c1.number_input(f"Validation sample (0..{n - 1})", min_value=0, max_value=n - 1, step=1, key=key)
        with widgets.user_errors():
            x, label, _ = dataset_sample(data, int(index))
    elif how == "my image":
        up = st.file_uploader(f"An image (PNG, JPEG): resized to {data.input_shape[2]}x{data.input_shape[1]}, "
                              f"{'gray' if data.input_shape[0] == 1 else 'RGB'}, brightness mapped onto the data set's "
                              "range of values", type=["png", "jpg", "jpeg", "bmp", "gif"], key=f"try_img_{s.id}")
        invert = st.checkbox("Invert (dark ink on light paper, for data drawn light on dark like digits)",
                             key=f"try_invert_{s.id}")
        if up is not None:
            with widgets.user_errors():
                x = sample_from_image(up.getvalue(), up.name, data, invert)
    else:
        up = st.file_uploader(f"One sample as .npy, shape {'x'.join(map(str, data.input_shape))} (channels first, "
                              "raw values: normalized like the data set)", type=["npy"], key=f"try_npy_{s.id}")
        if up is not None:
            with widgets.user_errors():
                x = sample_from_npy(up.getvalue(), up.name, data, data.input_shape)
    if x is not None:
        with widgets.user_errors():
            res = try_input(graph, x, data.class_names, label)
        cols = st.columns(len(res["modes"]) + 1)
        for col, m in zip(cols, res["modes"]):
            if data.task != "classification":  # regression / reconstruction: the outputs themselves
                col.metric(f"{m['mode']} output", ", ".join(f"{r:.4g}" for r in m["raw"][:4])
                           + (" …" if len(m["raw"]) > 4 else ""))
                continue
            col.metric(f"{m['mode']} prediction", m["class"])
            verdict = "" if label is None else (" · right" if m["prediction"] == label else " · wrong")
            col.caption(f"score {m['scores'][m['prediction']]:.1%}{verdict}")
        cols[-1].metric("true class", res["label_class"] if res["label_class"] is not None else "-")
        if not res["int8_available"]:
            st.caption("This version is float: quantize it on the Compress page (quantize-int8) to compare the int8 "
                       "kernels' prediction.")
        if not state["trained"]:
            st.caption("The version is untrained: its predictions are random.")
        if data.task == "classification":
            st.plotly_chart(train_charts.scores(res["modes"], data.class_names, label), width="stretch",
                            key="try_scores")
        if x.ndim == 3 and x.shape[0] in (1, 3):
            import numpy as np

            img = x.transpose(1, 2, 0) if x.shape[0] == 3 else x[0]
            img = (img - img.min()) / max(float(img.max() - img.min()), 1e-9)
            st.image(np.asarray(img, np.float32), caption="the input (rescaled for display)", width=160, clamp=True)
