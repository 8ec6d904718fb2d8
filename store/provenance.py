"""Was a version's model ever trained, and with what accuracy? Decided from the version's provenance.

    p = version_accuracy(store, version_id)
    p["trained"], p["accuracy"], p["dataset"], p["reason"]

Rules (the version's action, then its ancestors):
- `import` (an ONNX / TFLite / .pt2 file): trained, its weights came with the file;
- `train`: trained (params hold the accuracy and the data set);
- `search`: trained (a search trial's model; params name the study and trial, hold the accuracy and data set);
- `zoo`, `blank`: untrained, random (seeded) weights;
- a compression action that fine-tunes on data (engine.compress's `trains` actions with epochs > 0): trained;
  any other compression action keeps the state of the version it was made from;
- `edit` (canvas, layer table): keeps the parent's state when the weights are unchanged (same constants),
  untrained otherwise (changed layers got new weights);
- `restore`, `branch`: the state of the version they copy.
The accuracy is the one recorded with the version (train, compress) or, for copies, with the source; a
version whose model is untrained has no meaningful accuracy, so pages say "untrained" instead of a figure.
"""
from __future__ import annotations

from store.db import Store
from store.records import load_json
from store.rows import check_id

UNTRAINED_NOTE = ("untrained: this version's weights were never trained (random initialization), so its accuracy "
                  "means nothing; train it on the Train page first")


def _fetch(con, vid: int):
    return con.execute("SELECT action, params, parent_id, blob_hash FROM versions WHERE id = ?", [vid]).fetchone()


def _fine_tunes(action: str, params: dict) -> bool | None:
    """True when the compression action trains on data with these params; None when `action` is not one."""
    from engine.compress import ACTIONS  # lazy: the store does not need torch to open a database

    spec = ACTIONS.get(action)
    if spec is None:
        return None
    if not spec.trains or not params.get("dataset"):
        return False
    epochs = params.get("epochs", spec.params["epochs"].default if "epochs" in spec.params else 1)
    return bool(epochs) and epochs > 0


def _state(con, vid: int, depth: int = 0) -> dict:
    row = _fetch(con, vid) if depth < 1000 else None
    if row is None:
        return {"trained": False, "accuracy": None, "dataset": None, "reason": "the version it came from is gone"}
    action, params, parent, blob = row[0], load_json(row[1]) or {}, row[2], row[3]
    acc, data = params.get("accuracy"), params.get("dataset")
    if action == "import":
        return {"trained": True, "accuracy": acc, "dataset": data, "reason": "imported file: its weights came with it"}
    if action == "train":
        return {"trained": True, "accuracy": acc, "dataset": data, "reason": "trained in TinyStudio"}
    if action == "search":  # a search trial's model, trained from scratch on the study's data set
        return {"trained": True, "accuracy": acc, "dataset": data,
                "reason": f"trained by search study '{params.get('study')}', trial {params.get('trial')}"}
    if action in ("zoo", "blank"):
        return {"trained": False, "accuracy": None, "dataset": None,
                "reason": f"{'zoo model' if action == 'zoo' else 'blank canvas'}: random initial weights"}
    if action in ("restore", "branch") and isinstance(params.get("version_id"), int):
        return _state(con, params["version_id"], depth + 1)
    if action == "edit":
        if parent is None:
            return {"trained": False, "accuracy": None, "dataset": None, "reason": "drawn on the canvas"}
        up = _state(con, parent, depth + 1)
        prow = _fetch(con, parent)
        if up["trained"] and prow is not None and prow[3] == blob:
            return {**up, "accuracy": None, "reason": "edited without changing the trained weights"}
        if up["trained"]:
            return {"trained": False, "accuracy": None, "dataset": None,
                    "reason": "edited after training: changed layers have new, untrained weights"}
        return up
    tunes = _fine_tunes(action, params)
    if tunes:
        return {"trained": True, "accuracy": acc, "dataset": data, "reason": f"{action} fine-tuned on data"}
    if parent is None:
        return {"trained": False, "accuracy": None, "dataset": None, "reason": f"made by '{action}' from nothing"}
    up = _state(con, parent, depth + 1)
    if tunes is None:  # an action this rule set does not know: it keeps what it was made from
        return up
    reason = f"{action} of a trained version" if up["trained"] else up["reason"]
    return {**up, "accuracy": acc if up["trained"] else None, "dataset": data or up["dataset"], "reason": reason}


def version_accuracy(store: Store, version_id: int, *, user=None) -> dict:
    """{"trained": bool, "accuracy": 0..1 | None, "dataset": {...} | None, "reason": "..."} of a version
    `user` may see (store.access)."""
    from store.access import actor
    from store.rows import version_row

    version_id = check_id(version_id, "version id")
    user = actor(store, user)
    with store.transaction() as con:
        version_row(con, version_id, user=user)  # NotFoundError for a missing or another user's version
        return _state(con, version_id)
