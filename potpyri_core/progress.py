"""Progress lines on the terminal: one per stage, with count, rate and ETA."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress(total: int, what: str) -> tqdm:
    """A progress bar of ``total`` items named ``what`` on stderr.

    Silent when stderr is not a terminal (log files, pipes, tests); the log's own lines are
    not touched. Use as a context manager and call ``update()`` per item.
    """
    return tqdm(total=total, desc=f"{what:<12}", unit="item", leave=True, disable=not sys.stderr.isatty(),
                file=sys.stderr, dynamic_ncols=True)
