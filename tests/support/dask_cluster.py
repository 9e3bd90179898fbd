"""A dask.distributed cluster of separate processes on 127.0.0.1, for tests.

``dask scheduler`` and ``dask worker`` are started as the user would start them (each its own
process, the scheduler on a port the system picks and announces in its scheduler file), and
every process is ended at teardown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.support.required import REPO

START_SECONDS = 120.0
"""How long the scheduler and its workers may take to come up (a loaded machine)."""


def _wait_for_address(path: Path, scheduler: subprocess.Popen, deadline: float) -> str:
    while time.monotonic() < deadline:
        if scheduler.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with code {scheduler.returncode}")
        if path.exists():
            try:
                return json.loads(path.read_text())["address"]
            except (json.JSONDecodeError, KeyError):
                pass  # being written
        time.sleep(0.2)
    raise TimeoutError("dask scheduler did not start")


@contextmanager
def local_cluster(folder: Path, n_workers: int = 2, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start a scheduler and ``n_workers`` single-thread workers; yield the scheduler's address.

    ``env`` is added to every process's environment (e.g. dask configuration variables).
    """
    from distributed import Client

    environ = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    scheduler_file = folder / "scheduler.json"
    common = ["--no-dashboard", "--host", "127.0.0.1"]
    commands = {"scheduler": ["scheduler", "--port", "0", "--scheduler-file", str(scheduler_file), *common]}
    processes: list[subprocess.Popen] = []
    logs = ExitStack()

    def start(name: str, args: list[str]) -> subprocess.Popen:
        log = logs.enter_context(open(folder / f"{name}.log", "w"))  # noqa: SIM115  (the stack closes it)
        processes.append(subprocess.Popen([sys.executable, "-m", "dask", *args], env=environ, cwd=REPO,
                                          stdout=subprocess.DEVNULL, stderr=log))
        return processes[-1]

    try:
        address = _wait_for_address(scheduler_file, start("scheduler", commands["scheduler"]),
                                    time.monotonic() + START_SECONDS)
        for i in range(n_workers):
            start(f"worker{i}", ["worker", address, "--nthreads", "1", "--name", f"w{i}", *common])
        with Client(address, set_as_default=False, timeout=START_SECONDS) as client:
            client.wait_for_workers(n_workers, timeout=START_SECONDS)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        logs.close()
