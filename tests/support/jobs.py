"""Job functions for executor tests, importable by every worker (local or dask)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def burn(seconds: float) -> float:
    """Use ``seconds`` of this thread's CPU time; return the CPU seconds used."""
    start = time.thread_time()
    total = 0
    while time.thread_time() - start < seconds:
        total += sum(range(1000))
    return time.thread_time() - start


def thread_limits(_: object) -> dict[str, object]:
    """The OpenMP/BLAS thread counts and thread variables seen inside a job."""
    import astroscrappy  # noqa: F401  (loads the OpenMP runtime that astroscrappy uses)
    from threadpoolctl import threadpool_info

    counts = {(info["user_api"], info["filepath"]): info["num_threads"] for info in threadpool_info()}
    return {"counts": counts, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def exit_on(_ctx: object, path: Path, die: bool) -> str:
    """A frame job that kills its worker process when ``die`` (as an out-of-memory kill would)."""
    if die:
        os._exit(9)
    return f"{path.name} done"
