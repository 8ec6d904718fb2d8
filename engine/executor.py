"""Where heavy work runs: a dask.distributed client, on a local cluster of worker processes or on an existing
Dask cluster. Search trials (engine.search) and the studio's background jobs (training, compression, export
verification) are submitted here, never run in the web server's threads.

    client = get_client(workers=2)                           # local: 2 worker processes, 1 thread each
    client = get_client(scheduler="tcp://lab-server:8786")   # an existing cluster
    fut = client.submit(fn, *args, pure=False); fut.result()
    shutdown()                                                # close every client and local cluster made here

Local clusters (distributed's SubprocessCluster: scheduler and workers are fresh interpreters, see
_local_client) are cached per process and per worker count: the studio and repeated CLI calls reuse them.
A scheduler address that does not answer raises TinyStudioError with one line, and nothing else happens.
"""
from __future__ import annotations

import atexit
import threading

from engine.errors import TinyStudioError

CONNECT_TIMEOUT_S = 10  # a lab scheduler on the same network answers in well under a second
WORKERS_START_S = 180  # fresh interpreters importing torch: seconds each, minutes on a loaded 2-core machine
_LOCK = threading.Lock()
_LOCAL: dict[int, tuple[object, object]] = {}  # workers -> (LocalCluster, Client)
_REMOTE: dict[str, object] = {}  # address -> Client


def _check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
        raise TinyStudioError(f"workers must be a whole number from 1 to 256, got {workers!r}")
    return workers


def _local_client(workers: int):
    from distributed import Client
    from distributed.deploy.subprocess import SubprocessCluster

    entry = _LOCAL.get(workers)
    if entry is not None and entry[1].status == "running":
        return entry[1]
    _workers_import_this_code()
    # The scheduler and each worker (a nanny and its worker process, one thread: a trial trains with one torch
    # thread, and a killed process loses only the trial it was running; the nanny starts a new one) run as
    # fresh interpreters (`python -m dask spec`), not as multiprocessing children of this process: a child
    # made by "spawn" re-imports the parent's __main__ by its path, and in the studio's server that is the
    # running Streamlit page script, so every worker would run the studio's pages. No patch of
    # multiprocessing is needed. The HTTP server on a free port (":0"): several clusters on one machine
    # never fight over 8787.
    cluster = SubprocessCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0", silence_logs=50)
    client = Client(cluster, set_as_default=False)
    try:
        client.wait_for_workers(workers, timeout=WORKERS_START_S)
    except TimeoutError:
        client.close()
        cluster.close()
        raise TinyStudioError(f"{workers} local worker process(es) did not start within {WORKERS_START_S} s") from None
    _LOCAL[workers] = (cluster, client)
    return client


def _workers_import_this_code() -> None:
    """Worker interpreters inherit this process's environment, not its sys.path: put the folder this package
    was imported from first on PYTHONPATH, so they run the same code (a checkout run with `python -m`, a test
    session) rather than whatever copy the environment installed."""
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    have = os.environ.get("PYTHONPATH", "")
    if root not in have.split(os.pathsep):
        os.environ["PYTHONPATH"] = root + (os.pathsep + have if have else "")


def _remote_client(address: str):
    from distributed import Client

    client = _REMOTE.get(address)
    if client is not None and client.status == "running":
        return client
    if not address.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://", "ucx://")) and ":" not in address:
        raise TinyStudioError(f"scheduler {address!r}: give an address like tcp://HOST:8786")
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise TinyStudioError(f"scheduler {address}: no answer within {CONNECT_TIMEOUT_S} s") from None
    except ValueError as e:  # a malformed address
        raise TinyStudioError(f"scheduler {address}: {e}") from None
    _REMOTE[address] = client
    return client


def get_client(workers: int = 1, scheduler: str | None = None):
    """A distributed.Client: a cached LocalCluster of `workers` processes (1 thread each) when `scheduler` is
    None, else a client of the cluster at `scheduler` (TinyStudioError when it does not answer)."""
    with _LOCK:
        if scheduler:
            return _remote_client(str(scheduler).strip())
        return _local_client(_check_workers(workers))


def shutdown() -> None:
    """Close every client and local cluster this process made."""
    with _LOCK:
        for client in list(_REMOTE.values()):
            try:
                client.close()
            except Exception:  # closing a client of a dead scheduler may fail; nothing to keep
                pass
        _REMOTE.clear()
        for cluster, client in list(_LOCAL.values()):
            for thing in (client, cluster):
                try:
                    thing.close()
                except Exception:
                    pass
        _LOCAL.clear()


atexit.register(shutdown)
