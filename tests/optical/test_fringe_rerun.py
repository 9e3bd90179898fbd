"""Re-running the fringe stage: frames it (and the sky stage) changed in place are remade from
their raw files, so a changed fringe parameter gives the frames a fresh run gives, never a
second subtraction; an unchanged night is up to date."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from tests.support.runs import items_made

pytestmark = pytest.mark.slow  # a full reduction (and re-run) of a simulated night

STAGES = ("sort", "calibrations", "frames", "fringe", "sky")


def _run(root: Path, **options) -> dict[str, list[str]]:
    pm = PluginManager()
    return items_made(Pipeline(pm.instrument("GMOS-N"), root, RunOptions(proc=2, stages=STAGES, **options), pm).run())


def _frames(root: Path) -> dict[str, np.ndarray]:
    return {p.name: fits.getdata(p, "SCI") for p in sorted((root / "red" / "workspace").glob("*_red.fits"))}


def test_changed_fringe_parameter_redoes_from_the_raw_frames(tmp_path):
    pm = PluginManager()
    first, fresh = tmp_path / "night", tmp_path / "fresh"
    simulate_instrument_night(pm, pm.instrument("GMOS-N"), first, seed=8, binning=4, n_science=3, band="z",
                              window=(1801, 3000), compression="none")
    shutil.copytree(first, fresh)

    made = _run(first)
    assert len(made["fringe"]) == 4 and len(made["sky"]) == 3  # master + 3 frames
    assert set(_run(first)) == {"sort"}  # unchanged: fringe and sky are up to date

    changed = {"fringe": {"smooth": 2.0}}
    redone = _run(first, params=changed)
    assert "frames" not in redone and len(redone["fringe"]) == 7 and len(redone["sky"]) == 3  # 3 remade
    _run(fresh, params=changed)
    again, new = _frames(first), _frames(fresh)
    assert again.keys() == new.keys() and len(new) == 3
    for name in new:
        assert np.allclose(again[name], new[name], atol=1e-2, rtol=0), name
    h = fits.getheader(first / "red" / "workspace" / next(iter(new)))
    assert h["FRNGMKEY"] == fits.getval(first / "red" / "cals" / "mfringe_z_12_4x4.fits", "FRNGKEY")
