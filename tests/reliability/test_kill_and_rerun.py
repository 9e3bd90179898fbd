"""SIGKILL a reduction at seven points (after the sort, during calibrations, frames, sky,
astrometry, the stack and photometry), rerun each time: the products equal an uninterrupted
run's, no ``.tmp`` is left under ``red/`` and no process of the runs is left alive."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from tests.support.required import require_module

require_module("potpyri_gemini")

KILL_POINTS = [
    (r"INFO sort file_list\.txt: ok", 0.0),
    (r"INFO calibrations mbias_\S+: ok \d+ frames", 0.0),  # bias made, flat not
    (r"INFO frames 1/\d+ done", 0.0),
    (r"INFO sky 1/\d+ done", 0.0),
    (r"INFO astrometry 1/\d+ done", 0.0),
    (r"INFO resampling 1/\d+ done", 0.0),
    (r"INFO stack \S+\.stk\.fits: ok \d+ frames", 1.0),  # during photometry
]
"""Log lines (of work done in that run) after which the reduction is killed, and a delay."""

VOLATILE_CARDS = {"DATE", "CHECKSUM", "DATASUM"}
"""Header cards that hold the time a product was written."""


def _command(root: Path) -> list[str]:
    refcat = root / "refcat"
    return [str(Path(sys.executable).parent / "potpyri"), "reduce", "GMOS-N", str(root), "--proc", "2",
            "--catalog", str(refcat / "gaia_dr3.ecsv"), "--catalog", str(refcat / "ps1.ecsv")]


def _run(root: Path, env: dict[str, str], pattern: str | None = None, delay: float = 0.0) -> tuple[bool, str]:
    """Run a reduction of ``root``; SIGKILL it ``delay`` s after a log line matching
    ``pattern``. Returns (killed, the log it printed)."""
    proc = subprocess.Popen(_command(root), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if pattern and re.search(pattern, line):
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True, "".join(lines)
    proc.wait()
    assert proc.returncode == 0, "".join(lines)
    return False, "".join(lines)


def _alive(marker: str) -> list[int]:
    """PIDs of processes whose environment holds ``marker`` (the runs and their workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _products(red: Path) -> list[str]:
    return sorted(str(q.relative_to(red)) for q in red.rglob("*")
                  if q.is_file() and q.parts[len(red.parts)] not in ("log", "qa") and q.name != ".lock")


def _assert_same_fits(a_path: Path, b_path: Path) -> None:
    with fits.open(a_path) as a, fits.open(b_path) as b:
        assert [h.name for h in a] == [h.name for h in b], a_path.name
        for ha, hb in zip(a, b, strict=True):
            keys = [k for k in ha.header if k not in VOLATILE_CARDS]
            assert keys == [k for k in hb.header if k not in VOLATILE_CARDS], (a_path.name, ha.name)
            for key in keys:
                if ha.name != "PROVENANCE" and key not in ("COMMENT", "HISTORY", ""):
                    assert ha.header[key] == hb.header[key], (a_path.name, ha.name, key)
            if ha.name == "PROVENANCE" or ha.data is None:
                continue
            if isinstance(ha, fits.BinTableHDU):
                for column in ha.columns.names:
                    np.testing.assert_array_equal(ha.data[column], hb.data[column],
                                                  err_msg=f"{a_path.name} {ha.name} {column}")
            else:
                np.testing.assert_array_equal(ha.data, hb.data, err_msg=f"{a_path.name} {ha.name}")


@pytest.mark.slow
def test_killed_seven_times_then_rerun_equals_an_uninterrupted_run(tmp_path):
    pm = PluginManager()
    night, reference = tmp_path / "night", tmp_path / "reference"
    simulate_instrument_night(pm, pm.instrument("GMOS-N"), night, seed=31, binning=4, n_science=3,
                              compression="none")
    shutil.copytree(night, reference)
    marker = f"POTPYRI_KILLTEST={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1], "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    _run(reference, env)
    uninterrupted = time.perf_counter() - start

    for pattern, delay in KILL_POINTS:
        killed, printed = _run(night, env, pattern, delay)
        assert killed, f"the run ended before {pattern!r}:\n{printed}"
        deadline = time.monotonic() + 5.0
        while _alive(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(marker), f"processes left after the kill at {pattern!r}"
    _, printed = _run(night, env)
    assert "FAILED" not in printed, printed
    print(f"uninterrupted run {uninterrupted:.1f} s; 7 kills and the final rerun"
          f" {time.perf_counter() - start - uninterrupted:.1f} s")

    red, red_ref = night / "red", reference / "red"
    assert not list(red.rglob("*.tmp")) and not list(red_ref.rglob("*.tmp"))
    assert not _alive(marker)
    assert _products(red) == _products(red_ref)
    fits_files = [name for name in _products(red) if name.endswith(".fits")]
    assert any(name.endswith(".stk.fits") for name in fits_files) and any("cals" in n for n in fits_files)
    for name in fits_files:
        _assert_same_fits(red / name, red_ref / name)
    assert fits.getval(red / next(n for n in fits_files if n.endswith(".stk.fits")), "PHOTSTAT") == "done"
