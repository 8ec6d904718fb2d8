"""External tensor data of an ONNX model: read only from regular files inside the model's own folder.

    load_external_data(model, "net.onnx", folder="/models")   # a file opened from disk
    load_external_data(model, "upload.onnx", folder=None)     # bytes (an upload): any external data is refused

A model loaded from bytes has no folder: the name it came with (a browser's file name, possibly absolute or
crafted to match a file beside the server) must never decide which server files are read. For a model on
disk every entry is checked before anything is opened, seeked or read: the location (relative, no `..`, no
drive, no NUL), the resolved path (inside the folder, also through symbolic links), the file (regular, one
hard link, so no link to a file elsewhere), and offset and length (decimal, within the file, and within the
tensor's own size), so nothing larger than the file, or than the tensor needs, is ever allocated.
"""
from __future__ import annotations

import math
import os
import re
import stat

import onnx
from onnx import TensorProto

from engine.errors import ModelFormatError

MAX_EXTERNAL_BYTES = 1 << 30  # all external data of one model together
_ITEMSIZE = {TensorProto.FLOAT: 4, TensorProto.UINT8: 1, TensorProto.INT8: 1, TensorProto.UINT16: 2,
             TensorProto.INT16: 2, TensorProto.INT32: 4, TensorProto.INT64: 8, TensorProto.BOOL: 1,
             TensorProto.FLOAT16: 2, TensorProto.DOUBLE: 8, TensorProto.UINT32: 4, TensorProto.UINT64: 8,
             TensorProto.BFLOAT16: 2, TensorProto.COMPLEX64: 8, TensorProto.COMPLEX128: 16}
_NIBBLES = {TensorProto.INT4, TensorProto.UINT4}


def _text(v):
    # This protobuf runtime hands out a `string` field holding invalid UTF-8 as bytes; names travel on as
    # text (dict keys, JSON, the content hash), so such bytes become their backslash-escaped form.
    return v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v


def scan_model(msg, tensors: list | None = None) -> list[TensorProto]:
    """Every TensorProto anywhere inside a protobuf message (initializers, sparse tensors, attributes,
    subgraphs, function bodies, training info), so none can slip past the external-data check; on the way,
    text fields that are not valid UTF-8 are replaced by their escaped form (see `_text`)."""
    tensors = [] if tensors is None else tensors
    if isinstance(msg, TensorProto):  # its raw_data may be large: only the text fields are looked at
        tensors.append(msg)
        if isinstance(msg.name, bytes):
            msg.name = _text(msg.name)
        for e in msg.external_data:
            e.key, e.value = _text(e.key), _text(e.value)
        return tensors
    for field, value in msg.ListFields():
        if field.type == field.TYPE_MESSAGE:
            for v in (value if field.is_repeated else (value,)):
                scan_model(v, tensors)
        elif field.type == field.TYPE_STRING:
            if field.is_repeated:
                if any(isinstance(x, bytes) for x in value):
                    fixed = [_text(x) for x in value]
                    del value[:]
                    value.extend(fixed)
            elif isinstance(value, bytes):
                setattr(msg, field.name, _text(value))
    return tensors


def _quoted(s: str) -> str:
    return f"'{s}'"


def _count(path, t, key, value, limit) -> int:
    """A non-negative decimal offset/length no larger than `limit`; anything else is a one-line error."""
    if not re.fullmatch(r"[0-9]{1,20}", value or ""):
        raise ModelFormatError(path, f"external data {key} {_quoted(value)} of tensor {_quoted(t.name)} is not a "
                                     "non-negative whole number; refused")
    n = int(value)
    if n > limit:
        raise ModelFormatError(path, f"external data {key} {n} of tensor {_quoted(t.name)} is beyond the end of its "
                                     f"file ({limit} bytes available); refused")
    return n


def _tensor_bytes(path, t) -> int | None:
    """Bytes the tensor's dims and element type need (None for strings, whose size is not fixed)."""
    if any(d < 0 for d in t.dims):
        raise ModelFormatError(path, f"tensor {_quoted(t.name)} has negative dims {list(t.dims)}")
    n = math.prod(t.dims)
    if t.data_type in _NIBBLES:
        return (n + 1) // 2
    if t.data_type in _ITEMSIZE:
        return n * _ITEMSIZE[t.data_type]
    if t.data_type == TensorProto.STRING:
        return None
    raise ModelFormatError(path, f"tensor {_quoted(t.name)} has element type {t.data_type}, which is not supported")


def _resolve(path, folder, t, loc) -> str:
    parts = re.split(r"[\\/]", loc)
    if "\0" in loc:
        raise ModelFormatError(path, f"external data location of tensor {_quoted(t.name)} holds a NUL byte; refused")
    if (not loc or os.path.isabs(loc) or loc.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", loc)
            or ".." in parts):
        raise ModelFormatError(path, f"external data location {_quoted(loc)} of tensor {_quoted(t.name)} is outside "
                                     "the model's folder; refused")
    full = os.path.realpath(os.path.join(folder, loc))
    if os.path.commonpath([folder, full]) != folder:
        raise ModelFormatError(path, f"external data location {_quoted(loc)} of tensor {_quoted(t.name)} leads "
                                     "outside the model's folder through a symbolic link; refused")
    return full


def _read(path, t, loc, full, info, budget) -> bytes:
    try:
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ModelFormatError(path, f"external data file {_quoted(loc)} of tensor {_quoted(t.name)} was not "
                                     "found") from None
    except OSError as e:
        raise ModelFormatError(path, f"external data file {_quoted(loc)} of tensor {_quoted(t.name)} cannot be "
                                     f"opened ({e.strerror}); refused") from None
    try:
        st = os.fstat(fd)  # of the file actually opened, so a swap after the checks above changes nothing
        offset, length = _span(path, t, loc, st, info, budget)
        with os.fdopen(fd, "rb", closefd=False) as f:
            f.seek(offset)
            return f.read(length)
    finally:
        os.close(fd)


def _span(path, t, loc, st, info, budget) -> tuple[int, int]:
    """(offset, length) to read from the opened file `st`, every check made before any seek or read."""
    if not stat.S_ISREG(st.st_mode):
        raise ModelFormatError(path, f"external data {_quoted(loc)} of tensor {_quoted(t.name)} is not a regular "
                                     "file; refused")
    if st.st_nlink > 1:
        raise ModelFormatError(path, f"external data file {_quoted(loc)} of tensor {_quoted(t.name)} has "
                                     f"{st.st_nlink} hard links, so it may be a file from outside the model's "
                                     "folder; refused")
    size = st.st_size
    offset = _count(path, t, "offset", info.get("offset", "0") or "0", size)
    need = _tensor_bytes(path, t)
    if "length" in info:
        length = _count(path, t, "length", info["length"], size - offset)
        if need is not None and length != need:
            raise ModelFormatError(path, f"external data length {length} of tensor {_quoted(t.name)} does not "
                                         f"match its dims and type ({need} bytes)")
    else:
        length = size - offset if need is None else need
    if length > size - offset:
        raise ModelFormatError(path, f"external data file {_quoted(loc)} is too short for tensor "
                                     f"{_quoted(t.name)} ({size - offset} of {length} bytes)")
    if length > budget:
        raise ModelFormatError(path, f"external data of tensor {_quoted(t.name)} takes the model over "
                                     f"{MAX_EXTERNAL_BYTES >> 20} MiB of external data; refused")
    return offset, length


def load_external_data(model: onnx.ModelProto, path: str, folder: str | None) -> None:
    """Move every tensor's external data into the model (raw_data), or raise one line saying why not.
    Every model passes here, with or without external data: the scan also turns non-UTF-8 names into text."""
    external = [t for t in scan_model(model) if t.data_location == TensorProto.EXTERNAL]
    if not external:
        return
    if folder is None:
        raise ModelFormatError(path, f"tensor {_quoted(external[0].name)} keeps its data in an external file; an "
                                     "uploaded model has no folder to read it from; refused (save the model with its "
                                     "weights inside the .onnx file)")
    base = os.path.realpath(os.path.abspath(folder))
    budget = MAX_EXTERNAL_BYTES
    for t in external:
        info = {}
        for e in t.external_data:
            if e.key in info:
                raise ModelFormatError(path, f"external data of tensor {_quoted(t.name)} names {_quoted(e.key)} "
                                             "twice; refused")
            info[e.key] = e.value
        loc = info.get("location", "")
        full = _resolve(path, base, t, loc)
        raw = _read(path, t, loc, full, info, budget)
        budget -= len(raw)
        t.raw_data = raw
        del t.external_data[:]
        t.data_location = TensorProto.DEFAULT
