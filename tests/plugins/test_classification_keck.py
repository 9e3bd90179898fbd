"""Classification of LRIS, DEIMOS and MOSFIRE headers built with real keyword values."""

from __future__ import annotations

import math

import pytest

LRIS_BLUE = {
    "INSTRUME": "LRISBLUE", "KOAIMTYP": "object", "OBSTYPE": "dark", "SLITNAME": "direct",
    "GRANAME": "mirror", "GRISNAME": "600/4000", "GRISTRAN": "stowed", "TRAPDOOR": "open",
    "BLUFILT": "G", "REDFILT": "Clear", "ELAPTIME": 300, "TTIME": 300, "BINNING": "2,2",
    "AMPMODE": "SINGLE:A", "NUMAMPS": 4, "TARGNAME": "GRB 150101B", "MJD-OBS": "57275.418510",
}


def test_lris_blue_imaging_science(classify_header):
    c = classify_header("LRIS", LRIS_BLUE)
    assert (c.type, c.filter, c.exptime, c.binning, c.amp) == ("SCIENCE", "g", 300.0, "2x2", "SINGLE:A")
    assert c.target == "GRB_150101B"
    assert c.time == pytest.approx(57275.41851)


def test_lris_red_imaging_science(classify_header):
    red = {**LRIS_BLUE, "INSTRUME": "LRIS", "BLUFILT": "clear", "REDFILT": "I", "AMPMODE": "HSPLIT,VSPLIT"}
    c = classify_header("LRIS", red)
    assert (c.type, c.filter) == ("SCIENCE", "I")
    red_spec = {**red, "GRANAME": "400/8500"}
    c = classify_header("LRIS", red_spec)
    assert c.type == "SPEC" and "grating" in c.reason


def test_lris_obstype_dark_is_ignored_and_koaimtyp_decides(classify_header):
    bias = {**LRIS_BLUE, "KOAIMTYP": "bias", "ELAPTIME": 0, "TTIME": 0, "GRISTRAN": "deployed", "SLITNAME": "long_1.0"}
    assert classify_header("LRIS", bias).type == "BIAS"
    flat = {**LRIS_BLUE, "KOAIMTYP": "flatlamp", "ELAPTIME": 8}
    assert classify_header("LRIS", flat).type == "FLAT"


def test_lris_arcs_and_spectra_are_set_aside(classify_header):
    arc = {**LRIS_BLUE, "KOAIMTYP": "arclamp", "SLITNAME": "long_1.0", "GRISTRAN": "deployed"}
    c = classify_header("LRIS", arc)
    assert (c.type, c.reason) == ("SPEC", "arc lamp")
    c = classify_header("LRIS", {**LRIS_BLUE, "GRISTRAN": "deployed"})
    assert (c.type, c.reason) == ("SPEC", "spectroscopy: grism deployed")
    c = classify_header("LRIS", {**LRIS_BLUE, "SLITNAME": "long_1.0"})
    assert c.type == "SPEC" and "SLITNAME" in c.reason


def test_lris_bad_frames(classify_header):
    assert classify_header("LRIS", {**LRIS_BLUE, "SLITNAME": "GOH_LRIS"}).type == "BAD"
    c = classify_header("LRIS", {**LRIS_BLUE, "ELAPTIME": 10, "TTIME": 10})
    assert c.type == "BAD" and "acquisition" in c.reason


def test_lris_exposure_fallbacks(classify_header):
    no_elap = {k: v for k, v in LRIS_BLUE.items() if k != "ELAPTIME"}
    assert classify_header("LRIS", {**no_elap, "TTIME": 120}).exptime == 120.0
    dates = {k: v for k, v in no_elap.items() if k != "TTIME"}
    dates.update({"DATE_BEG": "2015-09-10T10:02:38", "DATE_END": "2015-09-10T10:03:38"})
    assert classify_header("LRIS", dates).exptime == pytest.approx(60.0)
    c = classify_header("LRIS", {k: v for k, v in dates.items() if not k.startswith("DATE_")})
    assert c.type == "BAD" and "ELAPTIME" in c.reason and math.isnan(c.exptime)


def test_lris_amplifier_sets(instrument):
    from astropy.io import fits

    s = instrument("LRIS")

    def amps(cards):
        return [a.name for a in s.detector.amplifiers if a.applies_to(fits.Header(cards))]

    assert amps({"INSTRUME": "LRISBLUE", "AMPMODE": "SINGLE:A", "POTNEXT": 4}) == [f"blue-VidInp{i}" for i in range(1, 5)]
    assert amps({"INSTRUME": "LRIS", "AMPMODE": "HSPLIT,VSPLIT", "POTNEXT": 4}) == [f"red-amp{i}" for i in range(1, 5)]
    assert amps({"INSTRUME": "LRIS", "AMPMODE": "HSPLIT,VSPLIT", "POTNEXT": 1}) == ["mark4-L1", "mark4-L2", "mark4-U1", "mark4-U2"]


DEIMOS = {
    "INSTRUME": "DEIMOS: real science mosaic CCD subsystem with PowerPC in VME crate",
    "OBSTYPE": "Object", "MOSMODE": "Direct", "OBSMODE": "Imaging", "SLMSKNAM": "None", "HATCHPOS": "open",
    "DWFILNAM": "R", "ELAPTIME": 240.0, "MJD-OBS": 60000.25, "BINNING": "1,1", "NVIDINP": 8, "OBJECT": "M31 field",
}


def test_deimos(classify_header):
    c = classify_header("DEIMOS", DEIMOS)
    assert (c.type, c.filter, c.exptime, c.binning, c.amp) == ("SCIENCE", "R", 240.0, "1x1", "8")
    assert classify_header("DEIMOS", {**DEIMOS, "OBSTYPE": "DmFlat", "OBJECT": "DOME PHLAT"}).type == "FLAT"
    assert classify_header("DEIMOS", {**DEIMOS, "OBSTYPE": "Bias", "MOSMODE": "Spectral"}).type == "BIAS"
    assert classify_header("DEIMOS", {**DEIMOS, "SLMSKNAM": "GOH_X"}).type == "BAD"
    c = classify_header("DEIMOS", {**DEIMOS, "MOSMODE": "Spectral", "SLMSKNAM": "LongMirr"})
    assert c.type == "SPEC" and c.reason
    c = classify_header("DEIMOS", {k: v for k, v in DEIMOS.items() if k != "ELAPTIME"})
    assert c.type == "BAD" and "ELAPTIME" in c.reason  # never the MJD


def test_deimos_amp_modes(instrument):
    from astropy.io import fits

    s = instrument("DEIMOS")
    four = [a for a in s.detector.amplifiers if a.applies_to(fits.Header({"NVIDINP": 4}))]
    eight = [a for a in s.detector.amplifiers if a.applies_to(fits.Header({"NVIDINP": 8}))]
    assert [a.gain for a in four] == [1.206, 1.722, 1.211, 1.231]
    assert len(eight) == 8 and eight[6].readnoise == 3.918


MOSFIRE = {
    "INSTRUME": "MOSFIRE", "GRATMODE": "imaging", "MASKNAME": "OPEN", "FILTER": "Ks", "TRUITIME": 2.9,
    "COADDONE": 10, "NUMREADS": 16, "SYSGAIN": 2.15, "MJD-OBS": 58000.5, "TARGNAME": "SN2019abc", "PONAME": "MOSFIRE",
}


def test_mosfire(classify_header):
    c = classify_header("MOSFIRE", MOSFIRE)
    assert (c.type, c.filter) == ("SCIENCE", "K")
    assert c.exptime == pytest.approx(29.0) and c.coadds == 10
    dark = classify_header("MOSFIRE", {**MOSFIRE, "FILTER": "Dark", "MASKNAME": "CLOSED"})
    assert dark.type == "DARK" and dark.coadds == 10 and dark.caltype == "dark_29_10coadds_1_1x1"
    c = classify_header("MOSFIRE", {**MOSFIRE, "COADDONE": 2.5})
    assert c.type == "BAD" and "COADDONE" in c.reason and "whole number" in c.reason
    assert classify_header("MOSFIRE", {**MOSFIRE, "MASKNAME": "CLOSED"}).type == "BAD"
    assert classify_header("MOSFIRE", {**MOSFIRE, "GRATMODE": "spectroscopy"}).type == "SPEC"
    assert classify_header("MOSFIRE", {**MOSFIRE, "OBJECT": "Flat lamp on"}).type == "FLAT"
    c = classify_header("MOSFIRE", {k: v for k, v in MOSFIRE.items() if k != "COADDONE"})
    assert c.type == "BAD" and "COADDONE" in c.reason
    c = classify_header("MOSFIRE", {k: v for k, v in MOSFIRE.items() if k != "TRUITIME"})
    assert c.type == "BAD" and "TRUITIME" in c.reason


def test_mosfire_read_noise_table(instrument):
    d = instrument("MOSFIRE").detector
    assert d.reads_keyword == "NUMREADS" and d.readnoise_by_reads[16] == 5.8 and d.coadds_keyword == "COADDONE"


def test_lris_each_side_reads_its_own_filter_wheel(classify_header):
    blue_clear = {**LRIS_BLUE, "BLUFILT": "clear", "REDFILT": "I"}
    assert classify_header("LRIS", blue_clear).filter == "open"
    red = {**LRIS_BLUE, "INSTRUME": "LRIS", "BLUFILT": "G", "REDFILT": "R", "AMPMODE": "HSPLIT,VSPLIT"}
    assert classify_header("LRIS", red).filter == "R"
