"""Nights that lack something: clear messages, nothing invented."""

from __future__ import annotations

import shutil

from astropy.io import fits

from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from tests.support.required import require_module

require_module("potpyri_gemini")


def test_missing_flats_are_reported_and_nothing_is_invented(tmp_path):
    pm = PluginManager()
    gmos = pm.instrument("GMOS-N")
    simulate_instrument_night(pm, gmos, tmp_path, seed=5, binning=4, n_science=2, n_flats=0)
    summary = Pipeline(gmos, tmp_path, RunOptions(proc=1, stages=("sort", "calibrations", "frames")), pm).run()
    failures = {(r.stage, r.item): r.message for r in summary.failures}
    master = failures[("calibrations", "mflat_r_12_4x4")]
    assert "0 frame(s), at least 3 needed" in master and "add flat frames" in master
    frame_messages = [m for (stage, _), m in failures.items() if stage == "frames"]
    assert len(frame_messages) == 2
    assert all("no master flat for GMOS-N filter r, amp 12, binning 4x4; flat masters present: none" in m
               for m in frame_messages)
    assert not list((tmp_path / "red" / "workspace").glob("*.fits"))
    assert (tmp_path / "red" / "cals" / "mbias_12_4x4.fits").exists()


def test_night_without_science_frames_says_so(tmp_path):
    pm = PluginManager()
    gmos = pm.instrument("GMOS-N")
    night = tmp_path / "night"
    simulate_instrument_night(pm, gmos, night, seed=5, binning=4, n_science=1, n_flats=0)
    only_bias = tmp_path / "bias_only"
    only_bias.mkdir()
    for path in night.glob("*.fits*"):
        if fits.getheader(path)["OBSTYPE"] == "BIAS":
            shutil.copy(path, only_bias / path.name)
    summary = Pipeline(gmos, only_bias, RunOptions(proc=1), pm).run()
    (failure,) = summary.failures
    assert failure.stage == "sort"
    assert f"no SCIENCE frames of GMOS-N in {only_bias} (BIAS 3)" in failure.message
    assert not summary.stacks
