"""The review's exploit through the browser (issue 10): an uploaded ONNX file whose initializer points through
external data at a file beside the server. The studio's working folder holds a file with the upload's name and
the secret next to it, the setup under which the old check accepted the upload and copied the secret's bytes
into the new version. Now: one line refusing it, no session, no version, nothing read."""
from __future__ import annotations

import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import store as db
from tests.e2e import studio as ui
from tests.e2e.studio import REPO
from tests.e2e.test_bad_input import _sessions, _upload_error


def _exploit(location: str) -> bytes:
    w = numpy_helper.from_array(np.zeros((3, 4), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "48")):
        e = w.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return m.SerializeToString()


def test_upload_with_external_data_beside_the_server_is_refused(studio, new_page, shot, tmp_path):
    stem = f"exploit-{os.getpid()}"
    secret = REPO / f"{stem}-secret.bin"  # the server runs in REPO: "beside the studio"
    twin = REPO / f"{stem}.onnx"  # a file with the upload's name, so the old check took REPO as its folder
    upload = tmp_path / f"{stem}.onnx"
    data = _exploit(secret.name)
    upload.write_bytes(data)
    try:
        secret.write_bytes(b"SECRET--" * 6)  # 48 bytes: exactly what the tensor asks for
        twin.write_bytes(data)
        page = new_page(studio.url)
        ui.create_zoo_session(page, "lenet5", name="LeNet")
        before = _sessions(page)
        page.get_by_role("tab", name="New session").click()
        page.get_by_role("tab", name="Upload a model").click()
        uploader = page.get_by_test_id("stFileUploader").filter(has_text="ONNX, TFLite or PyTorch")
        message = _upload_error(page, uploader, upload, "no folder")
        assert message.startswith(f"{stem}.onnx: tensor 'w' keeps its data in an external file"), message
        assert "refused" in message and "SECRET" not in message
        shot(page, "refused")
        assert _sessions(page) == before
    finally:
        secret.unlink(missing_ok=True)
        twin.unlink(missing_ok=True)

    studio.stop()
    store = db.open_store(str(studio.db_path))
    try:
        sessions = db.list_sessions(store)
        assert [(s.name, s.version_count) for s in sessions] == [("LeNet", 1)]
        for s in sessions:
            for v in db.list_versions(store, s.id):
                g = db.get_graph(store, v.id)
                assert all(b"SECRET" not in t.data.tobytes() for t in g.tensors.values() if t.data is not None)
    finally:
        store.close()
