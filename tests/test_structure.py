"""The code's shape, checked (issue 17, "one place per fact"): pages never import the CLI, no module reaches into
another module's private names, and no module grows past 400 lines.

These read the source files only (no imports), so they run in a second and fail with the file and line."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
# Where a module's size and its private names are checked (what /work/briefs/privnames.py reads).
PRIVATE_ROOTS = ("engine", "app", "pages", "hwmodels", "store", "benchmarks", "scripts")
PACKAGES = ("engine", "app", "pages", "hwmodels", "store")
SIZE_ROOTS = ("engine", "app", "pages", "hwmodels", "store")  # engine/codegen/templates included
SIZE_SUFFIXES = (".py", ".c", ".h")

# Files other branches of issue 17 are changing (int8 parameter records, the C kernel library split): removed at
# merge, when those branches are in. Every entry must still fail a check below, so a stale one is noticed.
KNOWN_PENDING: set[str] = set()  # files allowed to break a rule while a split is under way; keep it empty


def _files(roots, suffixes) -> list[Path]:
    out = []
    for root in roots:
        for p in sorted((ROOT / root).rglob("*")):
            if p.suffix in suffixes and p.is_file() and "node_modules" not in p.parts:
                out.append(p)
    return out


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(path: Path) -> list[str]:
    """Cross-module uses of private names in one file: `from pkg.mod import _name`, and `alias._name` where
    `alias` is an imported project module or name (the same rules as /work/briefs/privnames.py)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    hits, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            for a in node.names:
                if _private(a.name):
                    hits.append(f"{_rel(path)}:{node.lineno} from {node.module} import {a.name}")
                else:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES:
                    aliases[a.asname or a.name.split(".")[0]] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if isinstance(node.value, ast.Name) and node.value.id in aliases:
                hits.append(f"{_rel(path)}:{node.lineno} {node.value.id}.{node.attr}")
    return hits


def _private_defs(tree: ast.AST) -> set[str]:
    return {n.name for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(n.name)}


def private_member_uses(paths: list[Path]) -> list[str]:
    """Calls `obj._name(...)` where `_name` is a private function or method defined in another project module
    and not in this one (e.g. `ctx.op._geometry(ctx)`: an exporter calling an op class's private helper).
    Only calls: a private attribute of a third-party object (torch's `op._schema`) may share a name with ours."""
    trees = {p: ast.parse(p.read_text(), filename=str(p)) for p in paths}
    defs = {p: _private_defs(t) for p, t in trees.items()}
    hits = []
    for p, tree in trees.items():
        elsewhere = set().union(*(d for q, d in defs.items() if q != p)) - defs[p]
        for call in ast.walk(tree):
            node = call.func if isinstance(call, ast.Call) else None
            if (isinstance(node, ast.Attribute) and node.attr in elsewhere
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                hits.append(f"{_rel(p)}:{node.lineno} .{node.attr}(")
    return hits


def _line_count(path: Path) -> int:
    return len(path.read_text(errors="replace").splitlines())


def test_pages_do_not_import_the_cli():
    """What a page and the CLI share lives in app.workflows (or the engine), never in app.cli/app.commands."""
    bad = []
    for p in _files(["pages"], (".py",)):
        for node in ast.walk(ast.parse(p.read_text(), filename=str(p))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + ([f"app.{a.name}" for a in node.names] if node.module == "app" else [])
            bad += [f"{_rel(p)}:{node.lineno} imports {n}" for n in names
                    if n in ("app.cli", "app.commands") or n.startswith(("app.cli.", "app.commands."))]
    assert not bad, "\n".join(bad)


def test_no_module_uses_another_modules_private_names():
    hits = [h for p in _files(PRIVATE_ROOTS, (".py",)) if _rel(p) not in KNOWN_PENDING for h in private_uses(p)]
    assert not hits, "make these names public or move the code that needs them:\n" + "\n".join(hits)


def test_no_module_calls_another_modules_private_methods():
    hits = [h for h in private_member_uses(_files(PACKAGES, (".py",))) if h.split(":")[0] not in KNOWN_PENDING]
    assert not hits, "make these methods public:\n" + "\n".join(hits)


def test_no_module_is_over_400_lines():
    long = {_rel(p): n for p in _files(SIZE_ROOTS, SIZE_SUFFIXES) if (n := _line_count(p)) > MAX_LINES}
    over = {f: n for f, n in long.items() if f not in KNOWN_PENDING}
    assert not over, "split by what they hold: " + ", ".join(f"{f} ({n} lines)" for f, n in sorted(over.items()))


def test_known_pending_files_still_need_their_exception():
    """An entry of KNOWN_PENDING that passes every check (or is gone) is stale: remove it so the checks cover
    the file."""
    stale = [f for f in sorted(KNOWN_PENDING)
             if not (ROOT / f).is_file() or (_line_count(ROOT / f) <= MAX_LINES
                                             and not (f.endswith(".py") and private_uses(ROOT / f)))]
    assert not stale, f"remove from KNOWN_PENDING: {stale}"


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The private-name check sees both forms, and ignores dunders and a module's own names."""
    p = tmp_path / "m.py"
    p.write_text("from engine.ir import _INT4, __version__\nimport engine.ir as ir\nfrom app import widgets\n"
                 "x = ir._Int4Info\ny = widgets._private\n_own = 1\nz = _own\n")
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        hits = private_uses(p)
    finally:
        ROOT = root
    assert hits == ["m.py:1 from engine.ir import _INT4", "m.py:4 ir._Int4Info", "m.py:5 widgets._private"]


def test_the_member_check_catches_a_private_method_of_another_module(tmp_path):
    (tmp_path / "a.py").write_text("class Op:\n    def _geometry(self):\n        return self._geometry\n")
    (tmp_path / "b.py").write_text("def plan(ctx):\n    return ctx.op._geometry()\n")
    (tmp_path / "c.py").write_text("def _geometry():\n    pass\n\n\nx = obj._geometry()\n")
    (tmp_path / "d.py").write_text("x = torch_op._geometry\n")
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        hits = private_member_uses(sorted(tmp_path.glob("*.py")))
    finally:
        ROOT = root
    assert hits == ["b.py:2 ._geometry("]
