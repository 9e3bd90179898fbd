"""One reduction per data directory at a time, and no stale temporary files.

A run holds ``red/.lock`` (its PID and start time) for its whole duration; a second run of
the same directory refuses with a line naming the running PID. A lock whose process is gone
(a killed run) is taken over. Holding the lock, a run removes the temporary files
(``.*.tmp``) a killed run left under ``red/``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Self

from potpyri_core.workers import _alive


class DirectoryBusyError(RuntimeError):
    """Another reduction is running on the same data directory."""


class RunLock:
    """Exclusive lock on ``red/`` of one night (a context manager).

    Parameters
    ----------
    red : Path
        The products folder ``DATA_PATH/red`` (created if needed).
    """

    def __init__(self, red: Path) -> None:
        self.red = Path(red)
        self.path = self.red / ".lock"

    def _owner(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        """Take the lock, or raise :class:`DirectoryBusyError` naming the running PID."""
        self.red.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                pid = int(owner.get("pid", -1))
                if owner.get("host") == socket.gethostname() and pid > 0 and not _alive(pid):
                    self.path.unlink(missing_ok=True)  # left by a killed run: take it over
                    continue
                raise DirectoryBusyError(
                    f"{self.red.parent}: another reduction (PID {owner.get('pid', '?')} on {owner.get('host', '?')},"
                    f" started {owner.get('started', '?')}) is running on this directory; wait for it to end"
                    f" (or remove {self.path} if that process is gone)") from None
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(me, handle)
            return
        raise DirectoryBusyError(f"{self.path}: could not take the lock")

    def release(self) -> None:
        """Give the lock back (only if this process holds it)."""
        if self._owner().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_stale_temporaries(red: Path) -> list[Path]:
    """Delete the ``.*.tmp`` partial files under ``red`` (call while holding the lock)."""
    removed = []
    for path in Path(red).rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
