"""Progress lines: one per stage on a terminal, silent otherwise; the closing summary."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from potpyri_core.pipeline import RunSummary, StageResult
from potpyri_core.progress import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_silent_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    with progress(3, "frames") as bar:
        for _ in range(3):
            bar.update()
    assert bar.disable and stream.getvalue() == ""


def test_progress_is_one_line_with_count_and_eta_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    with progress(3, "frames") as bar:
        for _ in range(3):
            bar.update()
    text = stream.getvalue()
    assert "\n" not in text.rstrip("\n")  # redrawn in place (carriage returns), one line
    final = text.rstrip("\n").split("\r")[-1]
    assert final.startswith("frames") and "3/3" in final and "<" in final  # elapsed<remaining


def test_closing_summary_names_every_bad_or_failed_item_and_the_products() -> None:
    summary = RunSummary(results=[
        StageResult("sort", "N1.fits", True, 0.0, "not reduced: saturated flat", status="BAD"),
        StageResult("frames", "N2.fits", False, 1.0, "ValueError: no master flat"),
        StageResult("frames", "N3.fits", True, 1.0, "")])
    summary.stacks.append(Path("red/T.stk.fits"))
    summary.products.append(Path("red/qa/index.html"))
    closing = summary.closing()
    assert closing[0] == "not reduced or failed (2):"
    assert "  sort N1.fits: BAD not reduced: saturated flat" in closing
    assert "  frames N2.fits: FAILED ValueError: no master flat" in closing
    assert closing[-3:] == ["products (2):", "  red/qa/index.html", "  red/T.stk.fits"]
    assert summary.table().endswith("\n".join(closing))
