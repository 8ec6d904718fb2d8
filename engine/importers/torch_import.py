"""PyTorch -> IR: live nn.Modules and .pt2 files (torch.export.save archives).

    g = from_module(model, (torch.randn(1, 3, 32, 32),))     # torch.onnx.export -> ONNX importer
    g = from_module(model, example, via="aten")               # torch.export -> ATen mapping (no ONNX step)
    g = load_pt2("model.pt2")                                 # read safely, never unpickles
    sniff_pt2(first_bytes)                                    # True for a .pt2 archive

Why load_pt2 does not call torch.export.load (checked in torch 2.13, torch/export/pt2_archive/_package.py
and torch/_export/serde/serialize.py): a payload marked use_pickle is read with
torch.load(weights_only=False), custom / opaque objects with torch._C._pickle_load_obj / pickle.loads, the
sample inputs with torch.load(weights_only=True) that falls back to weights_only=False, and legacy archives
keep pickled state dicts. Even with safe tensors, torch's deserializer resolves node targets by getattr
over the whole `torch` module and parses shape expressions with sympy.sympify (eval). So this module reads
the zip itself: the JSON program, the JSON payload configs and the raw little-endian tensor bytes, with a
size limit, no entry outside the archive root, and a refusal (ModelFormatError) for anything stored as a
pickle. The sample inputs file (always a pickle) is never opened. The program is then mapped op by op
(engine/importers/pt2_aten.py).
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import warnings
import zipfile
import zlib
from contextlib import contextmanager, redirect_stderr, redirect_stdout

import numpy as np

from engine.errors import ModelFormatError
from engine.importers.formats import read_model_bytes
from engine.importers.pt2_aten import SCALAR_TYPES, aten_to_ir
from engine.ir import Graph

MAX_BYTES = 512 * 1024 * 1024  # whole archive, and the sum of its uncompressed entries
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 100_000
_PAYLOAD_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


# ---- live modules ----------------------------------------------------------------------------------

@contextmanager
def _eval_mode(module):
    """Export the inference graph (BN running stats, no dropout), then restore the caller's mode."""
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


@contextmanager
def _quiet():
    # torch.onnx prints registry notices (e.g. "torchvision is not installed") through logging and warnings.
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        # A failing dynamo export also prints whole graph dumps; the exception text says what failed.
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def module_to_onnx_bytes(module, example_inputs: tuple) -> tuple[bytes, str, str]:
    """(ONNX model bytes, exporter used, why dynamo was not used or "").

    The dynamo exporter first; the TorchScript one (still in torch 2.13, deprecated) if dynamo fails, e.g.
    on data-dependent Python control flow, which TorchScript tracing bakes in for the example inputs.
    """
    import torch

    args = tuple(example_inputs)
    with _eval_mode(module), _quiet(), torch.no_grad():
        try:
            program = torch.onnx.export(module, args, dynamo=True, optimize=True, external_data=False,
                                         verbose=False)
            return program.model_proto.SerializeToString(), "dynamo", ""
        except Exception as dynamo_error:  # noqa: BLE001 - any exporter failure -> try the other one
            buf = io.BytesIO()
            try:
                torch.onnx.export(module, args, buf, dynamo=False, opset_version=17, do_constant_folding=True)
            except Exception as ts_error:  # noqa: BLE001
                raise ModelFormatError(_module_name(module), f"torch.onnx.export failed (dynamo: "
                                       f"{_first_line(dynamo_error)}; torchscript: {_first_line(ts_error)})")
            return buf.getvalue(), "torchscript", _first_line(dynamo_error)


def from_module(module, example_inputs: tuple, name: str = "model", via: str = "onnx") -> Graph:
    """Import a live nn.Module traced on `example_inputs` (their shapes become the graph's input shapes).

    via="onnx" (default): torch.onnx.export (dynamo, TorchScript as fallback) then the ONNX importer; the
    exporter's optimizer folds BatchNorm into Conv. via="aten": torch.export.export mapped directly,
    keeping one IR node per module op and the state-dict names (e.g. "conv1.weight").
    """
    if via == "aten":
        import torch

        with _eval_mode(module), _quiet():
            try:
                program = torch.export.export(module, tuple(example_inputs))
            except Exception as e:  # noqa: BLE001
                raise ModelFormatError(_module_name(module), f"torch.export failed: {_first_line(e)}")
        g = from_exported_program(program, name)
    elif via == "onnx":
        from engine.importers.onnx_import import load_onnx

        data, exporter, why = module_to_onnx_bytes(module, example_inputs)
        g = load_onnx(f"{name}.onnx", data=data)
        g.meta["exporter"] = exporter
        if why:
            g.meta["exporter_note"] = f"dynamo export failed ({why}); traced with TorchScript for these inputs"
    else:
        raise ValueError(f"via must be 'onnx' or 'aten', got {via!r}")
    g.name = name
    g.meta["source"] = {"format": "pytorch", "via": via, "module": type(module).__name__}
    return g


def from_exported_program(program, name: str = "model") -> Graph:
    """Map an in-memory torch.export.ExportedProgram (trusted: it lives in this process)."""
    import torch
    from torch._export.serde.serialize import serialize

    with _quiet():
        art = serialize(program, serialize_state_dict=False, serialize_constants=False,
                        serialize_example_inputs=False)
    weights = {}
    for fqn, value in [*program.state_dict.items(), *program.constants.items()]:
        if not isinstance(value, torch.Tensor):
            raise ModelFormatError(name, f"constant '{fqn}' is a {type(value).__name__}, not a tensor")
        t = value.detach().cpu()
        weights[fqn] = (t.float() if t.dtype == torch.bfloat16 else t).contiguous().numpy().copy()
    g = aten_to_ir(json.loads(art.exported_program), weights, name, name)
    g.meta["source"] = {"format": "pytorch", "via": "aten"}
    return g


def _module_name(module) -> str:
    return f"<{type(module).__name__}>"


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200] if text else ''}"


# ---- .pt2 archives ---------------------------------------------------------------------------------

def sniff_pt2(data: bytes) -> bool:
    """True when `data` (a whole file or its first few KiB) looks like a torch.export .pt2 archive."""
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
        return any(re.fullmatch(r"[^/]+/archive_format", n) for n in names)
    except zipfile.BadZipFile:  # only a prefix: torch writes the root-relative layout in local headers
        return bool(re.search(rb"[^/\x00]+/(data/weights/|models/|archive_format)", data[:65536]))


def load_pt2(path: str, data: bytes | None = None, max_bytes: int = MAX_BYTES) -> Graph:
    """Import a .pt2 file written by torch.export.save. Errors are ModelFormatError naming the file."""
    program, weights, model = read_pt2(path, data, max_bytes)
    name = os.path.splitext(os.path.basename(path))[0] or model
    g = aten_to_ir(program, weights, path, name)
    g.meta["source"] = {"format": "pt2", "path": os.path.basename(path), "model": model}
    return g


class _Archive:
    """Bounded, path-checked reads from the zip."""

    def __init__(self, path: str, data: bytes, max_bytes: int):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, UnicodeDecodeError) as e:
            raise ModelFormatError(path, f"not a readable .pt2 (zip) archive: {e}")
        if len(infos) > MAX_ENTRIES:
            raise ModelFormatError(path, f"archive has {len(infos)} entries (limit {MAX_ENTRIES})")
        total = 0
        roots = set()
        self.entries: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            n = info.filename
            parts = n.split("/")
            if (n.startswith("/") or "\\" in n or "\x00" in n or re.match(r"^[A-Za-z]:", n)
                    or any(p in ("..", ".") for p in parts)):
                raise ModelFormatError(path, f"archive entry '{n[:120]}' points outside the archive")
            if info.flag_bits & 0x1:
                raise ModelFormatError(path, f"archive entry '{n[:120]}' is encrypted")
            total += info.file_size
            roots.add(parts[0])
            self.entries[n] = info
        if total > max_bytes:
            raise ModelFormatError(path, f"archive expands to {total} bytes (limit {max_bytes})")
        if len(roots) != 1:
            raise ModelFormatError(path, "not a .pt2 archive: expected one top-level folder")
        self.root = roots.pop()

    def has(self, rel: str) -> bool:
        return f"{self.root}/{rel}" in self.entries

    def read(self, rel: str, limit: int | None = None) -> bytes:
        info = self.entries.get(f"{self.root}/{rel}")
        if info is None:
            raise ModelFormatError(self.path, f"archive has no '{rel}'")
        if limit is not None and info.file_size > limit:
            raise ModelFormatError(self.path, f"'{rel}' is {info.file_size} bytes (limit {limit})")
        try:
            data = self.zip.read(info)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as e:
            raise ModelFormatError(self.path, f"cannot read '{rel}': {e}")
        if len(data) != info.file_size:
            raise ModelFormatError(self.path, f"'{rel}' is truncated")
        return data

    def json(self, rel: str):
        try:
            return json.loads(self.read(rel, MAX_JSON_BYTES))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ModelFormatError(self.path, f"'{rel}' is not valid JSON: {e}")


def read_pt2(path: str, data: bytes | None = None, max_bytes: int = MAX_BYTES):
    """(program JSON, {state-dict or constant name: array}, model name) from a .pt2 archive."""
    if data is None:
        data = read_model_bytes(path, max_bytes, missing="cannot read the file: no such file")
    if len(data) > max_bytes:
        raise ModelFormatError(path, f"file is {len(data)} bytes (limit {max_bytes})")
    if not data.startswith(b"PK\x03\x04"):
        hint = " (a torch.save pickle? only torch.export.save archives are read)" if data[:1] == b"\x80" else ""
        raise ModelFormatError(path, f"not a .pt2 archive: no zip signature{hint}")
    ar = _Archive(path, data, max_bytes)
    if not ar.has("archive_format") or ar.read("archive_format", 64).strip() != b"pt2":
        hint = " (a torch.save file? it holds pickles and is never loaded)" if ar.has("data.pkl") else ""
        raise ModelFormatError(path, f"not a torch.export .pt2 archive: no 'archive_format' = pt2{hint}")
    if ar.has("byteorder") and ar.read("byteorder", 64).strip() != b"little":
        raise ModelFormatError(path, "big-endian .pt2 archives are not supported")
    models = sorted(n[len(ar.root) + 1:] for n in ar.entries if re.fullmatch(
        rf"{re.escape(ar.root)}/models/[^/]+\.json", n))
    if not models:
        raise ModelFormatError(path, "archive holds no exported program (models/*.json); AOTInductor-only "
                                     "packages cannot be imported")
    rel = "models/model.json" if "models/model.json" in models else models[0]
    model = rel[len("models/"):-len(".json")]
    program = ar.json(rel)
    if not isinstance(program, dict):
        raise ModelFormatError(path, f"'{rel}' is not an exported program")
    for legacy in (f"data/weights/{model}.pt", f"data/constants/{model}.pt"):
        if ar.has(legacy):
            raise ModelFormatError(path, f"'{legacy}' stores tensors as a pickle (old .pt2 layout); TinyStudio "
                                         "never unpickles model files. Re-save with a current torch.export.save")
    weights = _payloads(ar, f"data/weights/{model}_weights_config.json", "data/weights/", "weight")
    consts = _payloads(ar, f"data/constants/{model}_constants_config.json", "data/constants/", "constant")
    clash = weights.keys() & consts.keys()
    if clash:
        raise ModelFormatError(path, f"name '{sorted(clash)[0]}' is both a weight and a constant")
    return program, {**weights, **consts}, model


def _payloads(ar: _Archive, config_rel: str, folder: str, kind: str) -> dict[str, np.ndarray]:
    if not ar.has(config_rel):
        return {}
    cfg = ar.json(config_rel)
    entries = cfg.get("config") if isinstance(cfg, dict) else None
    if not isinstance(entries, dict):
        raise ModelFormatError(ar.path, f"'{config_rel}' has no 'config' table")
    out: dict[str, np.ndarray] = {}
    cache: dict[str, bytes] = {}
    for fqn, meta in entries.items():
        where = f"{kind} '{fqn}'"
        if not isinstance(meta, dict):
            raise ModelFormatError(ar.path, f"{where}: malformed payload entry")
        pname = meta.get("path_name")
        if meta.get("use_pickle") or (isinstance(pname, str) and pname.startswith(("custom_obj_", "opaque_obj_"))):
            raise ModelFormatError(ar.path, f"{where} is stored as a pickle (tensor subclass or custom object); "
                                            "TinyStudio never unpickles model files")
        if not isinstance(pname, str) or not _PAYLOAD_NAME.match(pname) or pname in (".", ".."):
            raise ModelFormatError(ar.path, f"{where}: payload path {str(pname)[:80]!r} is not a plain file name")
        if pname not in cache:
            cache[pname] = ar.read(folder + pname)
        try:
            out[fqn] = _tensor(cache[pname], meta.get("tensor_meta"))
        except (ValueError, TypeError, KeyError) as e:
            raise ModelFormatError(ar.path, f"{where}: {e}")
    return out


def _ints(items) -> list[int]:
    vals = [d.get("as_int") if isinstance(d, dict) else None for d in items]
    if not all(isinstance(v, int) for v in vals):
        raise ValueError("symbolic sizes in stored weights")
    return vals


def _tensor(raw: bytes, meta) -> np.ndarray:
    """A strided view of the raw storage bytes, bounds-checked, copied into a contiguous array."""
    if not isinstance(meta, dict):
        raise ValueError("no tensor metadata")
    if meta.get("layout", 7) != 7:
        raise ValueError("sparse or non-strided tensors are not supported")
    code = meta.get("dtype")
    if code not in SCALAR_TYPES:
        raise ValueError(f"unsupported dtype code {code}")
    bf16 = code == 13
    dtype = np.dtype("<u2") if bf16 else np.dtype(SCALAR_TYPES[code]).newbyteorder("<")
    shape = _ints(meta.get("sizes", []))
    strides = _ints(meta.get("strides", [])) or [1] * len(shape)
    offset = (_ints([meta.get("storage_offset", {"as_int": 0})]))[0]
    if len(strides) != len(shape) or min(shape + strides + [offset], default=0) < 0:
        raise ValueError(f"invalid sizes {shape} / strides {strides} / offset {offset}")
    if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > MAX_BYTES:
        raise ValueError(f"tensor of shape {shape} is larger than {MAX_BYTES} bytes")
    if len(raw) % dtype.itemsize:
        raise ValueError(f"payload of {len(raw)} bytes is not a whole number of {dtype.name} elements")
    flat = np.frombuffer(raw, dtype=dtype)
    if int(np.prod(shape, dtype=np.int64)) == 0:
        arr = np.zeros(shape, dtype=dtype)
    else:
        last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
        if last >= flat.size:
            raise ValueError(f"payload has {flat.size} elements, the tensor needs {last + 1} (truncated?)")
        arr = np.lib.stride_tricks.as_strided(flat[offset:], shape, [s * dtype.itemsize for s in strides],
                                              writeable=False)
    arr = np.ascontiguousarray(arr)
    if bf16:  # bfloat16 is the high half of a float32
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(arr.dtype.newbyteorder("=")).reshape(shape)


__all__ = ["from_module", "from_exported_program", "load_pt2", "read_pt2", "sniff_pt2", "module_to_onnx_bytes",
           "MAX_BYTES"]
