"""`tinystudio studio`: start the web studio on a DuckDB file."""
from __future__ import annotations

import os
import sys

from engine import __version__


def studio_command(port: int, db_path: str, host: str = "127.0.0.1") -> tuple[list[str], dict]:
    """The streamlit command line and environment that start the studio."""
    from engine.importers import MAX_UPLOAD_BYTES

    main = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "main.py")  # app/main.py
    # A fixed address also stops Streamlit from looking up the machine's external IP on the internet.
    cmd = [sys.executable, "-m", "streamlit", "run", main, "--server.port", str(port), "--server.address", host,
           "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--server.maxUploadSize", str(MAX_UPLOAD_BYTES // 10**6),
           "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal"]
    env = dict(os.environ, TINYSTUDIO_DB=db_path)
    return cmd, env


def cmd_studio(args) -> int:
    from store import check_integrity, open_store

    db_path = os.path.abspath(args.db or default_db_path())
    store = open_store(db_path)  # create and migrate now: a bad --db path fails here, in one line
    try:  # versions added or changed since the last start are decoded and hashed (at most 100 per start)
        problems = check_integrity(store, deep="changed", limit=100)
        from store.users import is_lab

        lab = is_lab(store)
    finally:
        store.close()
    for line in problems[:20]:
        print(f"warning: {db_path}: {line}", file=sys.stderr)
    warning = network_warning(args.host, lab)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    cmd, env = studio_command(args.port, db_path, args.host)
    scheduler = (getattr(args, "scheduler", None) or "").strip()
    if scheduler:  # checked now, in one line, rather than at the first job; the studio's workers go there
        from app.job_executor import SCHEDULER_ENV
        from engine.executor import get_client, shutdown

        get_client(scheduler=scheduler)
        shutdown()
        env[SCHEDULER_ENV] = scheduler
    print(f"TinyStudio {__version__}: http://{args.host}:{args.port}  (database {db_path})", flush=True)
    os.execvpe(cmd[0], cmd, env)
    return 0


def network_warning(host: str, lab: bool) -> str | None:
    """What to tell someone serving a network from a store without accounts (None when local or a lab)."""
    if lab or host in ("127.0.0.1", "localhost", "::1"):
        return None
    return (f"serving {host} without accounts: everyone who reaches it sees and changes every session; add "
            "accounts with `tinystudio users add` to make it a lab server with logins")


def default_db_path() -> str:
    from store import default_db_path as store_default

    return store_default()
