"""A session as one file (.tinystudio, a zip) to move between machines; importing makes a new session.

    export_session_file(store, session_id, "kws.tinystudio")      # or export_session_bytes(store, session_id)
    s = import_session_file(store, "kws.tinystudio")  # or import_session_bytes(store, data); validated completely
                                                       # before anything is written

Members, all with fixed name patterns (nothing is ever extracted to disk):
    session.json            format, session name/model, versions (parent index, action, params, graph_hash,
                            constants index, created), current index, profiles
    graphs/<i>.json         engine.serialize structure of version i (with blob_keys)
    constants/<j>.npz       engine.serialize constants blob j, shared by versions with identical constants
Every graph must decode (no pickles: numpy loads with allow_pickle=False) to its recorded content hash.
"""
from __future__ import annotations

import io
import json
import os
import re
import tempfile
import zipfile
import zlib

from engine import __version__
from engine.errors import TinyStudioError
from engine.serialize import content_hash, loads, npz_declared_bytes, read_bounded
from store.access import actor
from store.clock import iso, parse_iso
from store.db import Store
from store.errors import SessionFileError, StoreError
from store.graphs import EncodedGraph, encode_graph
from store.records import SessionInfo, dump_json, load_json
from store.rows import check_action, check_id, check_name, insert_session, insert_version, session_row

FORMAT = "tinystudio.session"
FORMAT_VERSION = 1
EXTENSION = ".tinystudio"

# What an import may cost. Every member is read through a counter that stops at its limit, whatever the
# zip headers declare, and nothing is read before the declared sizes passed the same limits.
MAX_FILE_BYTES = 512 << 20  # the zip on disk
MAX_TOTAL_BYTES = 512 << 20  # all members uncompressed
MAX_JSON_BYTES = 32 << 20  # any one JSON member
MAX_JSON_ITEMS = 2_000_000  # values in one JSON member (bounds the Python objects json.loads builds)
MAX_VERSION_CONSTANTS_BYTES = 128 << 20  # one version's constants (its .npz member, and the arrays inside)
MAX_SESSION_CONSTANTS_BYTES = 256 << 20  # all constants one imported session stores
MAX_VERSIONS = 10_000

_MEMBER = re.compile(r"session\.json|graphs/(0|[1-9][0-9]{0,5})\.json|constants/(0|[1-9][0-9]{0,5})\.npz")
_HASH = re.compile(r"[0-9a-f]{64}")


def _write(store: Store, session_id: int, f, user=None) -> None:
    user = actor(store, user)
    with store.transaction() as con:  # one consistent snapshot
        s = session_row(con, session_id, user)
        versions = con.execute("SELECT id, parent_id, graph_doc, blob_hash, graph_hash, action, params, created "
                               "FROM versions WHERE session_id = ? ORDER BY id", [session_id]).fetchall()
        blobs = {h: (load_json(k), d) for h, k, d in con.execute(
            "SELECT hash, keys, data FROM blobs WHERE hash IN (SELECT blob_hash FROM versions WHERE session_id = ?)",
            [session_id]).fetchall()}
        profiles = con.execute("SELECT version_id, mcu, runtime, doc, tool_version, created FROM profiles WHERE "
                               "version_id IN (SELECT id FROM versions WHERE session_id = ?) "
                               "ORDER BY version_id, mcu, runtime", [session_id]).fetchall()
    index = {vid: i for i, (vid, *_) in enumerate(versions)}
    const_index = {h: j for j, h in enumerate(dict.fromkeys(v[3] for v in versions))}
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, "tool_version": __version__,
        "session": {"name": s.name, "model": s.model, "created": s.created},
        "current": index.get(s.current_version_id),
        "versions": [{"parent": index.get(parent), "action": action, "params": load_json(params),
                      "graph_hash": ghash, "constants": const_index[bhash], "created": iso(created)}
                     for vid, parent, _doc, bhash, ghash, action, params, created in versions],
        "profiles": [{"version": index[vid], "mcu": mcu, "runtime": rt, "doc": load_json(doc),
                      "tool_version": tv, "created": iso(created)} for vid, mcu, rt, doc, tv, created in profiles],
    }
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("session.json", json.dumps(manifest, indent=1))
        for i, (_vid, _parent, doc, bhash, *_rest) in enumerate(versions):
            z.writestr(f"graphs/{i}.json", json.dumps({**load_json(doc), "blob_keys": blobs[bhash][0]}))
        for h, j in const_index.items():  # float constants barely compress: store them as they are
            z.writestr(f"constants/{j}.npz", blobs[h][1], compress_type=zipfile.ZIP_STORED)


def export_session_bytes(store: Store, session_id: int, *, user=None) -> bytes:
    """The session file's bytes (for a download button); `user` must be allowed to see the session."""
    session_id = check_id(session_id, "session id")
    buf = io.BytesIO()
    _write(store, session_id, buf, user)
    return buf.getvalue()


def export_session_file(store: Store, session_id: int, path: str, *, user=None) -> str:
    """Write the session with all its versions and profiles to `path` (replaced atomically); returns the path."""
    session_id = check_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        session_row(con, session_id, user)  # refused before a file is made
    path = os.path.abspath(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tinystudio-", suffix=".part", dir=os.path.dirname(path))
    except OSError as e:
        raise StoreError(f"{path}: cannot write the session file: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            _write(store, session_id, f, user)
        os.replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError):
            raise StoreError(f"{path}: cannot write the session file: {e.strerror or e}") from None
        raise
    return path


# ---- import -------------------------------------------------------------------------------------------

class _OverLimit(ValueError):
    """The file is well formed but would cost more than an import may (memory, database space)."""


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise ValueError(what)


def _fits(cond: bool, what: str) -> None:
    if not cond:
        raise _OverLimit(what)


def _int(v, lo: int, hi: int, what: str) -> int:
    _need(isinstance(v, int) and not isinstance(v, bool) and lo <= v < hi, f"{what} must be an integer in [{lo}, {hi})")
    return v


def _check_manifest(m) -> None:
    """Shape and ranges of session.json; raises ValueError naming the first bad field."""
    _need(isinstance(m, dict), "session.json is not an object")
    _need(m.get("format") == FORMAT, f"format is {m.get('format')!r}, not {FORMAT!r}")
    _int(m.get("version"), 1, 1 << 31, "version")
    _need(m["version"] <= FORMAT_VERSION, f"session file format version {m['version']} is newer than this "
          f"TinyStudio reads ({FORMAT_VERSION}); upgrade TinyStudio")
    s = m.get("session")
    _need(isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("model"), str),
          "session needs a name and a model")
    vs = m.get("versions")
    _need(isinstance(vs, list) and len(vs) <= MAX_VERSIONS, f"versions must be a list of at most {MAX_VERSIONS}")
    for i, v in enumerate(vs):
        _need(isinstance(v, dict), f"versions[{i}] is not an object")
        if v.get("parent") is not None:
            _int(v["parent"], 0, i, f"versions[{i}].parent")  # an earlier version: the tree has no cycles
        _need(isinstance(v.get("action"), str), f"versions[{i}].action is not text")
        _need(isinstance(v.get("params"), dict), f"versions[{i}].params is not an object")
        _need(isinstance(v.get("graph_hash"), str) and _HASH.fullmatch(v["graph_hash"]) is not None,
              f"versions[{i}].graph_hash is not a sha256")
        _int(v.get("constants"), 0, len(vs), f"versions[{i}].constants")
        parse_iso(v.get("created"))
    if vs:
        _int(m.get("current"), 0, len(vs), "current")
    else:
        _need(m.get("current") is None, "current must be null without versions")
    ps = m.get("profiles", [])
    _need(isinstance(ps, list), "profiles is not a list")
    for i, p in enumerate(ps):
        _need(isinstance(p, dict), f"profiles[{i}] is not an object")
        _int(p.get("version"), 0, len(vs), f"profiles[{i}].version")
        _need(all(isinstance(p.get(k), str) for k in ("mcu", "runtime", "tool_version")),
              f"profiles[{i}] needs mcu, runtime and tool_version")
        d = p.get("doc")
        _need(isinstance(d, dict) and isinstance(d.get("totals"), dict) and isinstance(d.get("layers"), list),
              f"profiles[{i}].doc needs totals and layers")
        parse_iso(p.get("created"))


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, what: str) -> bytes:
    """The member's bytes through serialize.read_bounded: refused by its declared size, then decompressed
    through a counter that stops at `limit`."""
    try:
        return read_bounded(z, info, limit)
    except ValueError as e:
        raise _OverLimit(f"{e} ({what})") from None


def _read_json(z: zipfile.ZipFile, info: zipfile.ZipInfo):
    raw = _read_member(z, info, MAX_JSON_BYTES, "JSON member")
    # Every value json.loads makes costs ~50-100 bytes of Python objects: bound their number before parsing.
    items = raw.count(b",") + raw.count(b"[") + raw.count(b"{")
    _fits(items <= MAX_JSON_ITEMS, f"{info.filename} holds about {items:,} values, over the limit of "
          f"{MAX_JSON_ITEMS:,}")
    return json.loads(raw.decode("utf-8"))


def _check_npz(blob: bytes, name: str) -> None:
    """Bound what numpy will allocate (from the arrays' headers) by one version's limit."""
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        total = sum(i.file_size for i in z.infolist())
        _fits(total <= MAX_VERSION_CONSTANTS_BYTES, f"{name} unpacks to {total:,} bytes, over the limit of "
              f"{MAX_VERSION_CONSTANTS_BYTES:,} for one version's constants")
        npz_declared_bytes(z, name)


def _read(source: str | bytes, label: str) -> tuple[dict, list[EncodedGraph]]:
    """Everything in the file (a path or its bytes), validated and decoded; raises SessionFileError."""
    size = len(source) if isinstance(source, bytes) else os.path.getsize(source)
    _fits(size <= MAX_FILE_BYTES, f"session file is {size:,} bytes, over the limit of {MAX_FILE_BYTES:,}")
    with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as z:
        infos = {}
        for info in z.infolist():
            _need(_MEMBER.fullmatch(info.filename) is not None, f"unexpected member {info.filename[:80]!r}")
            _need(info.filename not in infos, f"member {info.filename!r} appears twice")
            infos[info.filename] = info
        _need("session.json" in infos, "session.json is missing")
        for n, i in infos.items():  # refuse an oversized member before reading anything
            limit = MAX_VERSION_CONSTANTS_BYTES if n.startswith("constants/") else MAX_JSON_BYTES
            _fits(i.file_size <= limit, f"{n} is {i.file_size:,} bytes, over the limit of {limit:,}")
        total = sum(i.file_size for i in infos.values())
        _fits(total <= MAX_TOTAL_BYTES, f"members add up to {total:,} bytes, over the limit of {MAX_TOTAL_BYTES:,}")
        consts = sum(i.file_size for n, i in infos.items() if n.startswith("constants/"))
        _fits(consts <= MAX_SESSION_CONSTANTS_BYTES, f"constants add up to {consts:,} bytes, over the limit of "
              f"{MAX_SESSION_CONSTANTS_BYTES:,} for one session")
        manifest = _read_json(z, infos["session.json"])
        _check_manifest(manifest)
        versions = manifest["versions"]
        wanted = {"session.json"} | {f"graphs/{i}.json" for i in range(len(versions))} | \
            {f"constants/{v['constants']}.npz" for v in versions}
        _need(wanted == set(infos), "members do not match session.json: "
              + ", ".join(sorted(wanted ^ set(infos))[:5]))
        last_use = {v["constants"]: i for i, v in enumerate(versions)}
        encoded: list[EncodedGraph] = []
        blobs: dict[int, bytes] = {}  # raw constants, kept only until the last version that uses them
        seen_blobs: set[str] = set()
        for i, v in enumerate(versions):
            doc = _read_json(z, infos[f"graphs/{i}.json"])
            j = v["constants"]
            name = f"constants/{j}.npz"
            if j not in blobs:
                blobs[j] = _read_member(z, infos[name], MAX_VERSION_CONSTANTS_BYTES, "one version's constants")
            try:
                _check_npz(blobs[j], name)
                graph = loads(doc, blobs[j])
            except _OverLimit:
                raise
            except (KeyError, TypeError, ValueError, AttributeError, IndexError, EOFError, OSError, MemoryError,
                    zipfile.BadZipFile, zlib.error, TinyStudioError) as e:
                raise ValueError(f"version {i}: graph does not decode ({type(e).__name__}: {e})") from None
            if last_use[j] == i:
                del blobs[j]
            _need(content_hash(graph) == v["graph_hash"], f"version {i}: graph content differs from its recorded hash")
            try:
                enc = encode_graph(graph)
            except TinyStudioError as e:
                raise ValueError(f"version {i}: {e}") from None
            if enc.blob_hash in seen_blobs:  # stored once; later versions only need its hash
                enc = EncodedGraph(enc.doc, enc.keys, b"", enc.blob_hash, enc.graph_hash, enc.metrics, enc.layers)
            seen_blobs.add(enc.blob_hash)
            encoded.append(enc)
    return manifest, encoded


def import_session_file(store: Store, path: str, name: str | None = None, *, user=None) -> SessionInfo:
    """Import a .tinystudio file as a new session (named as in the file unless `name` is given), owned by
    `user`. A corrupted or over-limit file raises SessionFileError with one line; nothing is written then."""
    return _import(store, path, path, name, user)


def import_session_bytes(store: Store, data: bytes, name: str | None = None,
                         filename: str = "upload.tinystudio", *, user=None) -> SessionInfo:
    """import_session_file for an upload's bytes; errors name `filename`."""
    if not isinstance(data, (bytes, bytearray)):
        raise SessionFileError(filename, f"expected the file's bytes, got {type(data).__name__}")
    return _import(store, bytes(data), filename, name, user)


def _import(store: Store, source: str | bytes, label: str, name: str | None, user=None) -> SessionInfo:
    try:
        manifest, encoded = _read(source, label)
        m = manifest["session"]
        session_name = check_name(name if name is not None else m["name"])
        model = check_name(m["model"], "model label") if m["model"].strip() else ""
        actions = [check_action(v["action"]) for v in manifest["versions"]]
        params = [dump_json(v["params"], "params") for v in manifest["versions"]]
        profiles = [(p["version"], check_name(p["mcu"], "MCU id"), check_name(p["runtime"], "runtime id"),
                     dump_json(p["doc"]["totals"]), dump_json(p["doc"]["layers"]), dump_json(p["doc"]),
                     p["tool_version"], parse_iso(p["created"])) for p in manifest.get("profiles", [])]
    except SessionFileError:
        raise
    except _OverLimit as e:
        raise SessionFileError(label, f"refused: {e}") from None
    except OSError as e:
        raise SessionFileError(label, f"cannot read the session file: {e.strerror or e}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError,
            ValueError, EOFError, NotImplementedError, RuntimeError, zlib.error, TinyStudioError) as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SessionFileError(label, f"corrupted or invalid session file: {text}") from None
    user = actor(store, user)
    with store.transaction() as con:
        sid = insert_session(con, session_name, model, owner=user)
        ids: list[int] = []
        for i, (v, enc) in enumerate(zip(manifest["versions"], encoded)):
            parent = None if v["parent"] is None else ids[v["parent"]]
            ids.append(insert_version(con, sid, parent, enc, actions[i], params[i], parse_iso(v["created"])))
        if ids:
            con.execute("UPDATE sessions SET current_version_id = ? WHERE id = ?", [ids[manifest["current"]], sid])
        for vi, *row in profiles:
            con.execute("INSERT INTO profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", [ids[vi], *row])
        return session_row(con, sid)
