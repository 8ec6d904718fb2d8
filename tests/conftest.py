"""Suite-wide fixtures."""
from __future__ import annotations

import sys

import pytest


@pytest.fixture(autouse=True)
def _keep_main_module():
    """Streamlit's AppTest runs a page script as a new `__main__` module and leaves it there. A later test in the
    same worker that starts processes with multiprocessing's "spawn" (a Dask LocalCluster) would make every child
    re-run that page script, which opens the default database and fails ("Nanny failed to start worker
    process"). Put the worker's own `__main__` back after each test."""
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main
