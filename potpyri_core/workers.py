"""Worker processes for per-frame work.

Workers are started by a fork server, not forked from the main process: a child forked from
a process that has already run OpenMP code (astroscrappy, in the main process when a stage
has a single frame) hangs in its first OpenMP region, because GNU OpenMP is not fork-safe.
The fork server is itself forked early from a clean state and preloads the core's modules,
so starting workers stays cheap; everything a job needs travels by pickle
(:class:`potpyri_core.corestages.JobContext` carries the plugin set by description).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

PRELOAD = ["potpyri_core.corestages", "potpyri_core.defaults"]
"""Modules imported once by the fork server, before it forks any worker."""


def process_pool(max_workers: int) -> ProcessPoolExecutor:
    """A pool of ``max_workers`` processes started by the fork server."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=context)
