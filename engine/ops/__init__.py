"""The operator library. Importing this package registers every op in `OPS`."""
from engine.ops.base import (OPS, Attr, Cost, OpContext, OpDef, get_op, ops_where, register,  # noqa: F401
                             supported_ops)
from engine.ops import (activation, conv, elementwise, linear, norm, pool, quantize, recurrent,  # noqa: F401
                        reduce, shape, svdf)
