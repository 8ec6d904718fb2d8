"""Session files that cost far more to import than their size (issue 10): each is refused with one line,
nothing is written, and the importing process's peak memory stays far below what the file declares
(measured in a subprocess: VmHWM since a reset)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import store.archive as archive
from engine.ir import Graph, Node, Tensor
from engine.serialize import content_hash, dumps
from store import SessionFileError, import_session_file, open_store

from tests.fixtures.peak_memory import MAX_PEAK_MB, PEAK_RSS

ROOT = Path(__file__).resolve().parents[2]


def _manifest(graph_hash: str) -> bytes:
    return json.dumps({
        "format": archive.FORMAT, "version": archive.FORMAT_VERSION, "tool_version": "test",
        "session": {"name": "crafted", "model": "crafted"}, "current": 0, "profiles": [],
        "versions": [{"parent": None, "action": "create", "params": {}, "graph_hash": graph_hash, "constants": 0,
                      "created": "2026-01-01T00:00:00Z"}]}).encode()


def write_archive(path: str, graph: Graph) -> str:
    """A valid session file holding `graph` as its only version, every member deflated (zeros shrink to
    almost nothing, as in the crafted files of the issue)."""
    doc, blob = dumps(graph)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("session.json", _manifest(content_hash(graph)))
        z.writestr("graphs/0.json", json.dumps(doc))
        with z.open("constants/0.npz", "w", force_zip64=True) as f:
            f.write(blob)
    return path


def matmul_graph(n: int) -> Graph:
    """X (1, n) @ W (n, n) of zeros: an n x n float32 constant."""
    g = Graph("big_constant")
    g.tensors["X"] = Tensor("X", (1, n), "float32")
    g.tensors["W"] = Tensor("W", (n, n), "float32", data=np.zeros((n, n), np.float32))
    g.tensors["Y"] = Tensor("Y", (1, n), "float32")
    g.nodes.append(Node("MatMul", "mm", ["X", "W"], ["Y"], {}))
    g.inputs, g.outputs = ["X"], ["Y"]
    return g


def build_big_constant(path: str, n: int) -> None:
    """Run in a subprocess: the builder needs the constant in memory, the test process should not."""
    write_archive(path, matmul_graph(n))


def _import_measured(path: str, db: str, builder: str | None = None) -> dict:
    script = PEAK_RSS + (
        "import json, sys\n"
        f"{builder or ''}\n"
        "from store import open_store, import_session_file, SessionFileError\n"
        "st = open_store(sys.argv[2])\n"
        "import store.graphs, engine.profile, hwmodels.estimate  # loaded before the baseline\n"
        "base = peak_rss(reset=True)\n"
        "try:\n"
        "    import_session_file(st, sys.argv[1]); out = 'accepted'\n"
        "except SessionFileError as e:\n"
        "    out = str(e)\n"
        "peak = peak_rss()\n"
        "with st.transaction() as con:\n"
        "    n = con.execute('SELECT count(*) FROM versions').fetchone()[0]\n"
        "print(json.dumps({'result': out, 'peak_mb': (peak - base) / 1024, 'versions': n}))\n")
    r = subprocess.run([sys.executable, "-c", script, path, db], capture_output=True, text=True, timeout=300,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _refused(res: dict, path, *fragments: str) -> None:
    msg = res["result"]
    assert msg.startswith(str(path)) and "\n" not in msg, msg
    for f in fragments:
        assert f in msg, msg
    assert res["versions"] == 0
    assert res["peak_mb"] < MAX_PEAK_MB, res


def test_gigabyte_of_zeros_in_a_one_megabyte_file(tmp_path):
    path = tmp_path / "bomb.tinystudio"
    g = matmul_graph(4)
    doc, _ = dumps(g)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("session.json", _manifest(content_hash(g)))
        z.writestr("graphs/0.json", json.dumps(doc))
        with z.open("constants/0.npz", "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(1024):
                f.write(chunk)
    assert path.stat().st_size < 2 << 20
    res = _import_measured(str(path), str(tmp_path / "s.duckdb"))
    _refused(res, path, "constants/0.npz", f"{archive.MAX_VERSION_CONSTANTS_BYTES:,}")


def test_256_mib_constant_in_a_small_file(tmp_path):
    ok, big = tmp_path / "ok.tinystudio", tmp_path / "big.tinystudio"
    for p, n in ((ok, 512), (big, 8192)):  # 1 MiB and 256 MiB of float32 zeros
        subprocess.run([sys.executable, "-c", "import sys; from tests.store.test_archive_limits import "
                        "build_big_constant as b; b(sys.argv[1], int(sys.argv[2]))", str(p), str(n)],
                       check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert big.stat().st_size < 2 << 20
    # the same construction under the limits is a valid session file: only the size is refused
    assert _import_measured(str(ok), str(tmp_path / "ok.duckdb"))["result"] == "accepted"
    res = _import_measured(str(big), str(tmp_path / "s.duckdb"))
    _refused(res, big, "constants/0.npz", f"{archive.MAX_VERSION_CONSTANTS_BYTES:,}")


def test_sixty_megabyte_json_member(tmp_path):
    path = tmp_path / "json.tinystudio"
    g = matmul_graph(4)
    doc, blob = dumps(g)
    doc["meta"] = {"pad": [0] * (20 << 20)}  # "0, " x 21 M: about 63 MB of JSON, 60 KB deflated
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("session.json", _manifest(content_hash(g)))
        z.writestr("graphs/0.json", json.dumps(doc))
        z.writestr("constants/0.npz", blob)
    del doc
    assert path.stat().st_size < 1 << 20
    res = _import_measured(str(path), str(tmp_path / "s.duckdb"))
    _refused(res, path, "graphs/0.json", f"{archive.MAX_JSON_BYTES:,}")


def test_json_with_too_many_values_is_refused_before_parsing(tmp_path, monkeypatch):
    g = matmul_graph(4)
    doc, blob = dumps(g)
    doc["meta"] = {"pad": [[]] * 3000}
    path = tmp_path / "items.tinystudio"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("session.json", _manifest(content_hash(g)))
        z.writestr("graphs/0.json", json.dumps(doc))
        z.writestr("constants/0.npz", blob)
    monkeypatch.setattr(archive, "MAX_JSON_ITEMS", 2000)
    with open_store(str(tmp_path / "s.duckdb")) as st:
        with pytest.raises(SessionFileError, match=r"graphs/0.json holds about 6,0\d\d values, over the limit of 2,000"):
            import_session_file(st, str(path))


def test_session_constants_cap(tmp_path, monkeypatch):
    path = write_archive(str(tmp_path / "s.tinystudio"), matmul_graph(64))  # 16 KiB of constants
    monkeypatch.setattr(archive, "MAX_SESSION_CONSTANTS_BYTES", 10_000)
    with open_store(str(tmp_path / "s.duckdb")) as st:
        with pytest.raises(SessionFileError, match=r"s.tinystudio: .*constants add up to 16,\d+ bytes, over the "
                                                   r"limit of 10,000 for one session"):
            import_session_file(st, path)
        monkeypatch.setattr(archive, "MAX_SESSION_CONSTANTS_BYTES", 1 << 20)
        assert import_session_file(st, path).version_count == 1


def huge_input_graph() -> Graph:
    """Relu over a (2**31, 2**31) float32 input: 2**64 bytes of activations, far over every limit."""
    g = Graph("huge_input")
    g.tensors["X"] = Tensor("X", (1 << 31, 1 << 31), "float32")
    g.tensors["Y"] = Tensor("Y", (1 << 31, 1 << 31), "float32")
    g.nodes.append(Node("Relu", "relu", ["X"], ["Y"], {}))
    g.inputs, g.outputs = ["X"], ["Y"]
    return g


def test_huge_input_shape_is_a_session_file_error(tmp_path):
    g = huge_input_graph()
    path = write_archive(str(tmp_path / "huge.tinystudio"), g)
    with open_store(str(tmp_path / "s.duckdb")) as st:
        with pytest.raises(SessionFileError) as e:
            import_session_file(st, path)
        with st.transaction() as con:
            assert con.execute("SELECT count(*) FROM versions").fetchone()[0] == 0
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(path), msg
    assert "version 0" in msg and "tensor 'X' of shape [2147483648, 2147483648]" in msg and "over the limit" in msg


def test_bad_shapes_in_a_graph_document(tmp_path):
    for shape, match in (([2, -1], "non-negative"), ([2, 1.5], "non-negative"), ([True], "non-negative"),
                         ([1] * 17, "at most 16")):
        g = matmul_graph(4)
        doc, blob = dumps(g)
        doc["tensors"][0]["shape"] = shape
        path = tmp_path / "bad.tinystudio"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("session.json", _manifest(content_hash(g)))
            z.writestr("graphs/0.json", json.dumps(doc))
            z.writestr("constants/0.npz", blob)
        with open_store(str(tmp_path / "s.duckdb")) as st:
            with pytest.raises(SessionFileError, match=match):
                import_session_file(st, str(path))


def test_tsgraph_files_have_the_same_limits(tmp_path):
    from engine.errors import ModelFormatError
    from engine.serialize import load, save

    g = huge_input_graph()
    save(g, str(tmp_path / "huge.tsgraph"))
    with pytest.raises(ModelFormatError, match=r"huge.tsgraph: corrupted TinyStudio graph file \(tensor 'X' of shape "
                                               r"\[2147483648, 2147483648\] needs .* over the limit"):
        load(str(tmp_path / "huge.tsgraph"))
    doc, _ = dumps(matmul_graph(4))
    with zipfile.ZipFile(tmp_path / "bomb.tsgraph", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("graph.json", json.dumps(doc))
        with z.open("constants.npz", "w", force_zip64=True) as f:
            for _ in range(64):
                f.write(bytes(1 << 20))
    with pytest.raises(ModelFormatError, match="bomb.tsgraph: graph file unpacks to more than the limit of 1,000,000"):
        load(str(tmp_path / "bomb.tsgraph"), max_bytes=1_000_000)
