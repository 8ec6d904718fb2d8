"""PyTorch -> IR: live modules (torch.export / torch.onnx.export) and .pt2 archives, read without pickle."""
from __future__ import annotations

import io
import json
import os
import pickle
import time
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import ModelFormatError, UnsupportedOpError
from engine.execute import run_graph
from engine.importers.torch_import import from_exported_program, from_module, load_pt2, sniff_pt2

RTOL, ATOL = 1e-4, 1e-5


def assert_close(got, want, what=""):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    bad = ~np.isclose(got, want, rtol=RTOL, atol=ATOL)
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        pytest.fail(f"{what}: {bad.sum()} of {bad.size} values differ; first at {i}: IR {got[i]:.7g} vs torch "
                    f"{want[i]:.7g}")


def check(g, module, inputs):
    with torch.no_grad():
        want = module(*inputs)
    want = want if isinstance(want, tuple) else (want,)
    got = run_graph(g, {n: x.numpy() for n, x in zip(g.inputs, inputs)})
    assert len(g.outputs) == len(want)
    for name, w in zip(g.outputs, want):
        assert_close(got[name], w.numpy(), f"{g.name}/{name}")


def _randomize_bn(m: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            with torch.no_grad():
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
    return m.eval()


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        y = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(torch.flatten(y, 1))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.down = nn.Conv2d(4, 8, 1, stride=2)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = F.relu(self.b2(self.c2(y)) + self.down(x))
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


class ManyOps(nn.Module):
    """One module touching most mapped aten ops (both the export IR and core ATen forms)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(3, 4, 3, padding="same")
        self.c2 = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2, bias=False)
        self.dw = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8)
        self.ct = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pr = nn.PReLU(4)
        self.ln = nn.LayerNorm(6)
        self.emb = nn.Embedding(10, 6)
        self.fc = nn.Linear(6, 5)

    def forward(self, x, x1, tok):
        a = F.gelu(self.c1(x1), approximate="tanh")
        a = F.max_pool1d(a, 2) + F.avg_pool1d(a, 2)
        y = F.silu(self.c2(x))
        y = F.leaky_relu(F.hardswish(self.dw(y)) + F.hardsigmoid(y), 0.2)
        y = self.pr(self.bn(self.ct(y)))
        y = F.pad(F.pad(F.pad(y, (1, 2, 0, 1), mode="reflect"), (1, 1, 1, 1), mode="replicate"), (0, 1, 2, 0),
                  value=0.5)
        y = F.avg_pool2d(y, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        y = F.max_pool2d(y, 2, ceil_mode=True)
        u = F.interpolate(y, scale_factor=2, mode="nearest")[:, :, :8, :8]
        v = F.interpolate(y, size=(8, 8), mode="bilinear", align_corners=False)
        w = F.interpolate(y, size=(8, 8), mode="bilinear", align_corners=True)
        p, q = torch.chunk(torch.cat([u, v, w], dim=1), 2, dim=1)
        y = torch.clamp(p - q * 0.5, -1.0, 2.0) / (q.abs() + 1.0)
        y = torch.rsqrt(y.pow(2) + 1.0) * torch.sigmoid(y) - torch.tanh(y).exp()
        g = F.adaptive_avg_pool2d(y, 2).flatten(1)
        h = F.adaptive_avg_pool2d(y, 1).squeeze(-1).squeeze(-1)
        t = self.ln(self.emb(tok) + h.unsqueeze(1)).transpose(1, 2).permute(0, 2, 1)
        t = self.fc(t)
        t = torch.softmax(t, -1) + torch.log_softmax(t, dim=1)
        t = t @ t.transpose(1, 2)
        r = t[:, 1] + t[:, :, 0:2].sum(-1) + t.amax(dim=2) - t.mean(dim=(1, 2), keepdim=True)[:, 0]
        return r, g.sum(1, keepdim=True), a.max(dim=2)[0], 1.0 - F.relu6(g)


def small_cnn():
    return _randomize_bn(SmallCNN()), (torch.randn(2, 3, 8, 8),)


def residual():
    return _randomize_bn(Residual()), (torch.randn(1, 4, 10, 10),)


def many_ops():
    return _randomize_bn(ManyOps()), (torch.randn(1, 4, 16, 16), torch.randn(1, 3, 16), torch.tensor([[1, 9, 3]]))


MODELS = [small_cnn, residual]


# ---- live modules ----------------------------------------------------------------------------------

@pytest.mark.parametrize("make", MODELS + [many_ops], ids=lambda f: f.__name__)
def test_from_module_via_aten(make):
    m, x = make()
    t = time.perf_counter()
    g = from_module(m, x, name=make.__name__, via="aten")
    print(f"{make.__name__}: torch.export + mapping {time.perf_counter() - t:.2f} s, {len(g.nodes)} nodes")
    check(g, m, x)
    assert g.name == make.__name__ and g.meta["source"]["via"] == "aten"


def test_core_aten_decomposition_maps_too():
    m, x = many_ops()
    g = from_exported_program(torch.export.export(m, x).run_decompositions(), "core")
    check(g, m, x)


@pytest.mark.parametrize("make", MODELS, ids=lambda f: f.__name__)
def test_from_module_via_onnx(make):
    pytest.importorskip("engine.importers.onnx_import", reason="the ONNX importer is not in this tree yet")
    m, x = make()
    t = time.perf_counter()
    g = from_module(m, x, name=make.__name__)
    print(f"{make.__name__}: torch.onnx.export + ONNX import {time.perf_counter() - t:.2f} s "
          f"({g.meta.get('exporter')})")
    check(g, m, x)


def test_onnx_falls_back_to_torchscript():
    pytest.importorskip("engine.importers.onnx_import", reason="the ONNX importer is not in this tree yet")

    class DataDependent(nn.Module):  # dynamo cannot export a branch on a tensor value
        def forward(self, x):
            return x * 2.0 if x.sum() > 0 else x - 1.0

    x = torch.ones(2, 3)
    g = from_module(DataDependent(), (x,))
    assert g.meta["exporter"] == "torchscript" and "dynamo export failed" in g.meta["exporter_note"]
    check(g, DataDependent(), (x,))


def test_from_module_keeps_weights_names_and_mode():
    m, x = small_cnn()
    m.train()
    g = from_module(m, x, via="aten")
    assert m.training, "the caller's training mode is restored"
    assert {"conv.weight", "bn.running_mean", "fc.weight"} <= set(g.tensors)
    np.testing.assert_array_equal(g.tensors["conv.weight"].data, m.conv.weight.detach().numpy())
    assert [n.op for n in g.nodes] == ["Conv", "BatchNormalization", "Relu", "MaxPool", "Flatten", "Gemm"]


def test_unsupported_op_is_named():
    class CumSum(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, 1)

    with pytest.raises(UnsupportedOpError) as e:
        from_module(CumSum(), (torch.randn(2, 3),), via="aten")
    assert "aten.cumsum" in str(e.value) and "\n" not in str(e.value)


# ---- .pt2 archives ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """small_cnn saved with torch.export.save: (path, module, inputs)."""
    m, x = small_cnn()
    path = str(tmp_path_factory.mktemp("pt2") / "small_cnn.pt2")
    torch.export.save(torch.export.export(m, x), path)
    return path, m, x


@pytest.mark.parametrize("make", MODELS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("decompose", [False, True], ids=["export_ir", "core_aten"])
def test_load_pt2_matches_module(tmp_path, make, decompose):
    m, x = make()
    ep = torch.export.export(m, x)
    if decompose:
        ep = ep.run_decompositions()
    path = str(tmp_path / f"{make.__name__}.pt2")
    torch.export.save(ep, path)
    g = load_pt2(path)
    check(g, m, x)
    assert g.name == make.__name__ and g.meta["source"]["format"] == "pt2"


def test_sniff_pt2(saved, tmp_path):
    path, m, _ = saved
    data = open(path, "rb").read()
    assert sniff_pt2(data) and sniff_pt2(data[:4096])
    torch.save(m.state_dict(), tmp_path / "w.pt")
    assert not sniff_pt2((tmp_path / "w.pt").read_bytes())
    assert not sniff_pt2(b"\x08\x07onnx") and not sniff_pt2(b"")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("graph.json", "{}")
    assert not sniff_pt2(buf.getvalue())


def _rewrite(src: str, dst, replace: dict | None = None, add: dict | None = None) -> str:
    """Copy a .pt2 zip, replacing entries (root-relative name -> bytes) and adding raw entries."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            rel = info.filename[len(root) + 1:]
            zout.writestr(info.filename, (replace or {}).get(rel, zin.read(info)))
        for name, data in (add or {}).items():
            zout.writestr(name.replace("ROOT", root), data)
    return str(dst)


class _Marker:
    """Unpickling this object creates (truncates) a file: proof that someone unpickled it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _evil_torch_save(marker) -> bytes:
    buf = io.BytesIO()
    torch.save(_Marker(marker), buf)
    return buf.getvalue()


def test_pickled_weight_is_refused_without_unpickling(saved, tmp_path):
    path, _, _ = saved
    marker = tmp_path / "unpickled"
    cfg_rel = "data/weights/model_weights_config.json"
    cfg = json.loads(zipfile.ZipFile(path).read(f"small_cnn/{cfg_rel}"))
    cfg["config"]["conv.weight"]["use_pickle"] = True
    target = cfg["config"]["conv.weight"]["path_name"]
    bad = _rewrite(path, tmp_path / "pickled.pt2", {cfg_rel: json.dumps(cfg).encode(),
                                                    f"data/weights/{target}": _evil_torch_save(marker)})
    with pytest.raises(ModelFormatError, match="pickle") as e:
        load_pt2(bad)
    assert "conv.weight" in str(e.value) and not marker.exists()
    # Control: torch's own loader does unpickle it, so the marker mechanism is real.
    with pytest.raises(Exception):
        torch.export.load(bad)
    assert marker.exists()


def test_sample_inputs_pickle_is_never_opened(saved, tmp_path):
    path, m, x = saved
    marker = tmp_path / "unpickled"
    bad = _rewrite(path, tmp_path / "sample.pt2", {"data/sample_inputs/model.pt": pickle.dumps(_Marker(marker))})
    check(load_pt2(bad), m, x)
    assert not marker.exists()


def test_torch_save_pickle_renamed_pt2_is_refused(tmp_path):
    marker = tmp_path / "unpickled"
    zipped, legacy = tmp_path / "zipped.pt2", tmp_path / "legacy.pt2"
    torch.save(_Marker(marker), zipped)
    torch.save(_Marker(marker), legacy, _use_new_zipfile_serialization=False)
    for p in (zipped, legacy):
        with pytest.raises(ModelFormatError, match="not a .*pt2") as e:
            load_pt2(str(p))
        assert str(p) in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()
    torch.load(zipped, weights_only=False)  # control: unpickling creates the marker
    assert marker.exists()


def test_custom_object_constant_is_refused(saved, tmp_path):
    path, _, _ = saved
    cfg = {"config": {"obj": {"path_name": "custom_obj_0", "is_param": False, "use_pickle": False,
                              "tensor_meta": None}}}
    bad = _rewrite(path, tmp_path / "custom.pt2", {"data/constants/model_constants_config.json":
                                                   json.dumps(cfg).encode()},
                   add={"ROOT/data/constants/custom_obj_0": b"\x80\x04N."})
    with pytest.raises(ModelFormatError, match="pickle"):
        load_pt2(bad)


def test_path_escapes_are_refused(saved, tmp_path):
    path, _, _ = saved
    bad = _rewrite(path, tmp_path / "slip.pt2", add={"ROOT/../../escaped.txt": b"x"})
    with pytest.raises(ModelFormatError, match="outside the archive"):
        load_pt2(bad)
    cfg_rel = "data/weights/model_weights_config.json"
    cfg = json.loads(zipfile.ZipFile(path).read(f"small_cnn/{cfg_rel}"))
    cfg["config"]["conv.weight"]["path_name"] = "../models/model.json"
    bad = _rewrite(path, tmp_path / "payload.pt2", {cfg_rel: json.dumps(cfg).encode()})
    with pytest.raises(ModelFormatError, match="not a plain file name"):
        load_pt2(bad)


def test_truncated_and_oversized_archives(saved, tmp_path):
    path, _, _ = saved
    data = open(path, "rb").read()
    cut = tmp_path / "cut.pt2"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="cut.pt2"):
        load_pt2(str(cut))
    cfg = json.loads(zipfile.ZipFile(path).read("small_cnn/data/weights/model_weights_config.json"))
    payload = f"data/weights/{cfg['config']['fc.weight']['path_name']}"
    short = _rewrite(path, tmp_path / "short.pt2", {payload: b"\0" * 64})
    with pytest.raises(ModelFormatError, match="fc.weight.*truncated"):
        load_pt2(short)
    with pytest.raises(ModelFormatError, match="limit"):
        load_pt2(path, max_bytes=1000)
    bad_json = _rewrite(path, tmp_path / "json.pt2", {"models/model.json": b"{not json"})
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        load_pt2(bad_json)


def _edit_program(path: str, dst, edit) -> str:
    doc = json.loads(zipfile.ZipFile(path).read("small_cnn/models/model.json"))
    edit(doc["graph_module"]["graph"])
    return _rewrite(path, dst, {"models/model.json": json.dumps(doc).encode()})


def test_crafted_programs_fail_cleanly(saved, tmp_path):
    path, _, _ = saved

    def call_os_system(graph):  # torch's deserializer would resolve this with getattr(torch, "os")...
        graph["nodes"][0]["target"] = "torch.os.system"

    with pytest.raises(UnsupportedOpError, match="torch.os.system"):
        load_pt2(_edit_program(path, tmp_path / "os.pt2", call_os_system))

    def drop_inputs(graph):
        del graph["nodes"][1]["inputs"][0]["arg"]

    with pytest.raises(ModelFormatError, match="batch_norm.*malformed"):
        load_pt2(_edit_program(path, tmp_path / "malformed.pt2", drop_inputs))

    def huge_constant(graph):
        sizes = [{"as_int": 1 << 20}, {"as_int": 1 << 20}]
        graph["tensor_values"]["huge"] = {**graph["tensor_values"]["x"], "sizes": sizes, "strides": sizes}
        graph["nodes"].insert(0, {"target": "torch.ops.aten.zeros.default", "name": "huge", "metadata": {},
                                  "inputs": [{"name": "size", "arg": {"as_ints": [1 << 20, 1 << 20]}}],
                                  "outputs": [{"as_tensor": {"name": "huge"}}]})

    with pytest.raises(ModelFormatError, match="limit"):
        load_pt2(_edit_program(path, tmp_path / "huge.pt2", huge_constant))


def test_dynamic_shapes_are_refused(tmp_path):
    m, x = small_cnn()
    ep = torch.export.export(m, x, dynamic_shapes=({0: torch.export.Dim("batch", min=2, max=8)},))
    path = str(tmp_path / "dyn.pt2")
    torch.export.save(ep, path)
    with pytest.raises(ModelFormatError, match="dynamic"):
        load_pt2(path)


def test_missing_file_is_a_model_format_error(tmp_path):
    with pytest.raises(ModelFormatError, match="cannot read"):
        load_pt2(str(tmp_path / "nope.pt2"))
    assert not os.path.exists(tmp_path / "nope.pt2")
