"""Lossless serialization: structure as JSON, constants as one binary blob (an .npz without pickles).

    doc, blob = dumps(graph)          # (dict ready for json.dumps, bytes)
    graph = loads(doc, blob)
    save(graph, path) / load(path)    # a single .tsgraph file: a zip holding graph.json and constants.npz

The store keeps `doc` and `blob` in DuckDB; `content_hash` identifies a graph's content.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile

import numpy as np

from engine.errors import ModelFormatError
from engine.ir import DTYPE_BITS, MAX_TENSOR_BYTES, Graph, Node, Quant, Tensor

FORMAT = "tinystudio.graph"
VERSION = 1
MAX_RANK = 16  # dimensions of one tensor in a stored graph


def jsonable(v):
    """`v` with numpy scalars and arrays as Python numbers and lists, tuples as lists, keys as str, bytes as
    escaped text: what json.dumps takes and what a stored graph holds."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, (bytes, bytearray)):  # text from a file that was not UTF-8: kept in escaped form
        return bytes(v).decode("utf-8", "backslashreplace")
    return v


def structure(graph: Graph, with_meta: bool = True) -> dict:
    tensors = []
    for t in graph.tensors.values():
        d = {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "const": t.data is not None}
        if t.quant is not None:
            d["quant"] = t.quant.to_json()
        if with_meta and t.meta:
            d["meta"] = jsonable(t.meta)
        tensors.append(d)
    nodes = []
    for n in graph.nodes:
        d = {"op": n.op, "name": n.name, "inputs": list(n.inputs), "outputs": list(n.outputs),
             "attrs": jsonable(dict(sorted(n.attrs.items())))}
        if with_meta and n.meta:
            d["meta"] = jsonable(n.meta)
        nodes.append(d)
    doc = {"format": FORMAT, "version": VERSION, "name": graph.name, "inputs": list(graph.inputs),
           "outputs": list(graph.outputs), "tensors": tensors, "nodes": nodes}
    if with_meta:
        doc["meta"] = jsonable(graph.meta)
    return doc


def dumps(graph: Graph) -> tuple[dict, bytes]:
    buf = io.BytesIO()
    arrays = {f"t{i}": t.data for i, t in enumerate(graph.tensors.values()) if t.data is not None}
    names = {f"t{i}": t.name for i, t in enumerate(graph.tensors.values()) if t.data is not None}
    np.savez(buf, **arrays)
    doc = structure(graph)
    doc["blob_keys"] = names
    return doc, buf.getvalue()


def loads(doc: dict, blob: bytes) -> Graph:
    _check_doc(doc)  # before any array is read: a shape is only numbers in a document
    return _build(doc, npz_arrays(blob))


def npz_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """The arrays of a constants blob by npz member (no pickles)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def graph_from_arrays(doc: dict, arrays: dict[str, np.ndarray]) -> Graph:
    """loads() for constants decoded once by npz_arrays (versions sharing a blob share its arrays)."""
    _check_doc(doc)
    return _build(doc, arrays)


def _check_doc(doc: dict) -> None:
    if doc.get("format") != FORMAT:
        raise ModelFormatError("graph", f"not a TinyStudio graph document (format {doc.get('format')!r})")
    if doc.get("version", 0) > VERSION:
        raise ModelFormatError("graph", f"graph format version {doc['version']} is newer than this TinyStudio")
    for d in doc["tensors"]:
        _check_tensor_doc(d)


def _build(doc: dict, arrays: dict[str, np.ndarray]) -> Graph:
    data = {doc["blob_keys"][k]: a for k, a in arrays.items()}
    g = Graph(doc["name"], meta=doc.get("meta", {}))
    for d in doc["tensors"]:
        q = Quant.from_json(d["quant"]) if "quant" in d else None
        g.tensors[d["name"]] = Tensor(d["name"], tuple(d["shape"]), d["dtype"], q,
                                      data.get(d["name"]) if d["const"] else None, d.get("meta", {}))
    for d in doc["nodes"]:
        g.nodes.append(Node(d["op"], d["name"], d["inputs"], d["outputs"], d["attrs"], d.get("meta", {})))
    g.inputs, g.outputs = list(doc["inputs"]), list(doc["outputs"])
    return g


def _check_tensor_doc(d) -> None:
    """A stored tensor's name, dtype and shape are sane and its size is bounded (MAX_TENSOR_BYTES), so
    no later stage (shape inference, the planner's int64 arrays, an allocation) meets a 2^31 x 2^31 input."""
    if not isinstance(d, dict) or not isinstance(d.get("name"), str):
        raise ModelFormatError("graph", "a tensor entry has no name")
    name = repr(d["name"][:60])
    if d.get("dtype") not in DTYPE_BITS:
        raise ModelFormatError("graph", f"tensor {name}: unknown dtype {str(d.get('dtype'))[:20]!r}")
    shape = d.get("shape")
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in shape):
        raise ModelFormatError("graph", f"tensor {name}: shape must be a list of at most {MAX_RANK} "
                                        "non-negative integers")
    nbytes = (math.prod(shape) * DTYPE_BITS[d["dtype"]] + 7) // 8
    if nbytes > MAX_TENSOR_BYTES:
        raise ModelFormatError("graph", f"tensor {name} of shape {shape} needs {nbytes:,} bytes, over the "
                                        f"limit of {MAX_TENSOR_BYTES:,}")


def npz_declared_bytes(source, what: str = "the .npz") -> int:
    """Bytes the arrays of an .npz (bytes, a path or a ZipFile) declare in their .npy headers, read without
    reading any data. Raises ValueError for an array that needs pickle, an unknown .npy version or
    compression, or a header declaring more data than its member holds (numpy allocates from the header
    before it reads, so a 100-byte member could otherwise ask for 4 TiB)."""
    z = source if isinstance(source, zipfile.ZipFile) else zipfile.ZipFile(
        io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    try:
        total = 0
        for info in z.infolist():
            label = f"{what}: member {info.filename[:40]!r}"
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"{label} uses an unsupported compression")
            with z.open(info) as f:
                major, minor = np.lib.format.read_magic(f)
                if (major, minor) not in ((1, 0), (2, 0), (3, 0)):
                    raise ValueError(f"{label}: unsupported .npy version {major}.{minor}")
                read_header = (np.lib.format.read_array_header_1_0 if major == 1
                               else np.lib.format.read_array_header_2_0)
                shape, _fortran, dtype = read_header(f)  # numpy's bounded header parser
                if dtype.hasobject:
                    raise ValueError(f"{label} holds Python objects (pickles are refused)")
                n = math.prod(shape) * dtype.itemsize
                if n > info.file_size:
                    raise ValueError(f"{label} declares more data than it holds ({n:,} bytes in "
                                     f"{info.file_size:,})")
                total += n
        return total
    finally:
        if z is not source:
            z.close()


def content_hash(graph: Graph) -> str:
    """sha256 of structure (without meta) and every constant's dtype, shape and bytes.

    Same content -> same hash, independent of dict order in attrs and of meta annotations.
    """
    h = hashlib.sha256()
    h.update(json.dumps(structure(graph, with_meta=False), sort_keys=True, separators=(",", ":")).encode())
    for t in sorted(graph.tensors.values(), key=lambda t: t.name):
        if t.data is not None:
            h.update(t.name.encode("utf-8", "surrogatepass") + b"\0" + t.dtype.encode() + repr(t.shape).encode())
            h.update(np.ascontiguousarray(t.data).tobytes())
    return h.hexdigest()


def save(graph: Graph, path: str) -> None:
    doc, blob = dumps(graph)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("graph.json", json.dumps(doc))
        z.writestr("constants.npz", blob)


def read_bounded(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytearray:
    """A zip member's bytes, refused by its declared size and then decompressed in chunks through a counter
    that stops at `limit` whatever the headers say (ValueError naming the member and the limit)."""
    if info.file_size > limit:
        raise ValueError(f"{info.filename[:80]} is {info.file_size:,} bytes, over the limit of {limit:,}")
    out = bytearray(info.file_size)  # filled in place: no second copy of a large member
    pos = 0
    with z.open(info) as f:
        while chunk := f.read(1 << 20):
            if pos + len(chunk) > limit:
                raise ValueError(f"{info.filename[:80]} decompresses to more than {limit:,} bytes")
            out[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
    del out[pos:]
    return out


def load(path: str, max_bytes: int = 1 << 30) -> Graph:
    """A .tsgraph file, every read bounded by `max_bytes` (also what the constants' headers declare)."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = {i.filename: i for i in z.infolist()}
            if "graph.json" not in infos or "constants.npz" not in infos:
                raise ModelFormatError(path, "not a TinyStudio graph file (graph.json or constants.npz missing)")
            if sum(i.file_size for i in infos.values()) > max_bytes:
                raise ModelFormatError(path, f"graph file unpacks to more than the limit of {max_bytes:,} bytes")
            doc = json.loads(read_bounded(z, infos["graph.json"], min(max_bytes, 64 << 20)))
            blob = read_bounded(z, infos["constants.npz"], max_bytes)
        if npz_declared_bytes(blob, "constants.npz") > max_bytes:
            raise ModelFormatError(path, f"constants declare more than the limit of {max_bytes:,} bytes")
    except (zipfile.BadZipFile, json.JSONDecodeError, KeyError, EOFError, ValueError) as e:
        raise ModelFormatError(path, f"corrupted TinyStudio graph file ({e})") from None
    try:
        return loads(doc, blob)
    except ModelFormatError as e:
        raise ModelFormatError(path, f"corrupted TinyStudio graph file ({str(e).removeprefix('graph: ')})") from None
    except (KeyError, TypeError, ValueError, EOFError, AttributeError, zipfile.BadZipFile) as e:
        raise ModelFormatError(path, f"corrupted TinyStudio graph file ({e})") from None
