"""What a pipeline run made, for re-run tests."""

from __future__ import annotations

from typing import Any


def items_made(summary: Any) -> dict[str, list[str]]:
    """Items per stage that a run (re)made, not found up to date; every item must be ok."""
    made: dict[str, list[str]] = {}
    for r in summary.results:
        assert r.ok, (r.stage, r.item, r.message)
        if r.message != "up to date":
            made.setdefault(r.stage, []).append(r.item)
    return made
