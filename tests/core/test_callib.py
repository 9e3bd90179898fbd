"""The calibration library: grouping and matching follow the rules in the settings."""

from __future__ import annotations

import pytest
from astropy.table import Table

from potpyri_core.callib import CalibrationLibrary
from potpyri_core.plugins import PluginManager
from potpyri_core.settings import CalibrationRule
from potpyri_core.stages.calibrate import MissingCalibrationError


def _table(rows):
    names = ["File", "Type", "Filter", "Amp", "Binning", "Exp", "Time"]
    return Table(rows=rows, names=names, dtype=[str, str, str, str, str, float, float])


NIGHT = _table([
    ("d10a.fits", "DARK", "Dark", "1", "1x1", 10.0, 1.0), ("d10b.fits", "DARK", "Dark", "1", "1x1", 10.0, 1.1),
    ("d60a.fits", "DARK", "Dark", "1", "1x1", 60.0, 1.2), ("d60b.fits", "DARK", "Dark", "1", "1x1", 60.0, 1.3),
    ("d60c.fits", "DARK", "Dark", "4", "2x2", 60.0, 1.3),
    ("s30.fits", "SCIENCE", "Ks", "1", "1x1", 30.0, 2.0), ("s55.fits", "SCIENCE", "Ks", "1", "1x1", 55.0, 2.1),
])


def _library(tmp_path, exptime_rule):
    mosfire = PluginManager().instrument("MOSFIRE")
    rules = {**mosfire.calibrations.rules, "dark": CalibrationRule(keys=["amp", "binning"], exptime=exptime_rule)}
    instrument = mosfire.model_copy(update={"calibrations": mosfire.calibrations.model_copy(update={"rules": rules})})
    lib = CalibrationLibrary(instrument, NIGHT, tmp_path)
    for name in lib.needed_groups("dark"):
        lib.master_path("dark", name).write_bytes(b"")
    return lib


def _science(name):
    return NIGHT[list(NIGHT["File"]).index(name)]


def test_darks_grouped_per_exposure_time_and_the_nearest_one_used(tmp_path):
    lib = _library(tmp_path, "nearest")
    assert sorted(lib.needed_groups("dark")) == ["10s_1_1x1", "60s_1_1x1"]  # the 2x2 dark calibrates nothing
    assert lib.match("dark", _science("s30.fits")).name == "mdark_10s_1_1x1.fits"
    assert lib.match("dark", _science("s55.fits")).name == "mdark_60s_1_1x1.fits"


def test_exact_rule_refuses_other_exposure_times_and_says_what_exists(tmp_path):
    lib = _library(tmp_path, "exact")
    with pytest.raises(MissingCalibrationError) as info:
        lib.match("dark", _science("s30.fits"))
    message = str(info.value)
    assert "s30.fits: no master dark for MOSFIRE 30 s, amp 1, binning 1x1" in message
    assert "dark masters present: 10 s (1, 1x1); 60 s (1, 1x1)" in message


def test_scale_rule_makes_one_master_per_group(tmp_path):
    lib = _library(tmp_path, "scale")
    assert sorted(lib.needed_groups("dark")) == ["1_1x1"]
    assert lib.match("dark", _science("s55.fits")).name == "mdark_1_1x1.fits"


def test_flats_match_on_filter(tmp_path):
    gmos = PluginManager().instrument("GMOS-N")
    table = _table([("f_r.fits", "FLAT", "r", "12", "2x2", 5.0, 1.0), ("f_g.fits", "FLAT", "g", "12", "2x2", 5.0, 1.0),
                    ("s_r.fits", "SCIENCE", "r", "12", "2x2", 60.0, 2.0)])
    lib = CalibrationLibrary(gmos, table, tmp_path)
    assert list(lib.needed_groups("flat")) == ["r_12_2x2"]
    with pytest.raises(MissingCalibrationError, match="flat masters present: none"):
        lib.match("flat", table[2])
    lib.master_path("flat", "r_12_2x2").write_bytes(b"")
    assert lib.match("flat", table[2]).name == "mflat_r_12_2x2.fits"


def test_mosfire_darks_match_exposure_time_and_coadds(tmp_path):
    """MOSFIRE's rule: a dark of the same total exposure but other coadds is never used."""
    mosfire = PluginManager().instrument("MOSFIRE")
    names = ["File", "Type", "Filter", "Amp", "Binning", "Exp", "Time", "Coadds"]
    table = Table(rows=[("d30x1.fits", "DARK", "none", "H2RG", "1x1", 30.0, 1.0, 1),
                        ("d30x3.fits", "DARK", "none", "H2RG", "1x1", 30.0, 1.1, 3),
                        ("s30x3.fits", "SCIENCE", "Ks", "H2RG", "1x1", 30.0, 2.0, 3),
                        ("s30x2.fits", "SCIENCE", "Ks", "H2RG", "1x1", 30.0, 2.1, 2)],
                  names=names, dtype=[str, str, str, str, str, float, float, int])
    lib = CalibrationLibrary(mosfire, table, tmp_path)
    assert sorted(lib.groups("dark")) == ["30s_H2RG_1x1_1coadds", "30s_H2RG_1x1_3coadds"]
    assert sorted(lib.needed_groups("dark")) == ["30s_H2RG_1x1_3coadds", "H2RG_1x1_2coadds"]
    for name in lib.groups("dark"):
        lib.master_path("dark", name).write_bytes(b"")
    assert lib.match("dark", table[2]).name == "mdark_30s_H2RG_1x1_3coadds.fits"
    with pytest.raises(MissingCalibrationError) as info:
        lib.match("dark", table[3])
    message = str(info.value)
    assert "s30x2.fits: no master dark for MOSFIRE 30 s, amp H2RG, binning 1x1, 2 coadds" in message
    assert "dark masters present: 30 s (H2RG, 1x1, 1 coadds); 30 s (H2RG, 1x1, 3 coadds)" in message
