"""Model and array files: writing a model (engine.exporters.files, re-exported for the commands and pages), reading
.npy/.npz arrays."""
from __future__ import annotations

import os

import numpy as np

from engine.errors import TinyStudioError
from engine.exporters.files import write_model  # noqa: F401 - the commands' and pages' import


def load_array(path: str) -> dict[str, np.ndarray] | np.ndarray:
    if not os.path.isfile(path):
        raise TinyStudioError(f"{path}: no such input file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise TinyStudioError(f"{path}: not a readable .npy/.npz array file ({e})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            return {k: data[k] for k in data.files}
    return data
