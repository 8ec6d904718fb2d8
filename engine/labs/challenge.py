"""A teaching-lab challenge as data, read from a TOML file: what to build, for which MCU, within which limits,
and how it is scored. engine.labs.grade grades a model against it.

    ch = load_challenge("lab.toml")            # or "builtin:kws64k" (engine/labs/builtin/*.toml)
    ch.limits["sram_bytes"], ch.mcu, ch.runtime, ch.check_names()   # ("sram", "flash", "latency", ...)

The file (every key but title, dataset and mcu optional; see README "Teaching labs"):

    title = "Fit keyword spotting into 64 KB of SRAM on an nRF52840"
    instructions_file = "kws64k.md"      # Markdown beside the file (or `instructions = "..."` inline)
    dataset = "keywords"                 # a built-in of engine.data, or a .npz/.csv/.zip beside the file
    test_dataset = "test.npz"            # optional: the hidden test split (a file beside), graded on instead
    task = "classification"              # must agree with the data set
    start = "zoo:kws_dscnn"              # the starting model: a zoo spec or a model file beside the file
    mcu = "nrf52840"                     # hwmodels ids; runtime defaults to the MCU's default runtime
    runtime = "tinystudio-c"
    accuracy_target = 0.85               # fraction of the test samples classified right
    deadline = 2027-01-31T23:59:00Z      # ISO 8601 with a time zone
    counts = "best"                      # which submission counts: "best" or "last"
    export = true                        # check the exported C is bit-exact to the int8 reference (default)
    schedule = "layer"                   # how the layers run on the MCU (engine.memory.schedule): layer (default),
    max_mac_overhead = 0.10              #   inplace, patch, fused or auto, and the recomputed MACs auto may add
    require_int8 = false                 # the submission must already be int8 (the grader will not quantize)
    [limits]                             # any subset
    sram_bytes = 65536
    flash_bytes = 131072
    latency_ms = 100.0
    energy_uj = 1000.0
    [scoring]
    method = "accuracy-if-fits"          # "pass-fail" | "accuracy-if-fits" | "formula"
    formula = "accuracy * 100 - latency / 10"   # method "formula": over the check values (engine.labs.formula)
    [grading]
    test_samples = 0                     # grade on at most this many test samples, evenly spaced (0: all)
    verify_inputs = 10                   # random inputs besides the golden one for the C verification

Every mistake raises ChallengeError with one line naming the file and the field, e.g.
`lab.toml: limits.sram_bytes: must be a positive integer, got "64k"`.
"""
from __future__ import annotations

import datetime as dt
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import TinyStudioError
from engine.labs.formula import Formula, FormulaError

BUILTIN_DIR = Path(__file__).parent / "builtin"
MAX_FILE_BYTES = 256 * 1024  # a challenge is a page of text; anything larger is not one
LIMITS = {"sram_bytes": "sram", "flash_bytes": "flash", "latency_ms": "latency", "energy_uj": "energy"}
METHODS = ("pass-fail", "accuracy-if-fits", "formula")
COUNTS = ("best", "last")
TOP_KEYS = ("title", "instructions", "instructions_file", "dataset", "test_dataset", "task", "start", "mcu", "runtime",
            "accuracy_target", "deadline", "counts", "export", "require_int8", "limits", "scoring", "grading",
            "schedule", "max_mac_overhead")
SCORING_KEYS = ("method", "formula")
GRADING_KEYS = ("test_samples", "verify_inputs")
# Names a formula may read: the check values (export: 1 when bit-exact, else 0) and fits (1 when every
# limit check passes, else 0).
FORMULA_NAMES = ("sram", "flash", "latency", "energy", "accuracy", "export", "fits")


class ChallengeError(TinyStudioError):
    """A challenge file is malformed: one line naming the file and the field."""


@dataclass(frozen=True)
class Challenge:
    title: str
    instructions: str  # Markdown
    dataset: str  # a built-in name or an absolute path to a data file
    task: str
    start: str | None  # a zoo spec or an absolute path to a model file
    mcu: str
    runtime: str
    limits: dict[str, float]  # keys of LIMITS
    accuracy_target: float | None
    deadline: dt.datetime | None  # aware
    counts: str
    export: bool
    require_int8: bool
    method: str
    formula: Formula | None
    test_samples: int  # 0: all
    verify_inputs: int
    source: str = ""  # the file it was read from, or builtin:NAME
    meta: dict = field(default_factory=dict)
    test_dataset: str | None = None  # absolute path of the hidden test split's file (a lab server keeps it)
    schedule: str = "layer"  # engine.memory.schedule CHOICES: the profile and the export run the model this way
    max_mac_overhead: float = 0.10

    def check_names(self) -> tuple[str, ...]:
        """The checks a grading of this challenge reports, in order."""
        names = ["sram", "flash"] + [LIMITS[k] for k in ("latency_ms", "energy_uj") if k in self.limits]
        if self.needs_accuracy():
            names.append("accuracy")
        if self.export:
            names.append("export")
        if self.require_int8:
            names.append("int8")
        return tuple(names)

    def needs_accuracy(self) -> bool:
        return (self.accuracy_target is not None or self.method == "accuracy-if-fits"
                or (self.formula is not None and "accuracy" in self.formula.names))

    def accepts(self, now: dt.datetime | None = None) -> bool:
        """Whether a submission made at `now` (default: the current time) is before the deadline."""
        now = now or dt.datetime.now(dt.timezone.utc)
        return self.deadline is None or now <= self.deadline

    def to_json(self) -> dict:
        return {"title": self.title, "instructions": self.instructions, "dataset": self.dataset, "task": self.task,
                "start": self.start, "mcu": self.mcu, "runtime": self.runtime, "limits": dict(self.limits),
                "accuracy_target": self.accuracy_target,
                "deadline": self.deadline.isoformat() if self.deadline else None, "counts": self.counts,
                "export": self.export, "require_int8": self.require_int8,
                "scoring": {"method": self.method, "formula": self.formula.text if self.formula else None},
                "grading": {"test_samples": self.test_samples, "verify_inputs": self.verify_inputs},
                "checks": list(self.check_names()), "source": self.source, "test_dataset": self.test_dataset,
                "schedule": self.schedule, "max_mac_overhead": self.max_mac_overhead}


def list_builtin() -> list[str]:
    """Names of the challenges shipped with TinyStudio (`builtin:NAME`)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def load_challenge(path_or_builtin: str | os.PathLike) -> Challenge:
    """A challenge from a TOML file, or `builtin:NAME` for one shipped with TinyStudio."""
    text = str(path_or_builtin)
    if text.startswith("builtin:"):
        name = text.removeprefix("builtin:")
        if name not in list_builtin():
            raise ChallengeError(f"{text}: no such built-in challenge; built-ins: "
                                 f"{', '.join('builtin:' + n for n in list_builtin())}")
        path, source = BUILTIN_DIR / f"{name}.toml", text
    else:
        path, source = Path(text), text
    if path.is_dir():
        raise ChallengeError(f"{text}: is a folder; give a challenge file (.toml)")
    if not path.is_file():
        raise ChallengeError(f"{text}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ChallengeError(f"{path.name}: {path.stat().st_size:,} bytes; a challenge file has at most "
                             f"{MAX_FILE_BYTES:,}")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ChallengeError(f"{path.name}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ChallengeError(f"{path.name}: not valid TOML ({e})") from None
    except OSError as e:
        raise ChallengeError(f"{path.name}: cannot be read ({e.strerror or e})") from None
    return parse_challenge(doc, path.name, base_dir=path.parent, source=source)


def parse_challenge(doc: dict, fname: str = "challenge.toml", base_dir: str | os.PathLike = ".",
                    source: str = "") -> Challenge:
    """A Challenge from a parsed TOML document; `base_dir` resolves the files it names."""
    base = Path(base_dir)

    def fail(key: str, msg: str):
        raise ChallengeError(f"{fname}: {key}: {msg}")

    _known(doc, TOP_KEYS, "", fail)
    title = _text(doc, "title", fail, required=True)
    instructions = _text(doc, "instructions", fail) or ""
    if "instructions_file" in doc:
        if instructions:
            fail("instructions_file", "give instructions or instructions_file, not both")
        ipath = _file(doc, "instructions_file", base, fail)
        if ipath.stat().st_size > MAX_FILE_BYTES:
            fail("instructions_file", f"{ipath.name} is larger than {MAX_FILE_BYTES:,} bytes")
        try:
            instructions = ipath.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            fail("instructions_file", f"{ipath.name} is not UTF-8 text")
    dataset, task = _dataset(doc, base, fail)
    test_dataset = _test_dataset(doc, base, fail)
    start = _start(doc, base, fail)
    mcu, runtime = _target(doc, fail)
    limits = _limits(doc, fail)
    target = doc.get("accuracy_target")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))
                               or not 0 < target <= 1):
        fail("accuracy_target", f"must be a number in (0, 1], e.g. 0.85, got {_show(target)}")
    counts = _choice(doc, "counts", COUNTS, "best", fail)
    export = _flag(doc, "export", True, fail)
    from engine.memory.schedule import CHOICES, DEFAULT_MAX_MAC_OVERHEAD
    schedule = _choice(doc, "schedule", CHOICES, "layer", fail)
    overhead = doc.get("max_mac_overhead", DEFAULT_MAX_MAC_OVERHEAD)
    if isinstance(overhead, bool) or not isinstance(overhead, (int, float)) or not 0 <= overhead <= 1:
        fail("max_mac_overhead", f"must be a number in [0, 1], e.g. 0.10, got {_show(overhead)}")
    require_int8 = _flag(doc, "require_int8", False, fail)
    scoring = _table(doc, "scoring", fail)
    _known(scoring, SCORING_KEYS, "scoring.", fail)
    method = _choice(scoring, "method", METHODS, "pass-fail", fail, "scoring.")
    formula = None
    if method == "formula":
        if "formula" not in scoring:
            fail("scoring.formula", "method \"formula\" needs a formula, e.g. \"accuracy * 100 - latency / 10\"")
        names = set(FORMULA_NAMES) - (set() if export else {"export"})
        try:
            formula = Formula.parse(scoring["formula"], names)
        except FormulaError as e:
            fail("scoring.formula", str(e))
    elif "formula" in scoring:
        fail("scoring.formula", f"is only read with method \"formula\", the method is \"{method}\"")
    grading = _table(doc, "grading", fail)
    _known(grading, GRADING_KEYS, "grading.", fail)
    test_samples = _count(grading, "test_samples", 0, 0, 1_000_000, fail, "grading.")
    verify_inputs = _count(grading, "verify_inputs", 10, 0, 1000, fail, "grading.")
    return Challenge(title, instructions, dataset, task, start, mcu, runtime, limits,
                     None if target is None else float(target), _deadline(doc, fail), counts, export,
                     require_int8, method, formula, test_samples, verify_inputs, source, test_dataset=test_dataset,
                     schedule=schedule, max_mac_overhead=float(overhead))


def _show(v) -> str:
    return f'"{v}"' if isinstance(v, str) else repr(v)


def _known(doc: dict, keys: tuple[str, ...], prefix: str, fail) -> None:
    for k in doc:
        if k not in keys:
            fail(f"{prefix}{k}", f"unknown key; valid keys: {', '.join(keys)}")


def _table(doc: dict, key: str, fail) -> dict:
    t = doc.get(key, {})
    if not isinstance(t, dict):
        fail(key, f"must be a table ([{key}]), got {_show(t)}")
    return t


def _text(doc: dict, key: str, fail, required: bool = False) -> str | None:
    if key not in doc:
        if required:
            fail(key, "missing; it is required")
        return None
    v = doc[key]
    if not isinstance(v, str) or (required and not v.strip()):
        fail(key, f"must be a non-empty string, got {_show(v)}")
    return v


def _file(doc: dict, key: str, base: Path, fail) -> Path:
    name = _text(doc, key, fail, required=True)
    p = (base / name).resolve()
    if not p.is_relative_to(base.resolve()):  # a challenge published on a lab server must not read the server's files
        fail(key, f"{name!r} is outside the challenge's folder; name a file beside the challenge file")
    if not p.is_file():
        fail(key, f"no such file {name!r} (beside the challenge file)")
    return p


def _choice(doc: dict, key: str, choices: tuple[str, ...], default: str, fail, prefix: str = "") -> str:
    v = doc.get(key, default)
    if v not in choices:
        fail(f"{prefix}{key}", f"must be one of {', '.join(choices)}, got {_show(v)}")
    return v


def _flag(doc: dict, key: str, default: bool, fail) -> bool:
    v = doc.get(key, default)
    if not isinstance(v, bool):
        fail(key, f"must be true or false, got {_show(v)}")
    return v


def _count(doc: dict, key: str, default: int, lo: int, hi: int, fail, prefix: str = "") -> int:
    v = doc.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        fail(f"{prefix}{key}", f"must be an integer from {lo} to {hi}, got {_show(v)}")
    return v


def _limits(doc: dict, fail) -> dict[str, float]:
    limits = _table(doc, "limits", fail)
    _known(limits, tuple(LIMITS), "limits.", fail)
    out: dict[str, float] = {}
    for k, v in limits.items():
        if k.endswith("_bytes"):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                fail(f"limits.{k}", f"must be a positive integer, got {_show(v)}")
            out[k] = int(v)
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
                fail(f"limits.{k}", f"must be a positive number, got {_show(v)}")
            out[k] = float(v)
    return out


def _dataset(doc: dict, base: Path, fail) -> tuple[str, str]:
    from engine.data import BUILTINS, TASKS, UPLOAD_EXTENSIONS

    name = _text(doc, "dataset", fail, required=True).strip()
    task = _text(doc, "task", fail)
    if task is not None and task not in TASKS:
        fail("task", f"must be one of {', '.join(TASKS)}, got {_show(task)}")
    if name.lower() in BUILTINS:
        b = BUILTINS[name.lower()]
        if task is not None and task != b.task:
            fail("task", f"\"{task}\" does not match data set {b.name}, a {b.task} data set")
        return b.name, b.task
    if not name.lower().endswith(UPLOAD_EXTENSIONS):
        fail("dataset", f"unknown data set {_show(name)}; built-ins: {', '.join(BUILTINS)}; or a "
                        f"{', '.join(UPLOAD_EXTENSIONS)} file beside the challenge file")
    return str(_file(doc, "dataset", base, fail)), task or "classification"


def _test_dataset(doc: dict, base: Path, fail) -> str | None:
    from engine.data import UPLOAD_EXTENSIONS

    if "test_dataset" not in doc:
        return None
    name = _text(doc, "test_dataset", fail, required=True).strip()
    if not name.lower().endswith(UPLOAD_EXTENSIONS):
        fail("test_dataset", f"must be a {', '.join(UPLOAD_EXTENSIONS)} file beside the challenge file, got "
                             f"{_show(name)}")
    return str(_file(doc, "test_dataset", base, fail))


def _start(doc: dict, base: Path, fail) -> str | None:
    if "start" not in doc:
        return None
    spec = _text(doc, "start", fail, required=True).strip()
    if spec.lower().startswith("zoo:"):
        from engine.zoo import parse_zoo_spec

        try:
            parse_zoo_spec(spec)
        except TinyStudioError as e:
            fail("start", str(e))
        return spec
    return str(_file(doc, "start", base, fail))


def _target(doc: dict, fail) -> tuple[str, str]:
    from hwmodels.mcu import get_mcu
    from hwmodels.runtime import default_runtime, get_runtime

    mid = _text(doc, "mcu", fail, required=True)
    try:
        mcu = get_mcu(mid)
    except TinyStudioError as e:
        fail("mcu", str(e))
    rid = _text(doc, "runtime", fail)
    if rid is None:
        return mcu.id, default_runtime(mcu)
    try:
        rt = get_runtime(rid)
    except TinyStudioError as e:
        fail("runtime", str(e))
    if not rt.supports(mcu.core):
        fail("runtime", f"{rt.id} has no profile for {mcu.id}'s core {mcu.core}")
    return mcu.id, rt.id


def _deadline(doc: dict, fail) -> dt.datetime | None:
    if "deadline" not in doc:
        return None
    v = doc["deadline"]
    if isinstance(v, str):
        try:
            v = dt.datetime.fromisoformat(v.strip())
        except ValueError:
            fail("deadline", f"must be an ISO 8601 date and time such as 2027-01-31T23:59:00Z, got {_show(v)}")
    if not isinstance(v, dt.datetime):
        fail("deadline", f"must be a date and time with a time zone such as 2027-01-31T23:59:00Z, got {_show(v)}")
    if v.tzinfo is None:
        fail("deadline", f"give a time zone, e.g. {v.isoformat()}Z or {v.isoformat()}+01:00")
    return v
