"""Netron's web files plus our bootstrap, assembled into one folder the Streamlit server serves.

Netron (pip package `netron`, ~28 MB of JavaScript) is not copied into the repository: the first call links or copies
its files from the installed package into a cache folder keyed by Netron's version and a digest of what we add, so an
upgrade of either builds a fresh folder and a browser never mixes old and new files.

What we change so the view works offline, never blocks and never calls other hosts:
- Netron's index.js (which starts Netron's own browser host) is replaced by `bootstrap.js`, whose host skips the
  "please update" nag, the cookie-consent dialog and its ipinfo.io lookup, and Google Analytics, and takes the model
  from Streamlit instead of a URL or a file dialog;
- index.html gets a Content-Security-Policy that lets the page load and connect to its own origin only, and loses its
  links to github.com / lutzroeder.com.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import uuid
from pathlib import Path

from engine.errors import TinyStudioError

BOOTSTRAP_NAME = "tinystudio-netron.js"
BOOTSTRAP_SOURCE = Path(__file__).with_name("bootstrap.js")

# The browser may load and connect to the serving origin only (plus data:/blob: URLs Netron makes itself). This is
# the guarantee behind "no calls to outside hosts": even a code path we did not neutralize is refused by the browser.
CSP = ("default-src 'self'; script-src 'self'; worker-src 'self' blob:; connect-src 'self' data: blob:; "
       "img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; font-src 'self' data:; frame-src 'none'; "
       "object-src 'none'; base-uri 'self'; form-action 'none'")

# Files of the netron package that the page does not need: its Python server, and the entry we replace.
_SKIP = {"__init__.py", "__pycache__", "server.py", "onnx.py", "pytorch.py", "index.html", "index.js"}
# Outside URLs; the SVG namespace is an identifier, never fetched.
_URL = re.compile(r"""https?://[^\s"'<>()]+""")
_NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xhtml", "http://www.w3.org/1999/xlink")


class NetronMissingError(TinyStudioError):
    """The `netron` package (Netron's web files) is not installed."""


def netron_package_dir() -> Path:
    """The folder of the installed `netron` package, which holds Netron's index.html and modules."""
    spec = importlib.util.find_spec("netron")
    if spec is None or not spec.origin:
        raise NetronMissingError("Model view: the 'netron' package is not installed (pip install netron==9.3.3)")
    folder = Path(spec.origin).parent
    if not (folder / "index.html").is_file() or not (folder / "browser.js").is_file():
        raise NetronMissingError(f"Model view: {folder} holds no Netron web files (index.html, browser.js)")
    return folder


def netron_version(index_html: str) -> str:
    """Netron's version as its index.html states it (`<meta name="version" content="9.3.3">`)."""
    match = re.search(r'<meta name="version" content="([^"]+)"', index_html)
    return match.group(1) if match else "unknown"


def outside_urls(text: str) -> list[str]:
    """Every http(s) URL in `text` except XML namespace identifiers."""
    return [u for u in _URL.findall(text) if not u.startswith(_NAMESPACES)]


def render_index(netron_index: str) -> str:
    """Netron's index.html with our CSP, our bootstrap instead of index.js, and no links to other hosts.

    Raises NetronMissingError when the page does not have the shape we rewrite (a Netron release changed it), so
    a changed page is never served half-rewritten.
    """
    html, csp_count = re.subn(r'<meta http-equiv="Content-Security-Policy"[^>]*>',
                              f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
                              '<meta name="referrer" content="no-referrer">', netron_index)
    html, script_count = re.subn(r'<script[^>]*src="index\.js"[^>]*></script>',
                                 f'<script type="module" src="{BOOTSTRAP_NAME}"></script>', html)
    if csp_count != 1 or script_count != 1:
        raise NetronMissingError("Model view: Netron's index.html changed shape (CSP meta or index.js script "
                                 "not found once); pin netron==9.3.3 or update app/netron_view/assets.py")
    # Links to the author's pages (logo, copyright): an embedded viewer should not navigate away from the studio.
    html = re.sub(r'\s+href="https?://[^"]*"', "", html)
    left = outside_urls(html)
    if left:
        raise NetronMissingError(f"Model view: Netron's index.html still refers to {left[0]} after rewriting")
    return html


def _netron_files(netron_dir: Path) -> list[Path]:
    return sorted(p for p in netron_dir.iterdir() if p.name not in _SKIP and p.is_file())


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinystudio" / "netron"


def component_dir(cache_root: Path | None = None, netron_dir: Path | None = None) -> Path:
    """The folder to serve (built on first use): Netron's files, our index.html and our bootstrap.

    Its name is `<netron version>-<digest of index.html and bootstrap we serve and Netron's file list>`.
    The folder is filled under a temporary name and renamed into place, so concurrent servers never see it half
    built.
    """
    netron_dir = netron_dir or netron_package_dir()
    index = render_index((netron_dir / "index.html").read_text(encoding="utf-8"))
    bootstrap = BOOTSTRAP_SOURCE.read_bytes()
    files = _netron_files(netron_dir)
    digest = hashlib.sha256()
    for part in (index.encode(), bootstrap, *(f"{p.name}:{p.stat().st_size}".encode() for p in files)):
        digest.update(hashlib.sha256(part).digest())
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    target = root / f"{netron_version(index)}-{digest.hexdigest()[:12]}"
    if (target / "index.html").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".building-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        for src in files:
            try:  # a hard link costs no space when the cache shares the package's file system
                os.link(src, staging / src.name)
            except OSError:
                shutil.copy2(src, staging / src.name)
        (staging / BOOTSTRAP_NAME).write_bytes(bootstrap)
        (staging / "index.html").write_text(index, encoding="utf-8")
        try:
            staging.rename(target)
        except OSError:  # another process finished first; its folder is identical
            if not (target / "index.html").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def component_name(folder: Path) -> str:
    """A component name that changes with the folder, so a browser never uses cached files of another build."""
    return "netron_" + re.sub(r"[^A-Za-z0-9_]", "_", folder.name)
