"""engine.labs.package: a challenge as text and bytes (the lab server's form of it), and the hidden test split."""
from __future__ import annotations

import datetime as dt
import tomllib

import numpy as np
import pytest

from engine.labs import ChallengeError, list_builtin, load_challenge
from engine.labs.package import grade_packed, pack, parse_text, to_toml, unpack


@pytest.mark.parametrize("name", list_builtin())
def test_builtins_round_trip(tmp_path, name):
    ch, text, files = pack(f"builtin:{name}")
    assert files == {} and "instructions_file" not in text
    again = unpack(text, files, tmp_path, source=f"builtin:{name}")
    assert again.to_json() == ch.to_json()


def test_files_travel_with_their_names_and_the_test_split_is_marked_hidden(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "train.npz", x=rng.normal(size=(20, 3)).astype(np.float32), y=np.arange(20) % 2)
    np.savez(tmp_path / "test.npz", x=rng.normal(size=(6, 3)).astype(np.float32), y=np.arange(6) % 2)
    (tmp_path / "how.md").write_text("# Do it\n")
    (tmp_path / "lab.toml").write_text('title = "T"\ninstructions_file = "how.md"\ndataset = "data/train.npz"\n'
                                       'test_dataset = "test.npz"\nmcu = "nrf52840"\n')
    ch, text, files = pack(str(tmp_path / "lab.toml"))
    assert {k: v[1] for k, v in files.items()} == {"data/train.npz": False, "test.npz": True}
    doc = tomllib.loads(text)
    assert (doc["instructions"], doc["dataset"], doc["test_dataset"]) == ("# Do it\n", "data/train.npz", "test.npz")
    out = tmp_path / "out"
    out.mkdir()
    again = unpack(text, files, out)
    assert again.test_dataset == str(out / "test.npz") and again.instructions == ch.instructions
    # A stored name cannot escape the folder it is unpacked into
    with pytest.raises(ChallengeError, match="must lie beside the challenge file"):
        unpack(text, {"../evil.npz": (b"x", False)}, out)


@pytest.mark.parametrize("value,message", [
    ('"test.txt"', 'test_dataset: must be a .npz, .csv, .zip file beside the challenge file, got "test.txt"'),
    ('"missing.npz"', "test_dataset: no such file 'missing.npz' (beside the challenge file)"),
    ('"../up.npz"', "test_dataset: '../up.npz' is outside the challenge's folder"),
    ("3", "test_dataset: must be a non-empty string, got 3"),
])
def test_test_dataset_errors_name_the_field(tmp_path, value, message):
    (tmp_path / "lab.toml").write_text(f'title = "T"\ndataset = "digits"\nmcu = "nrf52840"\ntest_dataset = {value}\n')
    with pytest.raises(ChallengeError) as e:
        load_challenge(tmp_path / "lab.toml")
    assert str(e.value).startswith(f"lab.toml: {message}")


def test_to_toml_writes_what_tomllib_reads():
    doc = {"title": 'quote " and \\ and é and \n newline', "n": 3, "x": 0.25, "flag": False,
           "deadline": dt.datetime(2027, 1, 31, 23, 59, tzinfo=dt.timezone.utc), "limits": {"sram_bytes": 65536}}
    assert tomllib.loads(to_toml(doc)) == doc


def test_parse_text_and_grade_packed(tmp_path):
    with pytest.raises(ChallengeError, match="challenge.toml: not valid TOML"):
        parse_text("title = ")
    text = 'title = "T"\ndataset = "digits"\nmcu = "stm32g0b1re"\nexport = false\n[grading]\ntest_samples = 30\n'
    assert parse_text(text).title == "T"
    res = grade_packed(text, {}, b"not a model")
    assert res["passed"] is False and res["error"].startswith("not graded: the model cannot be read")
