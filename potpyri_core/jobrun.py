"""One job in a worker: OpenMP/BLAS threads limited, its CPU time measured and sent back.

A worker process (local pool or dask) may run several jobs side by side, each of which calls
OpenMP (astroscrappy) and BLAS (numpy) code that would otherwise start one thread per core:
``N`` workers x ``cores`` threads oversubscribe the machine. :class:`LimitedJob` runs a job
under :func:`threadpoolctl.threadpool_limits`, which must be entered in the thread that runs
the job (an OpenMP thread count belongs to the thread that sets it), and reports the CPU
seconds the job used, because neither ``RUSAGE_CHILDREN`` of the main process (pool workers
are fork-server grandchildren, never waited for by it) nor a dask scheduler counts them.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from threadpoolctl import threadpool_limits

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that set the thread count of libraries loaded after they are set."""

_lock = threading.Lock()
_running = 0
_started = 0


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_job(workers: int, cores: int | None = None) -> int:
    """OpenMP/BLAS threads for each of ``workers`` jobs running at once on ``cores`` cores."""
    return max(1, (cores or available_cores()) // max(1, workers))


def set_thread_environment(threads: int) -> None:
    """Set the thread variables of this process (for libraries it loads from now on)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


@dataclass(frozen=True)
class JobReport:
    """What a job returns through :class:`LimitedJob`: its value and its CPU accounting."""

    value: Any
    pid: int
    process_cpu: float
    """CPU seconds used by the worker process since it started, when the job ended."""
    job_cpu: float
    """CPU seconds used by the job: the whole process's if no other job ran beside it,
    else its own thread's (exact with one thread per job, as OpenMP and BLAS then run in
    the calling thread)."""


@dataclass(frozen=True)
class LimitedJob:
    """A picklable wrapper that runs ``func(job)`` with at most ``threads`` OpenMP/BLAS threads
    and returns a :class:`JobReport`; exceptions of ``func`` propagate."""

    func: Any
    threads: int

    def __call__(self, job: Any) -> JobReport:
        global _running, _started
        with _lock:
            _running += 1
            _started += 1
            alone, generation = _running == 1, _started
        process0, thread0 = time.process_time(), time.thread_time()
        try:
            with threadpool_limits(limits=self.threads):
                value = self.func(job)
        finally:
            with _lock:
                _running -= 1
                alone = alone and _started == generation
        process1 = time.process_time()
        job_cpu = process1 - process0 if alone else time.thread_time() - thread0
        return JobReport(value, os.getpid(), process1, job_cpu)
