"""Reading hardware description files (TOML) with one-line errors that name the file and the field.

    doc = read_toml(path)                       # dict, or HardwareDataError "path: not valid TOML (...)"
    clock = field(doc, "clock_mhz", "number", path, positive=True)
    mcus = load_descriptions(folders, "MCU", parse_mcu, cache)   # {id: MCU}, each file parsed once
    by_id(mcus, "stm32f746ng", "MCU")           # or "unknown MCU 'x'; valid ids: ..."

Every description is plain data read with the standard library's tomllib: nothing is executed.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Callable

from engine.errors import TinyStudioError


class HardwareDataError(TinyStudioError):
    """An MCU or runtime description file is missing, malformed or has a bad field."""

    def __init__(self, path: str | Path, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)


_MISSING = object()

_CHECKS = {
    "str": lambda v: isinstance(v, str) and v.strip() != "",
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "table": lambda v: isinstance(v, dict),
}
_NAMES = {"str": "a non-empty string", "bool": "true or false", "int": "an integer", "number": "a number",
          "table": "a table"}


def read_toml(path: str | Path) -> dict:
    p = Path(path)
    try:
        with open(p, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise HardwareDataError(p, "no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise HardwareDataError(p, f"not valid TOML ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise HardwareDataError(p, f"cannot read file ({e})") from None


def field(doc: dict, key: str, kind: str, path: str | Path, default: Any = _MISSING,
          choices: tuple | None = None, positive: bool = False, where: str = "") -> Any:
    """doc[key] checked against `kind`; a missing key takes `default` or raises naming file and field."""
    name = f"{where}.{key}" if where else key
    if key not in doc:
        if default is _MISSING:
            raise HardwareDataError(path, f"field '{name}' is missing")
        return default
    value = doc[key]
    if not _CHECKS[kind](value):
        raise HardwareDataError(path, f"field '{name}' must be {_NAMES[kind]}, got {value!r}")
    if choices is not None and value not in choices:
        raise HardwareDataError(path, f"field '{name}' must be one of {', '.join(choices)}; got {value!r}")
    if positive and not value > 0:
        raise HardwareDataError(path, f"field '{name}' must be positive, got {value!r}")
    return float(value) if kind == "number" else value


def toml_files(folder: str | Path, what: str) -> list[Path]:
    p = Path(folder)
    if not p.is_dir():
        raise HardwareDataError(p, f"{what} folder does not exist or is not a folder")
    return sorted(p.glob("*.toml"))


def load_descriptions(folders: list[Path], what: str, parse: Callable[[dict, Path], Any],
                      cache: dict[tuple[str, int, int], Any]) -> dict[str, Any]:
    """Every description file (*.toml) in `folders`, parsed by `parse(doc, path)` into a record with an `id`,
    by id in sorted order. A later folder overrides an earlier one's ids; an id used twice in one folder is an
    error naming both files. `cache` keeps each parsed file by path, modification time and size."""
    out: dict[str, Any] = {}
    for folder in folders:
        seen: dict[str, Path] = {}
        for p in toml_files(folder, what):
            st = p.stat()
            key = (str(p), st.st_mtime_ns, st.st_size)
            if key not in cache:
                cache[key] = parse(read_toml(p), p)
            item = cache[key]
            if item.id in seen:
                raise HardwareDataError(p, f"field 'id': '{item.id}' is already used by {seen[item.id]}")
            seen[item.id] = p
            out[item.id] = item
    return dict(sorted(out.items()))


def by_id(items: dict[str, Any], item_id: str, what: str) -> Any:
    """items[item_id], or a one-line error listing the valid ids."""
    if item_id not in items:
        raise TinyStudioError(f"unknown {what} '{item_id}'; valid ids: {', '.join(items)}")
    return items[item_id]
