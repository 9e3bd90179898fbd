"""Stack groups: per detector (TargType), or one mosaic of every chip file of a target with
``astrometry_per_ccd`` (chip-per-file cameras such as IMACS)."""

from __future__ import annotations

from astropy.table import Table

from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager


def _table() -> Table:
    rows = [(f"ift{n:04d}c{chip}.fits", "SCIENCE", target, "r", str(chip), "2x2", 60400.0 + n / 100)
            for n, target in enumerate(["SN1", "SN1", "SN2"]) for chip in (1, 2, 5)]
    rows.append(("flat0001c1.fits", "FLAT", "flat", "r", "1", "2x2", 60399.9))
    table = Table(rows=rows, names=["File", "Type", "Target", "Filter", "Amp", "Binning", "Time"])
    table["TargType"] = [f"{r['Target']}_{r['Filter']}_{r['Amp']}_{r['Binning']}" for r in table]
    return table


def _pipeline(tmp_path, per_ccd: bool) -> Pipeline:
    settings = PluginManager().instrument("IMACS").model_copy(update={"astrometry_per_ccd": per_ccd})
    pipeline = Pipeline(settings, tmp_path, RunOptions())
    pipeline.table = _table()
    return pipeline


def test_per_chip_stacks_without_the_switch(tmp_path):
    pipeline = _pipeline(tmp_path, False)
    groups = pipeline.science_groups()
    assert sorted(groups) == sorted(pipeline.detector_groups())
    assert len(groups) == 6 and all(len(g) in (1, 2) for g in groups.values())
    assert pipeline.stack_path(groups["SN1_r_5_2x2"]).name == "SN1.r.ut240331.5.2x2.stk.fits"


def test_one_mosaic_per_target_and_filter_with_astrometry_per_ccd(tmp_path):
    pipeline = _pipeline(tmp_path, True)
    groups = pipeline.science_groups()
    assert {k: len(g) for k, g in groups.items()} == {"SN1_r_2x2": 6, "SN2_r_2x2": 3}
    assert pipeline.stack_path(groups["SN1_r_2x2"]).name == "SN1.r.ut240331.all.2x2.stk.fits"
    # sky and alignment still work per chip
    assert len(pipeline.detector_groups()) == 6
