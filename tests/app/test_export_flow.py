"""The Export page's helpers: verifications and measurements offered per MCU, the dataset record of a version
(from it or an ancestor), the background job that stores a bundle named after the session."""
from __future__ import annotations

import io
import shutil
import zipfile

import numpy as np
import pytest

import store as db
from app.workflows import export as flow
from engine.importers import load_model
from hwmodels.mcu import get_mcu

TINY = "zoo:lenet5?resolution=16&classes=4"


def test_verify_choices_follow_the_mcu():
    modes, why = flow.verify_choices(get_mcu("esp32s3"))
    assert modes == ["host", "none"] and "xtensa-lx7" in why["qemu"] and "--" not in why["qemu"]
    modes, why = flow.verify_choices(get_mcu("rp2040"))
    assert "qemu" not in modes and "cortex-m0plus" in why["qemu"]
    if shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):
        assert flow.verify_choices(get_mcu("nrf52840")) == (["host", "qemu", "none"], {})


def test_measure_note_says_why_nothing_is_measured():
    assert "no Xtensa toolchain" in flow.measure_note(get_mcu("esp32"))
    assert "no RISC-V toolchain" in flow.measure_note(get_mcu("gd32vf103cb"))
    if shutil.which("arm-none-eabi-gcc"):
        assert flow.measure_note(get_mcu("nrf52840")) == ""


def test_bundle_filename_survives_odd_reports():
    assert flow.bundle_filename({"library": {"name": "kws"}}, "esp32") == "tinystudio_kws_esp32.zip"
    assert flow.bundle_filename(None, "esp32") == "tinystudio_bundle_esp32.zip"
    assert flow.bundle_filename({"library": 3}, "x") == "tinystudio_bundle_x.zip"


@pytest.fixture
def st_store(tmp_path):
    s = db.open_store(str(tmp_path / "t.duckdb"))
    yield s
    s.close()


def test_dataset_record_comes_from_the_version_or_its_ancestors(st_store):
    g = load_model(TINY)
    s = db.create_session(st_store, "Gesture lab", g)
    v1 = db.current_version(st_store, s.id)
    assert flow.version_dataset(st_store, v1.id) is None
    rec = {"source": "builtin:digits", "normalization": {"mean": [1.0], "std": [2.0], "axis": "channel"}}
    v2 = db.add_version(st_store, s.id, g, "quantize-int8", {"dataset": rec})
    v3 = db.add_version(st_store, s.id, g, "prune-magnitude", {"amount": 0.5})
    assert flow.version_dataset(st_store, v3.id) == rec and flow.version_dataset(st_store, v2.id) == rec


def test_export_job_stores_a_bundle_named_after_the_session(st_store):
    g = load_model(TINY)
    s = db.create_session(st_store, "Gesture lab", g)
    v = db.current_version(st_store, s.id)
    rec = {"source": "builtin:x", "normalization": {"mean": [0.5], "std": [0.25]}, "class_names": list("abcd")}
    work = flow.export_job(lambda vid: db.get_graph(st_store, vid), lambda: st_store, v.id, "esp32s3", "host", 1,
                           None, "Gesture lab", rec)
    seen = []
    out = work(lambda f, m="": seen.append(m))
    e = db.get_export(st_store, out["export_id"])
    assert e.options["name"] == "gesture_lab" and e.report["library"]["name"] == "gesture_lab"
    assert e.report["preprocessing"]["class_labels"] == list("abcd")
    assert e.report["measured"]["flash_bytes"] is None and "ESP-IDF" in e.report["measured"]["note"]
    with zipfile.ZipFile(io.BytesIO(db.export_bundle(st_store, e.id))) as z:
        readme = z.read("tinystudio_gesture_lab/README.md").decode()
    assert "| 0 | 0.5 | 0.25 |" in readme and "| 3 | d |" in readme
    assert any(m.startswith("generating C") for m in seen)


def test_a_float_version_is_calibrated_on_the_data_set_it_was_trained_on():
    """Not on synthetic data: the int8 scales of the bundle come from the training split's (normalized) samples."""
    from engine.data import load_dataset
    from engine.train import adapt_zoo

    data = load_dataset("digits")
    g = adapt_zoo("zoo:lenet5", data)  # 1x8x8 in, with a resize in front
    rec = {"source": "builtin:digits", "split": {"seed": 0}}
    feeds = flow.dataset_calibration(g, rec, n=16)
    assert len(feeds) == 16
    (name, x), = feeds[3].items()
    assert name == g.inputs[0] and x.shape == (1, 1, 8, 8)
    assert abs(float(data.x_train[3].mean()) - float(x.mean())) < 1e-6  # the same split and normalization
    # No data set, an upload, or samples the graph does not take: None (synthetic calibration, with its warning).
    assert flow.dataset_calibration(g, None) is None
    assert flow.dataset_calibration(g, {"source": "upload:x.npz"}) is None
    assert flow.dataset_calibration(load_model(TINY), rec) is None


def test_a_bad_calibration_upload_is_one_line_not_a_traceback():
    """A file that is not a zip raised zipfile.BadZipFile, which reached the Export page as a traceback."""
    from app.workflows.export import calibration_npz as load_calibration
    from engine.errors import TinyStudioError

    for data in (b"PK\x03\x04 not really a zip", b"garbage", b""):
        with pytest.raises(TinyStudioError, match=r"^bad\.npz: not a readable \.npz file") as e:
            load_calibration(data, "bad.npz")
        assert "\n" not in str(e.value)
    # An .npy header declaring 4 TiB in a tiny member is refused before numpy allocates.
    buf = io.BytesIO()
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }"
    header += b" " * (63 - len(header) % 64) + b"\n"
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 16)
    with pytest.raises(TinyStudioError, match=r"^huge\.npz: "):
        load_calibration(buf.getvalue(), "huge.npz")
    ok = io.BytesIO()
    np.savez(ok, x=np.ones((3, 1, 8, 8), np.float32))
    assert load_calibration(ok.getvalue(), "ok.npz").shape == (3, 1, 8, 8)
