"""Classification of Binospec and MMIRS headers built with real keyword values."""

from __future__ import annotations

import pytest

# Keyword values of the real Binospec extension headers (templates/binospec_side*_ext.hdr).
BINO = {
    "INSTRUME": "Binospec", "OBJECT": "sGRB191031D_z", "EXPTIME": 120.0, "FILTER": "r_filter",
    "MASK": "imaging", "SCRN": "stowed", "MJD": 59307.46507, "CCDSUM": "1 1", "IMAGETYP": "object", "POTNEXT": 2,
}


def test_binospec(classify_header):
    c = classify_header("BINOSPEC", BINO)
    assert (c.type, c.filter, c.exptime, c.binning, c.amp) == ("SCIENCE", "r", 120.0, "1x1", "2")
    assert c.time == pytest.approx(59307.46507)
    assert classify_header("BINOSPEC", {**BINO, "FILTER": "z_filter"}).filter == "z"
    assert classify_header("BINOSPEC", {**BINO, "SCRN": "deployed"}).type == "FLAT"
    c = classify_header("BINOSPEC", {**BINO, "MASK": "spectroscopy"})
    assert c.type == "SPEC" and c.reason
    c = classify_header("BINOSPEC", {**BINO, "MASK": "mira"})
    assert c.type == "BAD" and "MIRA" in c.reason
    c = classify_header("BINOSPEC", {k: v for k, v in BINO.items() if k != "EXPTIME"})
    assert c.type == "BAD" and "EXPTIME" in c.reason


def test_binospec_sections(instrument):
    d = instrument("BINOSPEC").detector
    assert not d.sections_from_header
    assert [(a.hdu, a.biassec, a.datasec) for a in d.amplifiers] == [
        (1, "[1:1054,1:4112]", "[1055:3024,217:3911]"),
        (2, "[3034:4096,1:4112]", "[1067:3033,217:3911]"),
    ]


MMIRS = {
    "INSTRUME": "MMIRS", "OBJECT": "FRB20190520B", "EXPTIME": 60.0, "FILTER": "Ks", "OBSMODE": "imaging",
    "APTYPE": "open", "MOSID": "open", "DATE-OBS": "2021-04-13T03:09:41", "CCDSUM": "1 1", "NAMPS": 32,
    "GAIN": 0.95, "RDNOISE": 15.0,
}


def test_mmirs(classify_header):
    c = classify_header("MMIRS", MMIRS)
    assert (c.type, c.filter, c.exptime, c.amp) == ("SCIENCE", "K", 60.0, "32")
    assert c.time == pytest.approx(59317.131725, abs=1e-6)
    assert classify_header("MMIRS", {**MMIRS, "FILTER": "J"}).filter == "J"
    assert classify_header("MMIRS", {**MMIRS, "OBJECT": "dark", "MOSID": "closed"}).type == "DARK"
    assert classify_header("MMIRS", {**MMIRS, "MOSID": "closed"}).type == "BAD"
    assert classify_header("MMIRS", {**MMIRS, "OBSMODE": "spectral"}).type == "SPEC"
    c = classify_header("MMIRS", {k: v for k, v in MMIRS.items() if k != "EXPTIME"})
    assert c.type == "BAD" and "EXPTIME" in c.reason


def test_mmirs_reference_rows(instrument):
    d = instrument("MMIRS").detector
    assert d.reference_rows == 4 and d.saturation_adu == 46000
