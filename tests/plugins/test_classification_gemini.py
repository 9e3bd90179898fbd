"""Classification of GMOS-N, GMOS-S and Flamingos-2 headers built with real keyword values."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from potpyri_core.stages.classify import classify

# Keyword values of the real GMOS-N primary header (templates/gmos-n_phu.hdr) with an ext-1 CCDSUM.
GMOS = {
    "OBJECT": "SN2023ixf", "OBSTYPE": "OBJECT", "OBSCLASS": "science", "SHUTTER": "OPEN",
    "GRATING": "MIRROR", "MASKNAME": "None", "FILTER1": "open1-6", "FILTER2": "r_G0303",
    "RAWGEMQA": "USABLE", "EXPTIME": 70.0, "DATE-OBS": "2017-04-06", "TIME-OBS": "15:33:20.3",
    "CCDSUM": "2 2", "POTNEXT": 12,
}


@pytest.mark.parametrize("name", ["GMOS-N", "GMOS-S"])
def test_gmos_types(classify_header, name):
    hdr = {**GMOS, "INSTRUME": name}
    c = classify_header(name, hdr)
    assert (c.type, c.filter, c.exptime, c.binning, c.amp) == ("SCIENCE", "r", 70.0, "2x2", "12")
    assert c.time == pytest.approx(57849.6481516, abs=1e-6)
    twilight = {**hdr, "OBSCLASS": "dayCal", "OBJECT": "Twilight"}
    assert classify_header(name, twilight).type == "FLAT"
    assert classify_header(name, {**hdr, "OBSCLASS": "partnerCal"}).type == "FLAT"
    bias = {**hdr, "OBSTYPE": "BIAS", "OBSCLASS": "dayCal", "SHUTTER": "CLOSED", "EXPTIME": 0.0, "GRATING": "B600+_G5307"}
    assert classify_header(name, bias).type == "BIAS"
    c = classify_header(name, {**hdr, "RAWGEMQA": "FAIL"})
    assert c.type == "BAD" and "FAIL" in c.reason
    c = classify_header(name, {**hdr, "GRATING": "B600+_G5307"})
    assert c.type == "SPEC" and "grating" in c.reason
    c = classify_header(name, {**hdr, "OBSTYPE": "ARC"})
    assert (c.type, c.reason) == ("SPEC", "arc lamp")
    c = classify_header(name, {**hdr, "OBSCLASS": "acq"})
    assert c.type == "BAD"
    c = classify_header(name, {k: v for k, v in hdr.items() if k != "EXPTIME"})
    assert c.type == "BAD" and "EXPTIME" in c.reason


def test_gmos_filter_wheels(classify_header):
    hdr = {**GMOS, "INSTRUME": "GMOS-N", "FILTER1": "Z_G0322", "FILTER2": "open2-8"}
    assert classify_header("GMOS-N", hdr).filter == "z"
    hdr = {**GMOS, "INSTRUME": "GMOS-S", "FILTER2": "g_G0325"}
    assert classify_header("GMOS-S", hdr).filter == "g"


def test_gmos_wrong_site_is_bad(classify_header):
    c = classify_header("GMOS-N", {**GMOS, "INSTRUME": "GMOS-S"})
    assert c.type == "BAD" and "GMOS-N" in c.reason


@pytest.mark.parametrize("name", ["GMOS-N", "GMOS-S"])
@pytest.mark.parametrize("kind", ["bias", "flat", "science"])
def test_simulation_cards_classify_back(instrument, name, kind):
    s = instrument(name)
    sim = s.simulation
    cards = {**sim.primary, **sim.extension, **sim.kinds[kind], "EXPTIME": 0.0 if kind == "bias" else 30.0,
             "FILTER2": sim.filter_names["r"], "DATE-OBS": "2024-01-01", "TIME-OBS": "05:00:00", "CCDSUM": "2 2"}
    cards.setdefault("OBJECT", "sim-field")
    c = classify(s, fits.Header(cards), Path(sim.file_name.format(date="20240101", number=1, kind=kind)))
    assert c.type == kind.upper()
    if kind != "bias":
        assert c.filter == "r"
    assert c.file.startswith(name[-1])


F2 = {
    "INSTRUME": "F2", "OBSTYPE": "OBJECT", "OBSCLASS": "science", "OBJECT": "GRB 210101A", "DECKER": "Open",
    "MASKNAME": "None", "GRISM": "Open", "FILTER": "Ks_G0804", "FILTER1": "Ks_G0804", "FILTER2": "Open",
    "EXPTIME": 15.0, "NREADS": 1, "GAIN": 4.44, "MJD-OBS": 57754.80078125, "RAWGEMQA": "USABLE",
}


def test_f2(classify_header):
    c = classify_header("F2", F2)
    assert (c.type, c.filter, c.exptime) == ("SCIENCE", "K", 15.0)
    assert classify_header("F2", {**F2, "FILTER": "J_G0802"}).filter == "J"
    dark = {**F2, "OBSTYPE": "DARK", "OBSCLASS": "dayCal", "OBJECT": "Dark", "FILTER": "DK_G0807", "MASKNAME": "2-pix_grid"}
    assert classify_header("F2", dark).type == "DARK"
    assert classify_header("F2", {**F2, "OBSTYPE": "FLAT", "OBJECT": "GCALflat"}).type == "FLAT"
    c = classify_header("F2", {**F2, "GRISM": "JH_G5801"})
    assert c.type == "SPEC" and "grism" in c.reason
    c = classify_header("F2", {**F2, "DECKER": "Closed"})
    assert c.type == "BAD" and "decker" in c.reason
    c = classify_header("F2", {k: v for k, v in F2.items() if k != "EXPTIME"})
    assert c.type == "BAD" and "EXPTIME" in c.reason


def test_f2_detector(instrument):
    d = instrument("F2").detector
    assert d.saturation_times_nreads == "NREADS" and d.illuminated_radius > 1000
    assert d.readnoise_by_reads[1] == 11.7 and d.amplifiers[0].hdu == 1
