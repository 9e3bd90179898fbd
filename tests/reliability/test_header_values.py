"""Every header value the classification reads is validated: a bad one makes that file BAD with
a reason naming file, keyword and value, and the sort goes on (issue 12, items 1, 10, 11)."""

from __future__ import annotations

import math

import pytest

from potpyri_core.filelist import sort_night
from potpyri_core.headervalues import HeaderValueError, binning, number, text
from potpyri_core.stages.classify import classify, read_header
from tests.reliability.rawfiles import frame_bytes, gmos, set_card, write

NAME = "N20240410S0001.fits"

# (case, kind, keyword, card image, what the reason must contain after "<file>: ")
BAD_CARDS = [
    ("exptime letters", "science", "EXPTIME", "EXPTIME = 12O.0XYZ", "EXPTIME = 12O.0XYZ: unparsable card"),
    ("exptime NaN", "science", "EXPTIME", "EXPTIME = NaN", "EXPTIME = NaN: unparsable card"),
    ("exptime inf", "science", "EXPTIME", "EXPTIME = inf", "EXPTIME = inf: unparsable card"),
    ("exptime hex", "science", "EXPTIME", "EXPTIME = 0x10", "EXPTIME = 0x10: unparsable card"),
    ("object tab", "science", "OBJECT", "OBJECT  = 'SN\t2024'", "OBJECT = 'SN\\t2024': unparsable card"),
    ("object NaN", "science", "OBJECT", "OBJECT  = NaN", "OBJECT = NaN: unparsable card"),
    ("mjd NaN", "science", "MJD-OBS", "MJD-OBS = NaN", "MJD-OBS = NaN: unparsable card"),
    ("filter control byte", "science", "FILTER2", "FILTER2 = 'r\x01G0303'", "FILTER2 = 'r\\x01G0303': unparsable card"),
    ("science exptime 0", "science", "EXPTIME", "EXPTIME =                  0.0", "EXPTIME = 0.0: expected > 0"),
    ("flat exptime negative", "flat", "EXPTIME", "EXPTIME =                 -5.0", "EXPTIME = -5.0: expected > 0"),
    ("exptime 1e999", "science", "EXPTIME", "EXPTIME =                1e999", "EXPTIME = inf: expected a finite number"),
    ("exptime logical", "science", "EXPTIME", "EXPTIME =                    T", "EXPTIME = True: expected a number"),
    ("exptime text", "science", "EXPTIME", "EXPTIME = 'long'", "EXPTIME = 'long': expected a number"),
    ("exptime over a day", "science", "EXPTIME", "EXPTIME =              90000.0", "EXPTIME = 90000.0: expected <= 86400"),
    ("ccdsum zero", "science", "CCDSUM", "CCDSUM  = '0 0'", "CCDSUM = '0 0': binning factors must be 1..64"),
    ("ccdsum letter", "science", "CCDSUM", "CCDSUM  = 'x'", "CCDSUM = 'x': expected a binning such as '2 2'"),
    ("obstype NaN (a rule keyword)", "science", "OBSTYPE", "OBSTYPE = NaN", "OBSTYPE = NaN: unparsable card"),
]


@pytest.fixture(scope="module")
def instrument():
    return gmos()


@pytest.mark.parametrize(("case", "kind", "keyword", "image", "expected"), BAD_CARDS, ids=[c[0] for c in BAD_CARDS])
def test_bad_value_makes_the_file_bad_with_file_keyword_and_value(instrument, tmp_path, case, kind, keyword, image,
                                                                  expected):
    path = write(tmp_path / NAME, set_card(frame_bytes(instrument, kind), keyword, image))
    c = classify(instrument, read_header(instrument, path), path)
    assert c.type == "BAD"
    assert c.reason.startswith(f"{NAME}: {expected}"), c.reason


def test_bias_may_have_zero_exposure(instrument, tmp_path):
    path = write(tmp_path / NAME, frame_bytes(instrument, "bias", exptime=0.0))
    c = classify(instrument, read_header(instrument, path), path)
    assert (c.type, c.exptime) == ("BIAS", 0.0)


def test_missing_binning_is_not_silently_1x1(instrument, tmp_path):
    path = write(tmp_path / NAME, frame_bytes(instrument, ccdsum=None))
    c = classify(instrument, read_header(instrument, path), path)
    assert (c.type, c.reason) == (
        "BAD", f"{NAME}: missing keyword for the binning (not assumed 1x1): expected one of CCDSUM")


def test_the_sort_goes_on_past_every_bad_card(instrument, tmp_path):
    for i, (_, kind, keyword, image, _) in enumerate(BAD_CARDS, start=1):
        write(tmp_path / f"N20240410S{i:04d}.fits", set_card(frame_bytes(instrument, kind, mjd=60400 + i / 100),
                                                             keyword, image))
    write(tmp_path / "N20240410S0099.fits", frame_bytes(instrument))
    table = sort_night(instrument, tmp_path)
    reasons = dict(zip(table["File"], table["Reason"], strict=True))
    types = dict(zip(table["File"], table["Type"], strict=True))
    assert types.pop("N20240410S0099.fits") == "SCIENCE"
    assert set(types.values()) == {"BAD"}
    for i, (*_, expected) in enumerate(BAD_CARDS, start=1):
        name = f"N20240410S{i:04d}.fits"
        assert reasons[name].startswith(f"{name}: {expected}")


def test_validators_directly():
    assert number("120.5", "EXPTIME", "f") == 120.5
    assert binning("2,2", "BINNING", "f") == binning("2x2", "BINNING", "f") == binning(2, "BINNING", "f") == "2x2"
    for bad in (math.nan, math.inf, True, "0x10", None, [1]):
        with pytest.raises(HeaderValueError, match="^f: EXPTIME = "):
            number(bad, "EXPTIME", "f")
    with pytest.raises(HeaderValueError, match=r"control character"):
        text("a\x1bb", "OBJECT", "f")
    for bad in ("0 0", "x", "2 2 2", "-1 1", "65 1", ""):
        with pytest.raises(HeaderValueError, match="^f: CCDSUM = "):
            binning(bad, "CCDSUM", "f")
