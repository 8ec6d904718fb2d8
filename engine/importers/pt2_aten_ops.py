"""ATen op handlers for engine/importers/pt2_aten.py: one small function per aten overload family, by what
the ops do: engine/importers/pt2_aten_nn.py (convolution, matrix products, normalization, pooling, resize) and
pt2_aten_tensor.py (element-wise, data movement, creation, reductions); pt2_aten_handler.py says what a handler
gets.
"""
from __future__ import annotations

from engine.importers.pt2_aten_handler import Handler, Ref  # noqa: F401 - what the converter uses
from engine.importers.pt2_aten_nn import NN_HANDLERS
from engine.importers.pt2_aten_tensor import TENSOR_HANDLERS

assert not NN_HANDLERS.keys() & TENSOR_HANDLERS.keys(), "an aten overload has two handlers"
HANDLERS: dict[str, Handler] = {**NN_HANDLERS, **TENSOR_HANDLERS}
