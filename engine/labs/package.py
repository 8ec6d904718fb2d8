"""A challenge as text and bytes, so a lab server can keep it in its database and grade it in a worker process.

    ch, toml_text, files = pack("lab.toml")          # or "builtin:kws64k"; files: {name: (bytes, hidden)}
    ch = unpack(toml_text, files, folder)             # the same challenge again, read from a folder
    grade_packed(toml_text, files, model_bytes)       # GradeResult.to_json() of a .tsgraph submission

The packed TOML carries the instructions inline and names its files (data set, hidden test split, starting
model) by the relative names the original file used; `hidden` marks the test split, which students never get.
Nothing here reads outside the folder a package is unpacked into.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import tempfile
import tomllib
from pathlib import Path, PurePosixPath

from engine.labs.challenge import BUILTIN_DIR, MAX_FILE_BYTES, Challenge, ChallengeError, load_challenge, parse_challenge

FILE_KEYS = ("dataset", "test_dataset", "start")  # keys that may name a file beside the challenge file
FILE_NAME = "challenge.toml"


def pack(path_or_builtin: str) -> tuple[Challenge, str, dict[str, tuple[bytes, bool]]]:
    """Validate a challenge file and gather it into (challenge, TOML text, files)."""
    ch = load_challenge(path_or_builtin)
    text = str(path_or_builtin)
    path = BUILTIN_DIR / f"{text.removeprefix('builtin:')}.toml" if text.startswith("builtin:") else Path(text)
    doc = tomllib.loads(path.read_text(encoding="utf-8"))  # load_challenge read and checked it already
    return ch, *pack_doc(doc, ch, path.parent)


def pack_doc(doc: dict, ch: Challenge, base: Path) -> tuple[str, dict[str, tuple[bytes, bool]]]:
    """(TOML text, files) of a parsed challenge document whose files lie in `base`."""
    doc = dict(doc)
    if "instructions_file" in doc:
        doc.pop("instructions_file")
        doc["instructions"] = ch.instructions
    files: dict[str, tuple[bytes, bool]] = {}
    for key, value in (("dataset", ch.dataset), ("test_dataset", ch.test_dataset), ("start", ch.start)):
        if value and Path(value).is_absolute() and Path(value).is_file():  # a file, not a built-in or zoo spec
            name = str(PurePosixPath(*Path(value).resolve().relative_to(base.resolve()).parts))
            doc[key] = name
            files[name] = (Path(value).read_bytes(), key == "test_dataset")
    return to_toml(doc), files


def unpack(toml_text: str, files: dict[str, tuple[bytes, bool]], folder: str | Path,
           source: str = "") -> Challenge:
    """Write the package into `folder` and read the challenge back (every check of load_challenge again)."""
    folder = write_files(files, folder)
    (folder / FILE_NAME).write_text(toml_text, encoding="utf-8")
    ch = load_challenge(folder / FILE_NAME)
    return ch if not source else dataclasses.replace(ch, source=source)


def write_files(files: dict[str, tuple[bytes, bool]], folder: str | Path) -> Path:
    """Write a package's files into `folder` under their names; returns the resolved folder."""
    folder = Path(folder).resolve()
    for name, (data, _hidden) in files.items():
        p = (folder / name).resolve()
        if not p.is_relative_to(folder) or p == folder or p.name == FILE_NAME:  # names must stay inside
            raise ChallengeError(f"{name!r}: a challenge's file must lie beside the challenge file")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return folder


def parse_text(toml_text: str, files: dict[str, tuple[bytes, bool]] | None = None,
               fname: str = FILE_NAME) -> Challenge:
    """Validate TOML text (a form's, an upload's) with its files; ChallengeError names the field."""
    if len(toml_text.encode()) > MAX_FILE_BYTES:
        raise ChallengeError(f"{fname}: larger than {MAX_FILE_BYTES:,} bytes")
    try:
        doc = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise ChallengeError(f"{fname}: not valid TOML ({e})") from None
    with tempfile.TemporaryDirectory(prefix="tinystudio-challenge-") as td:
        write_files(files or {}, td)
        return parse_challenge(doc, fname, base_dir=td, source=fname)


def grade_packed(toml_text: str, files: dict[str, tuple[bytes, bool]], model: bytes, progress=None) -> dict:
    """Grade a submitted .tsgraph against a packed challenge; runs in a worker process. Never raises for a
    model the grader cannot run: the result says "not graded: why" (engine.labs.grade)."""
    from engine.data import load_dataset
    from engine.labs.grade import grade, not_graded
    from engine.serialize import load

    report = progress or (lambda *_: None)
    with tempfile.TemporaryDirectory(prefix="tinystudio-grade-") as td:
        report(0.05, "reading the challenge")
        ch = unpack(toml_text, files, td)
        mpath = Path(td) / "submission.tsgraph"
        mpath.write_bytes(model)
        try:
            graph = load(str(mpath))
        except Exception as e:  # noqa: BLE001 - a damaged model is a verdict on the submission, not a crash
            return not_graded(f"the model cannot be read ({type(e).__name__}: {e})").to_json()
        report(0.15, "loading the data set")
        data = load_dataset(ch.dataset)
        report(0.3, "grading: profile, accuracy on the test split, export and C verification")
        return grade(ch, graph, data=data).to_json()


def to_toml(doc: dict) -> str:
    """TOML text of a challenge document: scalars first, then one [table] per dict (no nested tables)."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += ["", f"[{_key(k)}]"] + [f"{_key(kk)} = {_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ChallengeError(f"{v} cannot be written to a challenge file")
        return repr(v)
    if isinstance(v, dt.datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, (dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise ChallengeError(f"a {type(v).__name__} value cannot be written to a challenge file")
