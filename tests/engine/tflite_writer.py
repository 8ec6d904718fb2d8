"""A small, test-only TFLite flatbuffer writer (no TensorFlow needed).

    w = TFLiteWriter()
    x = w.tensor("x", (1, 8, 8, 3))
    k = w.tensor("k", (4, 3, 3, 3), data=np.ones((4, 3, 3, 3), np.float32))
    y = w.tensor("y", (1, 8, 8, 4))
    w.op("CONV_2D", [x, k], [y], "Conv2DOptions", Padding=0, StrideW=1, StrideH=1)
    data = w.finish([x], [y])          # bytes of a .tflite file

Tables are written with the `tflite` package's generated builder functions (ModelStart, TensorAddShape, ...),
so the layout follows TFLite's schema exactly; the tflite-micro interpreter reads the result.
"""
from __future__ import annotations

import importlib

import flatbuffers
import numpy as np
import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

_CODES = {name: code for code, name in BUILTIN_OPCODE2NAME.items()}
_TYPES = {"float32": 0, "float16": 1, "int32": 2, "uint8": 3, "int64": 4, "bool": 6, "int16": 7, "int8": 9}


def _mod(name: str):
    return importlib.import_module(f"tflite.{name}")


class TFLiteWriter:
    def __init__(self):
        self.tensors: list[dict] = []
        self.buffers: list[bytes] = [b""]  # buffer 0 is the empty sentinel the schema reserves
        self.ops: list[dict] = []
        self.codes: list[tuple[int, str | None]] = []
        self.extra_subgraphs = 0  # empty subgraphs appended after the main one (control-flow tests)

    def tensor(self, name: str, shape, dtype: str = "float32", data: np.ndarray | None = None,
               scale=None, zero_point=None, axis: int = 0, variable: bool = False) -> int:
        buf = 0
        if data is not None:
            arr = np.array(data, dtype=np.dtype(dtype).newbyteorder("<"), order="C")  # keeps 0-d scalars 0-d
            assert arr.shape == tuple(shape), (name, arr.shape, shape)
            self.buffers.append(arr.tobytes())
            buf = len(self.buffers) - 1
        self.tensors.append({"name": name, "shape": list(shape), "type": _TYPES[dtype], "buffer": buf,
                             "scale": scale, "zero_point": zero_point, "axis": axis, "variable": variable})
        return len(self.tensors) - 1

    def const(self, name: str, data: np.ndarray, dtype: str | None = None) -> int:
        data = np.asarray(data)
        return self.tensor(name, data.shape, dtype or data.dtype.name, data)

    def op(self, name: str, inputs: list[int], outputs: list[int], options: str | None = None,
           custom_code: str | None = None, **fields) -> None:
        """`name` is a builtin (CONV_2D) or CUSTOM with `custom_code`; `fields` fill the `options` table."""
        key = (_CODES[name], custom_code)
        if key not in self.codes:
            self.codes.append(key)
        self.ops.append({"code": self.codes.index(key), "inputs": inputs, "outputs": outputs,
                         "options": options, "fields": fields})

    # ---- serialization -------------------------------------------------------------------------
    def finish(self, inputs: list[int], outputs: list[int], description: str = "tinystudio test") -> bytes:
        b = flatbuffers.Builder(1024)
        M = _mod("Model")
        buffers = [self._buffer(b, raw) for raw in self.buffers]
        tensors = [self._tensor(b, t) for t in self.tensors]
        ops = [self._operator(b, o) for o in self.ops]
        subgraphs = [self._subgraph(b, tensors, ops, inputs, outputs, "main")]
        subgraphs += [self._subgraph(b, [], [], [], [], f"sub{i}") for i in range(self.extra_subgraphs)]
        codes = [self._code(b, c, custom) for c, custom in self.codes]
        desc = b.CreateString(description)
        code_vec = self._offsets(b, M.ModelStartOperatorCodesVector, codes)
        sub_vec = self._offsets(b, M.ModelStartSubgraphsVector, subgraphs)
        buf_vec = self._offsets(b, M.ModelStartBuffersVector, buffers)
        M.ModelStart(b)
        M.ModelAddVersion(b, 3)
        M.ModelAddOperatorCodes(b, code_vec)
        M.ModelAddSubgraphs(b, sub_vec)
        M.ModelAddDescription(b, desc)
        M.ModelAddBuffers(b, buf_vec)
        b.Finish(M.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    @staticmethod
    def _offsets(b, start, items):
        start(b, len(items))
        for it in reversed(items):
            b.PrependUOffsetTRelative(it)
        return b.EndVector()

    @staticmethod
    def _int32s(b, values):
        return b.CreateNumpyVector(np.asarray(values, dtype="<i4"))

    def _buffer(self, b, raw: bytes):
        B = _mod("Buffer")
        data = None
        if raw:
            b.StartVector(1, len(raw), 16)  # 16-byte aligned, as the TFLite converter writes buffers
            b.head -= len(raw)
            b.Bytes[b.head:b.head + len(raw)] = raw
            b.vectorNumElems = len(raw)
            data = b.EndVector()
        B.BufferStart(b)
        if data is not None:
            B.BufferAddData(b, data)
        return B.BufferEnd(b)

    def _tensor(self, b, t: dict):
        T, Q = _mod("Tensor"), _mod("QuantizationParameters")
        quant = None
        if t["scale"] is not None:
            scale = b.CreateNumpyVector(np.atleast_1d(np.asarray(t["scale"], dtype="<f4")))
            zp = b.CreateNumpyVector(np.atleast_1d(np.asarray(t["zero_point"] or 0, dtype="<i8")))
            Q.QuantizationParametersStart(b)
            Q.QuantizationParametersAddScale(b, scale)
            Q.QuantizationParametersAddZeroPoint(b, zp)
            Q.QuantizationParametersAddQuantizedDimension(b, t["axis"])
            quant = Q.QuantizationParametersEnd(b)
        name = b.CreateString(t["name"])
        shape = self._int32s(b, t["shape"])
        T.TensorStart(b)
        T.TensorAddShape(b, shape)
        T.TensorAddType(b, t["type"])
        T.TensorAddBuffer(b, t["buffer"])
        T.TensorAddName(b, name)
        if quant is not None:
            T.TensorAddQuantization(b, quant)
        if t.get("variable"):  # state of a stateful op (SVDF, LSTM)
            T.TensorAddIsVariable(b, True)
        return T.TensorEnd(b)

    def _options(self, b, cls: str, fields: dict):
        m = _mod(cls)
        vectors = {k: self._int32s(b, v) for k, v in fields.items() if isinstance(v, (list, tuple))}
        getattr(m, f"{cls}Start")(b)
        for k, v in fields.items():
            getattr(m, f"{cls}Add{k}")(b, vectors.get(k, v))
        return getattr(m, f"{cls}End")(b)

    def _operator(self, b, o: dict):
        O = _mod("Operator")
        opts = self._options(b, o["options"], o["fields"]) if o["options"] else None
        ins, outs = self._int32s(b, o["inputs"]), self._int32s(b, o["outputs"])
        O.OperatorStart(b)
        O.OperatorAddOpcodeIndex(b, o["code"])
        O.OperatorAddInputs(b, ins)
        O.OperatorAddOutputs(b, outs)
        if opts is not None:
            O.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, o["options"]))
            O.OperatorAddBuiltinOptions(b, opts)
        return O.OperatorEnd(b)

    def _subgraph(self, b, tensors, ops, inputs, outputs, name):
        S = _mod("SubGraph")
        t_vec = self._offsets(b, S.SubGraphStartTensorsVector, tensors)
        o_vec = self._offsets(b, S.SubGraphStartOperatorsVector, ops)
        i_vec, out_vec = self._int32s(b, inputs), self._int32s(b, outputs)
        n = b.CreateString(name)
        S.SubGraphStart(b)
        S.SubGraphAddTensors(b, t_vec)
        S.SubGraphAddInputs(b, i_vec)
        S.SubGraphAddOutputs(b, out_vec)
        S.SubGraphAddOperators(b, o_vec)
        S.SubGraphAddName(b, n)
        return S.SubGraphEnd(b)

    def _code(self, b, code: int, custom: str | None):
        C = _mod("OperatorCode")
        s = b.CreateString(custom) if custom else None
        C.OperatorCodeStart(b)
        # Codes >= 127 live only in `builtin_code`; the deprecated int8 field holds the placeholder.
        C.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        C.OperatorCodeAddBuiltinCode(b, code)
        if s is not None:
            C.OperatorCodeAddCustomCode(b, s)
        C.OperatorCodeAddVersion(b, 1)
        return C.OperatorCodeEnd(b)
