"""Classification of IMACS and FourStar headers built with the documented keyword values."""

from __future__ import annotations

IMACS = {
    "INSTRUME": "IMACS Short-Camera", "OBJECT": "SN2024abc", "EXPTYPE": "Object", "EXPTIME": 300.0,
    "FILTER": "Bessell_V1", "GISMO": "none", "SLITMASK": "f/4-imaging", "DATE-OBS": "2024-03-01",
    "UT-TIME": "03:00:00", "BINNING": "2x2", "CHIP": 3, "EGAIN": 0.9, "ENOISE": 4.5,
}


def test_imacs(classify_header):
    c = classify_header("IMACS", IMACS)
    assert (c.type, c.filter, c.exptime, c.binning, c.amp) == ("SCIENCE", "V", 300.0, "2x2", "3")
    assert classify_header("IMACS", {**IMACS, "FILTER": "CTIO-I1"}).filter == "I"
    assert classify_header("IMACS", {**IMACS, "FILTER": "Sloan_r"}).filter == "r"
    assert classify_header("IMACS", {**IMACS, "OBJECT": "twiflat", "EXPTYPE": "Flat"}).type == "FLAT"
    assert classify_header("IMACS", {**IMACS, "OBJECT": "bias", "EXPTYPE": "Bias", "SLITMASK": "mask_A"}).type == "BIAS"
    c = classify_header("IMACS", {**IMACS, "GISMO": "Gri-300-26.7"})
    assert c.type == "SPEC" and "GISMO" in c.reason
    c = classify_header("IMACS", {k: v for k, v in IMACS.items() if k != "EXPTIME"})
    assert c.type == "BAD" and "EXPTIME" in c.reason


FOURSTAR = {
    "INSTRUME": "FourStar", "OBJECT": "field-12", "EXPTIME": 34.9, "FILTER": "Ks", "OBSMODE": "imaging",
    "APTYPE": "open", "DATE-OBS": "2024-03-01T03:00:00", "NAMPS": 32, "GAIN": 2.65, "RDNOISE": 25.5,
}


def test_fourstar(classify_header, instrument):
    c = classify_header("FourStar", FOURSTAR)
    assert (c.type, c.filter, c.exptime) == ("SCIENCE", "K", 34.9)
    assert classify_header("4star", FOURSTAR).type == "SCIENCE"  # by alias
    assert classify_header("FourStar", {**FOURSTAR, "FILTER": "J"}).filter == "J"
    assert classify_header("FourStar", {**FOURSTAR, "OBJECT": "dark"}).type == "DARK"
    c = classify_header("FourStar", {**FOURSTAR, "OBSMODE": "spectroscopy"})
    assert c.type == "BAD" and "no frame-typing rule" in c.reason
    c = classify_header("FourStar", {k: v for k, v in FOURSTAR.items() if k != "EXPTIME"})
    assert c.type == "BAD" and "EXPTIME" in c.reason
    assert instrument("FourStar").detector.reference_rows == 4
