"""Per-frame jobs on an existing dask.distributed cluster (``--scheduler tcp://HOST:PORT``).

The cluster is started by the user (``dask scheduler`` and ``dask worker``, or dask-jobqueue
on Slurm/PBS); its workers need the same potpyri packages and plugins installed and the
night's folder at the same path (a shared file system). Jobs go to it as pickles, exactly
as to the local pool, and each worker rebuilds the plugin set from its description. A
worker that dies is replaced by the scheduler, which sends its job to another worker; a job
that kills ``distributed.scheduler.allowed-failures`` workers fails with ``KilledWorker``.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

CONNECT_SECONDS = 30.0
"""How long to wait for the scheduler to answer."""


class SchedulerUnreachableError(OSError):
    """The dask scheduler cannot be reached, or dask.distributed is not installed."""


def connect(address: str, timeout: float | None = None) -> Any:
    """A dask.distributed client of the scheduler at ``address`` (waiting ``timeout`` seconds,
    default :data:`CONNECT_SECONDS`).

    Raises
    ------
    SchedulerUnreachableError
        When dask.distributed is missing or the scheduler does not answer.
    """
    try:
        from distributed import Client
    except ImportError:
        raise SchedulerUnreachableError("--scheduler needs dask.distributed: pip install 'potpyri-core[dask]'")
    try:
        return Client(address, timeout=timeout or CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SchedulerUnreachableError(f"cannot reach the dask scheduler at {address}: {exc}") from None


def executor(client: Any) -> Executor:
    """A :class:`concurrent.futures.Executor` that submits to ``client``'s cluster (every
    submission is a new task, even with the same arguments)."""
    return client.get_executor(pure=False)


def cluster_threads(client: Any) -> int:
    """Worker threads of the cluster (the jobs it runs at once)."""
    return sum(client.nthreads().values())
