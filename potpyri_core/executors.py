"""Where jobs run: in this process, in local worker processes, or on a dask cluster.

:class:`JobRunner` is the one place the pipeline hands per-frame jobs to: it limits each
job's OpenMP/BLAS threads (:mod:`potpyri_core.jobrun`), counts the CPU time of the workers,
and turns a worker's death into that job's error, so the other jobs go on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from potpyri_core import dask_executor
from potpyri_core.jobrun import JobReport, LimitedJob, available_cores, threads_per_job
from potpyri_core.workers import process_pool


@dataclass
class Outcome:
    """The value of one job, or the exception that ended it."""

    value: Any = None
    error: BaseException | None = None


class JobRunner:
    """Run jobs with ``workers`` local processes, or on the dask cluster at ``scheduler``.

    Parameters
    ----------
    workers : int
        Local processes (1: every job in this process).
    scheduler : str, optional
        Address of a dask.distributed scheduler; jobs then go to its workers.
    threads : int, optional
        OpenMP/BLAS threads per job (default: cores / workers locally, 1 on a cluster, whose
        workers each run as many jobs at once as they have threads).

    Use as a context manager (it connects to the scheduler and closes the connection).
    """

    def __init__(self, workers: int, scheduler: str | None = None, threads: int | None = None) -> None:
        self.workers = workers
        self.scheduler = scheduler
        self.threads = threads
        self.worker_cpu = 0.0
        """CPU seconds used by worker processes (local: their whole life; dask: the jobs)."""
        self._client: Any = None

    def __enter__(self) -> Self:
        if self.scheduler:
            self._client = dask_executor.connect(self.scheduler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def cores(self) -> int:
        """Cores the jobs run on: this machine's, or the cluster's worker threads."""
        if self._client is not None:
            return dask_executor.cluster_threads(self._client)
        return available_cores()

    def map(self, func: Callable[[Any], Any], jobs: list, done: Callable[[int], None]) -> list[Outcome]:
        """Run ``func(job)`` for every job; ``done(i)`` is called as job ``i`` ends. Outcomes
        come back in the order of the jobs; an exception (of the job, or a dead worker) is
        the outcome's error, never raised here."""
        if self._client is None and (self.workers <= 1 or len(jobs) <= 1):
            return [self._here(func, job, done, i) for i, job in enumerate(jobs)]
        if self._client is not None:
            # no more jobs in flight than the cluster has threads: a worker holds only the job
            # it runs, so a worker that dies takes no queued job with it
            limited = LimitedJob(func, self.threads or 1)
            return self._collect(dask_executor.executor(self._client), limited, jobs, done,
                                 capacity=lambda: max(1, self.cores), whole_life=False)
        n = min(self.workers, len(jobs))
        threads = self.threads or threads_per_job(n)
        with process_pool(n, threads) as pool:
            return self._collect(pool, LimitedJob(func, threads), jobs, done, capacity=lambda: len(jobs),
                                 whole_life=True)

    @staticmethod
    def _here(func: Callable[[Any], Any], job: Any, done: Callable[[int], None], i: int) -> Outcome:
        try:
            outcome = Outcome(func(job))
        except Exception as exc:
            outcome = Outcome(error=exc)
        done(i)
        return outcome

    def _collect(self, pool: concurrent.futures.Executor, limited: LimitedJob, jobs: list,
                 done: Callable[[int], None], capacity: Callable[[], int], whole_life: bool) -> list[Outcome]:
        outcomes = [Outcome() for _ in jobs]
        process_cpu: dict[int, float] = {}
        waiting = list(enumerate(jobs))[::-1]
        running: dict[concurrent.futures.Future, int] = {}
        while waiting or running:
            while waiting and len(running) < capacity():
                i, job = waiting.pop()
                running[pool.submit(limited, job)] = i
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                i = running.pop(future)
                try:
                    report: JobReport = future.result()
                except (Exception, asyncio.CancelledError) as exc:  # the job's, or its worker died
                    outcomes[i].error = exc
                else:
                    outcomes[i].value = report.value
                    process_cpu[report.pid] = max(process_cpu.get(report.pid, 0.0), report.process_cpu)
                    self.worker_cpu += 0.0 if whole_life else report.job_cpu
                done(i)
        # a local worker's CPU from its start to its last job (start-up and imports included)
        self.worker_cpu += sum(process_cpu.values()) if whole_life else 0.0
        return outcomes
