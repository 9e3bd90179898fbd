"""The plugin contract as the pipeline honours it: a caller-registered plugin is called in
every stage in every process, ``-p`` overrides reach the step and the provenance, ``--skip-*``
turn off exactly their hooks, and a plugin stage runs where it asks with its own parameters."""

from __future__ import annotations

import json
import os

import pytest
from astropy.io import fits
from astropy.table import Table

from potpyri_core.options import RunOptions
from potpyri_core.params import ParameterError
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from tests.support import recording_plugin
from tests.support.required import require_module

require_module("potpyri_gemini")

ALL_HOOKS = {"potpyri_read_header", "potpyri_classify", "potpyri_assemble", "potpyri_build_calibration",
             "potpyri_apply_calibrations", "potpyri_mask_cosmic_rays", "potpyri_subtract_sky",
             "potpyri_mask_satellites", "potpyri_solve_wcs", "potpyri_resample", "potpyri_stack",
             "potpyri_photometry", "potpyri_zeropoint", "stage:check"}


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    pm = PluginManager()
    simulate_instrument_night(pm, pm.instrument("GMOS-N"), root, seed=3, binning=4, n_science=2)
    return root


def _reduce(root, tmp_path, proc, **options):
    record = tmp_path / f"calls_{proc}.jsonl"
    pm = PluginManager(extra_plugins=[recording_plugin.Recorder(record)])
    gmos = pm.instrument("GMOS-N")
    refcat = root / "refcat"
    opts = RunOptions(proc=proc, catalogs=(refcat / "gaia_dr3.ecsv", refcat / "ps1.ecsv"), force=True, **options)
    summary = Pipeline(gmos, root, opts, pm).run()
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    return summary, calls


@pytest.mark.parametrize("proc", [1, 2])
def test_caller_plugin_is_called_in_every_stage_and_process(night, tmp_path, proc):
    summary, calls = _reduce(night, tmp_path, proc,
                             params={"cosmic_rays": {"sigclip": 4.7}, "check": {"level": 3}})
    assert not summary.failures, summary.table()
    assert {c["hook"] for c in calls} == ALL_HOOKS
    cr = [c for c in calls if c["hook"] == "potpyri_mask_cosmic_rays"]
    assert len(cr) == 2 and all(c["params"]["sigclip"] == 4.7 for c in cr)
    assert [c["params"]["level"] for c in calls if c["hook"] == "stage:check"] == [3]
    order = [r.stage for r in summary.results]
    assert order.index("check") > max(i for i, s in enumerate(order) if s == "frames")
    assert order.index("check") < order.index("sky")
    if proc == 2:  # the per-frame hooks ran in worker processes, with the same plugin set
        workers = {c["pid"] for c in calls if c["hook"] == "potpyri_mask_cosmic_rays"}
        assert os.getpid() not in workers
    stack = summary.stacks[0]
    provenance = Table.read(stack, hdu="PROVENANCE")
    params = json.loads(provenance.meta["PARAMS"])
    assert params["cosmic_rays"]["sigclip"] == 4.7 and params["check"]["level"] == 3
    assert "potpyri-gemini" in json.loads(provenance.meta["PLUGINS"])


def test_skip_options_turn_off_exactly_their_hooks(night, tmp_path):
    summary, calls = _reduce(night, tmp_path, 1, skip_cr=True, skip_skysub=True, skip_flatten=True,
                             skip_gaia=True, stages=("sort", "calibrations", "frames", "sky", "astrometry"))
    called = {c["hook"] for c in calls}
    assert not {"potpyri_mask_cosmic_rays", "potpyri_subtract_sky", "potpyri_solve_wcs"} & called
    assert "potpyri_mask_satellites" in called
    kinds = [c for c in calls if c["hook"] == "potpyri_build_calibration"]
    assert len(kinds) == 1  # the bias only: no flat with --skip-flatten
    frame = fits.getheader(min((night / "red" / "workspace").glob("*_red.fits")))
    assert "FLATCOR" not in frame and "NCRPIX" not in frame and "SKYLEVEL" not in frame
    assert "BIASCOR" in frame
    assert any(r.stage == "astrometry" and "skipped (--skip-gaia)" in r.message for r in summary.results)


def test_bad_parameter_override_is_one_clear_line(night):
    pm = PluginManager()
    gmos = pm.instrument("GMOS-N")
    with pytest.raises(ParameterError, match=r"-p: step cosmic_rays has no parameter 'sigclp'"):
        Pipeline(gmos, night, RunOptions(params={"cosmic_rays": {"sigclp": 4.5}}), pm)
    with pytest.raises(ParameterError, match=r"-p: cosmic_rays.sigclip=-1"):
        Pipeline(gmos, night, RunOptions(params={"cosmic_rays": {"sigclip": -1}}), pm)
    with pytest.raises(ParameterError, match=r"unknown step 'cosmic'"):
        Pipeline(gmos, night, RunOptions(params={"cosmic": {"sigclip": 4}}), pm)
