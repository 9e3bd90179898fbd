"""Worker processes for per-frame work.

Workers are started by a fork server, not forked from the main process: a child forked from
a process that has already run OpenMP code (astroscrappy, in the main process when a stage
has a single frame) hangs in its first OpenMP region, because GNU OpenMP is not fork-safe.
The fork server is itself forked early from a clean state and preloads the core's modules,
so starting workers stays cheap; everything a job needs travels by pickle
(:class:`potpyri_core.corestages.JobContext` carries the plugin set by description).

Workers watch the process that started them and exit at once when it is gone (killed), so
no orphan goes on writing products after its run ended. Their OpenMP/BLAS thread variables
are set to the pool's threads per job (for libraries loaded later; those the fork server
preloaded are limited in each job by :class:`potpyri_core.jobrun.LimitedJob`).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from potpyri_core.jobrun import set_thread_environment

PRELOAD = ["potpyri_core.corestages", "potpyri_core.defaults", "potpyri_core.jobrun"]
"""Modules imported once by the fork server, before it forks any worker."""

WATCH_SECONDS = 0.5
"""How often a worker checks that the main process is alive."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(main_pid: int) -> None:
    while _alive(main_pid):
        time.sleep(WATCH_SECONDS)
    os._exit(3)  # the run is gone: stop now, write nothing more


def _start_worker(main_pid: int, threads: int | None) -> None:
    if threads is not None:
        set_thread_environment(threads)
    threading.Thread(target=_watch, args=(main_pid,), daemon=True, name="potpyri-watch-main").start()


def process_pool(max_workers: int, threads: int | None = None) -> ProcessPoolExecutor:
    """A pool of ``max_workers`` processes started by the fork server; each exits when the
    calling process dies, and has its thread variables set to ``threads`` (if given)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=context, initializer=_start_worker,
                               initargs=(os.getpid(), threads))
