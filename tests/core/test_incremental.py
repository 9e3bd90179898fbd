"""Incremental re-runs: unchanged products are skipped, a new frame costs one frame, a changed
parameter redoes exactly the products it affects, --force redoes everything."""

from __future__ import annotations

import shutil

from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from tests.support.required import require_module
from tests.support.runs import items_made

require_module("potpyri_gemini")


def test_reruns_redo_only_what_changed(tmp_path):
    pm = PluginManager()
    gmos = pm.instrument("GMOS-N")
    paths = simulate_instrument_night(pm, gmos, tmp_path, seed=12, binning=4, n_science=3, compression="none")
    late = paths["raw"][-1]
    parked = tmp_path / "parked"
    parked.mkdir()
    shutil.move(late, parked / late.name)
    refcat = tmp_path / "refcat"

    def run(**options):
        opts = RunOptions(proc=1, catalogs=(refcat / "gaia_dr3.ecsv", refcat / "ps1.ecsv"), **options)
        return items_made(Pipeline(gmos, tmp_path, opts, pm).run())

    first = run()
    assert len(first["frames"]) == 2 and first["stack"] and first["photometry"]
    stack = tmp_path / "red" / first["stack"][0]
    before = stack.read_bytes()

    assert set(run()) == {"sort"}  # nothing but the sort is redone
    assert stack.read_bytes() == before

    shutil.move(parked / late.name, late)  # the night's last frame arrives
    added = run()
    solved = [item for item in added["astrometry"] if not item.endswith("(aligned)")]
    assert added["frames"] == [late.name] and solved == [f"{late.name.split('.fits')[0]}_red.fits"]
    assert "calibrations" not in added and added["stack"] and added["photometry"]

    changed = run(params={"stack": {"snoise": 0.15}})
    assert set(changed) == {"sort", "stack", "photometry", "qa"}

    forced = run(params={"stack": {"snoise": 0.15}}, force=True)
    assert len(forced["calibrations"]) == 2 and len(forced["frames"]) == 3 and forced["photometry"]
