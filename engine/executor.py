"""Where heavy work runs: a dask.distributed client, on a local cluster of worker processes or on an existing
Dask cluster. Search trials (engine.search) and the studio's background jobs (training, compression, export
verification) are submitted here, never run in the web server's threads.

    client = get_client(workers=2)                           # LocalCluster: 2 processes, 1 thread each
    client = get_client(scheduler="tcp://lab-server:8786")   # an existing cluster
    fut = client.submit(fn, *args, pure=False); fut.result()
    shutdown()                                                # close every client and local cluster made here

Local clusters are cached per process and per worker count: the studio and repeated CLI calls reuse them.
A scheduler address that does not answer raises TinyStudioError with one line, and nothing else happens.
"""
from __future__ import annotations

import atexit
import threading

from engine.errors import TinyStudioError

CONNECT_TIMEOUT_S = 10  # a lab scheduler on the same network answers in well under a second
_LOCK = threading.Lock()
_LOCAL: dict[int, tuple[object, object]] = {}  # workers -> (LocalCluster, Client)
_REMOTE: dict[str, object] = {}  # address -> Client


def _check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
        raise TinyStudioError(f"workers must be a whole number from 1 to 256, got {workers!r}")
    return workers


def _local_client(workers: int):
    from distributed import Client, LocalCluster

    entry = _LOCAL.get(workers)
    if entry is not None and entry[1].status == "running":
        return entry[1]
    # Processes, one thread each: a trial trains with one torch thread, and a killed process loses only the
    # trial it was running. The HTTP server on a free port (":0"): several clusters on one machine never fight
    # over 8787.
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=50)
    client = Client(cluster, set_as_default=False)
    _LOCAL[workers] = (cluster, client)
    return client


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
