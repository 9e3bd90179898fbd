"""Per-instrument header rules (``[header_rules.KEY]`` in an instrument's TOML): a value
outside a rule makes that file BAD, naming file, keyword, value and rule; the sort goes on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from potpyri_core.filelist import sort_night
from potpyri_core.settings import HeaderRule
from potpyri_core.stages.classify import classify, read_header
from tests.reliability.rawfiles import frame_bytes, gmos, set_card, write

NAME = "N20240410S0001.fits"


@pytest.fixture(scope="module")
def instrument():
    """GMOS-N with its own rules (CCDSUM, EXPTIME) and a test rule on the filter names."""
    base = gmos()
    rules = {**base.header_rules,
             "FILTER2": HeaderRule(allowed=["r_G0303", "g_G0301", "open2-8"], kinds=["science", "flat"]),
             "AIRMASS": HeaderRule(ge=1.0, le=3.0, kinds=["science"])}
    return base.model_copy(update={"header_rules": rules})


def _classify(instrument, tmp_path, data: bytes):
    path = write(tmp_path / NAME, data)
    return classify(instrument, read_header(instrument, path), path)


def test_gmos_declares_its_binnings_and_exposure_range():
    rules = gmos().header_rules
    assert rules["CCDSUM"].allowed == [1, 2, 4] and rules["CCDSUM"].each
    assert rules["EXPTIME"].ge == 0 and rules["EXPTIME"].lt == 1e5


BROKEN = [
    ("binning 3", "science", "CCDSUM", "CCDSUM  = '3 3'",
     "CCDSUM = '3 3': expected one of 1, 2, 4 (header_rules.CCDSUM of GMOS-N)"),
    ("binning 2x8", "bias", "CCDSUM", "CCDSUM  = '2 8'",
     "CCDSUM = '2 8': expected one of 1, 2, 4 (header_rules.CCDSUM of GMOS-N)"),
    ("filter not GMOS's", "science", "FILTER2", "FILTER2 = 'r G0303'",
     "FILTER2 = 'r G0303': expected one of r_G0303, g_G0301, open2-8 (header_rules.FILTER2 of GMOS-N)"),
    ("airmass below 1", "science", "AIRMASS", "AIRMASS =                  0.5",
     "AIRMASS = 0.5: expected >= 1 (header_rules.AIRMASS of GMOS-N)"),
    ("airmass text", "science", "AIRMASS", "AIRMASS = 'high'", "AIRMASS = 'high': expected a number"),
]


@pytest.mark.parametrize(("case", "kind", "keyword", "image", "expected"), BROKEN, ids=[c[0] for c in BROKEN])
def test_a_value_outside_a_rule_makes_the_file_bad_naming_keyword_value_and_rule(instrument, tmp_path, case, kind,
                                                                                 keyword, image, expected):
    c = _classify(instrument, tmp_path, set_card(frame_bytes(instrument, kind), keyword, image))
    assert c.type == "BAD"
    assert c.reason == f"{NAME}: {expected}", c.reason


def test_values_inside_the_rules_and_frame_types_outside_a_rules_kinds_pass(instrument, tmp_path):
    for kind, ccdsum in (("science", "4 4"), ("science", "1 2"), ("flat", "2 2")):
        c = _classify(instrument, tmp_path, set_card(frame_bytes(instrument, kind), "CCDSUM", f"CCDSUM  = '{ccdsum}'"))
        assert c.type == kind.upper(), c.reason
    # the filter rule is for science and flat frames only: a bias's wheel is not checked
    bias = set_card(frame_bytes(instrument, "bias"), "FILTER2", "FILTER2 = 'r G0303'")
    assert _classify(instrument, tmp_path, bias).type == "BIAS"


def test_one_file_outside_a_rule_is_bad_and_the_sort_goes_on(instrument, tmp_path):
    for i in range(3):
        write(tmp_path / f"N20240410S000{i + 1}.fits", frame_bytes(instrument, "science", seed=i, mjd=60400.1 + i / 100))
    write(tmp_path / "N20240410S0009.fits", set_card(frame_bytes(instrument, "science"), "CCDSUM", "CCDSUM  = '8 8'"))
    table = sort_night(instrument, tmp_path, "file_list.txt", redo=True, workers=1)
    types = dict(zip(table["File"], table["Type"], strict=True))
    assert [types[f"N20240410S000{i}.fits"] for i in (1, 2, 3)] == ["SCIENCE"] * 3
    assert types["N20240410S0009.fits"] == "BAD"
    reason = str(table[table["File"] == "N20240410S0009.fits"]["Reason"][0])
    assert "CCDSUM = '8 8': expected one of 1, 2, 4" in reason


def test_rules_that_cannot_hold_are_refused_when_the_settings_load():
    with pytest.raises(ValidationError, match="mix numbers and text"):
        HeaderRule(allowed=[1, "two"])
    with pytest.raises(ValidationError, match="not a regular expression"):
        HeaderRule(pattern="r_G(03")
    with pytest.raises(ValidationError, match="kinds"):
        HeaderRule(kinds=["sciense"])
