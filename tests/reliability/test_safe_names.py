"""Names built from header values stay safe and every product path stays inside red/ (issue 12, item 3)."""

from __future__ import annotations

import pytest
from astropy.table import Table

from potpyri_core.callib import CalibrationLibrary
from potpyri_core.filelist import sort_night
from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.safenames import UnsafePathError, ensure_inside, safe_component
from tests.reliability.rawfiles import frame_bytes, gmos, set_card, write


@pytest.mark.parametrize("text", ["r/../../../x", "..", "../..", "/etc/passwd", " ", "", "a\x00b", "\t\n", "-rf",
                                  ".hidden", "SN 2024abc", "Ä/ß", "a" * 300, "x/./y", "...."])
def test_safe_component(text):
    value = safe_component(text)
    assert value and len(value) <= 64
    assert "/" not in value and ".." not in value and " " not in value
    assert not value.startswith((".", "-", "_"))
    assert all(c.isascii() and (c.isalnum() or c in "._+-") for c in value)


def test_safe_component_keeps_ordinary_names():
    assert safe_component("SN2024abc") == "SN2024abc"
    assert safe_component("SN 2024abc") == "SN_2024abc"
    assert safe_component("r_G0303") == "r_G0303"


def test_ensure_inside(tmp_path):
    red = tmp_path / "red"
    assert ensure_inside(red / "cals" / "mbias_12_2x2.fits", red) == red / "cals" / "mbias_12_2x2.fits"
    for outside in (red / ".." / "x.fits", tmp_path / "x.fits", red):
        with pytest.raises(UnsafePathError, match="outside"):
            ensure_inside(outside, red)
    red.mkdir()
    (red / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError):
        ensure_inside(red / "link" / "x.fits", red)


def test_filter_with_path_traversal_stays_inside_red(tmp_path):
    instrument = gmos()
    data = frame_bytes(instrument)
    data = set_card(data, "FILTER2", "FILTER2 = 'r/../../../x'")
    data = set_card(data, "OBJECT", "OBJECT  = '../../SN 2024'")
    write(tmp_path / "N20240410S0001.fits", data)
    table = sort_night(instrument, tmp_path)
    row = table[0]
    assert (row["Type"], row["Filter"], row["Target"]) == ("SCIENCE", "r_._._._x", "SN_2024")
    pipeline = Pipeline(instrument, tmp_path, RunOptions())
    red = (tmp_path / "red").resolve()
    library = CalibrationLibrary(instrument, table, pipeline.cals)
    for path in (library.master_path("flat", f"{row['Filter']}_12_2x2"), pipeline.stack_path(table),
                 pipeline.workspace_path(row["File"])):
        assert path.resolve().is_relative_to(red)


def test_hand_edited_file_list_cannot_lead_outside_red(tmp_path):
    pipeline = Pipeline(gmos(), tmp_path, RunOptions())
    edited = Table({"Target": ["../../x"], "Filter": ["r"], "Amp": ["12"], "Binning": ["2x2"], "Time": [60400.0]})
    with pytest.raises(UnsafePathError, match="outside"):
        pipeline.stack_path(edited)
    with pytest.raises(UnsafePathError):
        CalibrationLibrary(gmos(), edited, pipeline.cals).master_path("flat", "x/../../../../r_12_2x2")
