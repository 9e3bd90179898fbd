"""Classification of header extracts of real files (tests/data/real, see PROVENANCE.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from astropy.io import fits
from plugin_helpers import REAL

from potpyri_core.stages.classify import classify, read_header
from tests.support.required import SHARED_DATA, require_path

LRIS_BIASES = ["b150910_2036", "b150910_2037", "b150910_2038"]
LRIS_ARCS = ["b150910_2033", "LB.20160109.14149"]
LRIS_SPECTRA = ["b150910_2070", "b150910_2083", "LB.20160109.57204", "LB.20160109.58013"]


def lris_extract(stem: str) -> Path:
    return REAL / "keck_lris_blue" / f"{stem}.hdr.fits.gz"


def test_all_nine_lris_extracts_present():
    assert sorted(p.name for p in (REAL / "keck_lris_blue").glob("*.hdr.fits.gz")) == sorted(
        f"{s}.hdr.fits.gz" for s in LRIS_BIASES + LRIS_ARCS + LRIS_SPECTRA
    )


@pytest.mark.parametrize("stem", LRIS_BIASES)
def test_lris_blue_biases(instrument, stem):
    s = instrument("LRIS")
    header = read_header(s, lris_extract(stem))
    assert header["OBSTYPE"].strip() == "dark"  # the ⚠: OBSTYPE lies, KOAIMTYP decides
    c = classify(s, header, lris_extract(stem))
    assert (c.type, c.binning, c.amp) == ("BIAS", "2x2", "SINGLE:A")
    assert c.exptime == 0.0


@pytest.mark.parametrize("stem", LRIS_ARCS + LRIS_SPECTRA)
def test_lris_blue_arcs_and_spectra_are_not_science(instrument, stem):
    s = instrument("LRIS")
    c = classify(s, read_header(s, lris_extract(stem)), lris_extract(stem))
    assert c.type in ("SPEC", "BAD") and c.reason
    if stem in LRIS_ARCS:
        assert (c.type, c.reason) == ("SPEC", "arc lamp")
    else:
        assert c.type == "SPEC" and "grism" in c.reason


def test_lris_blue_amplifier_sections_match_real_extension(instrument):
    s = instrument("LRIS")
    header = read_header(s, lris_extract("b150910_2036"))
    blue = [a for a in s.detector.amplifiers if a.applies_to(header)]
    assert len(blue) == 4
    ext = fits.getheader(lris_extract("b150910_2036"), 1)
    # header DATASEC [26:537,1:2048] at 2x2 binning == settings [51:1074,1:4096] at 1x1
    x1, x2 = (int(v) for v in re.findall(r"\d+", ext["DATASEC"])[:2])
    assert blue[0].datasec == f"[{2 * x1 - 1}:{2 * x2},1:4096]"
    assert blue[0].detsec == ext["DETSEC"]


@pytest.mark.parametrize("stem", LRIS_BIASES + LRIS_ARCS)
def test_lris_blue_full_files_agree_with_extracts(instrument, stem):
    """The full raw files (``<repo>/../shared/data``; a failure in CI when absent)."""
    s = instrument("LRIS")
    full = require_path(SHARED_DATA / "keck_lris_blue" / f"{stem}.fits.gz")
    header = read_header(s, full)
    assert header["POTNEXT"] == 4
    c_full = classify(s, header, full)
    c_extract = classify(s, read_header(s, lris_extract(stem)), lris_extract(stem))
    assert (c_full.type, c_full.reason, c_full.filter) == (c_extract.type, c_extract.reason, c_extract.filter)


@pytest.mark.parametrize(
    ("name", "file", "band"),
    [
        ("GMOS-N", "gmos-n_bpm_HAM_44_12amp_v3.hdr.fits.gz", "z"),
        ("GMOS-S", "gmos-s_bpm_HAM_44_12amp_v2.hdr.fits.gz", "r"),
    ],
)
def test_gmos_bpm_headers(instrument, name, file, band):
    s = instrument(name)
    path = REAL / "gemini_gmos" / file
    header = read_header(s, path)
    assert s.identifies(header["INSTRUME"])
    other = instrument("GMOS-S" if name == "GMOS-N" else "GMOS-N")
    assert not other.identifies(header["INSTRUME"])
    c = classify(s, header, path)
    # a dayCal OBJECT frame taken through the mirror: typed like a twilight flat
    assert (c.type, c.filter, c.binning) == ("FLAT", band, "4x4")
    ext = fits.getheader(path, 1)
    amp1 = s.detector.amplifiers[0]
    assert amp1.detsec == ext["DETSEC"] and amp1.hdu == ext["EXTVER"] == 1
    if name == "GMOS-S":
        assert [a.readnoise for a in s.detector.amplifiers][:2] == [ext["RDNOISE"], 4.25]


def test_f2_dark_header(instrument):
    s = instrument("F2")
    path = REAL / "gemini_f2" / "f2_image_illumination.hdr.fits.gz"
    header = read_header(s, path)
    assert s.identifies(header["INSTRUME"])
    c = classify(s, header, path)
    assert (c.type, c.exptime) == ("DARK", 3.0)
    assert c.time == pytest.approx(57754.80078125)


@pytest.mark.parametrize(
    ("file", "band"),
    [("bino_proc_left.trim.staticmask.hdr.fits.gz", "z"), ("bino_proc_right.trim.staticmask.hdr.fits.gz", "i")],
)
def test_binospec_headers(instrument, file, band):
    s = instrument("BINOSPEC")
    path = REAL / "mmt_binospec" / file
    header = read_header(s, path)
    assert s.identifies(header["INSTRUME"])
    c = classify(s, header, path)
    assert (c.type, c.filter, c.binning) == ("SCIENCE", band, "1x1")
    assert c.exptime in (120.0, 60.0)


def _strip_steps(section: str) -> tuple[int, int, int, int]:
    """Parse a Mark4 section such as [2065:2117,4248:2185:-1] as sorted (x1, x2, y1, y2)."""
    xs, ys = section.strip("[]").split(",")
    x = sorted(int(v) for v in xs.split(":")[:2])
    y = sorted(int(v) for v in ys.split(":")[:2])
    return x[0], x[1], y[0], y[1]


def test_lris_red_mark4_fragment_matches_amplifiers(instrument):
    s = instrument("LRIS")
    frag = fits.getheader(REAL / "keck_lris_red_mark4" / "headerL2U2L1U1_1_1.fits.gz")
    header = frag.copy()
    header.update({"INSTRUME": "LRIS", "AMPMODE": "HSPLIT,VSPLIT", "POTNEXT": 1})
    assert s.identifies(header["INSTRUME"])
    amps = {a.name.split("-")[1]: a for a in s.detector.amplifiers if a.applies_to(header)}
    assert sorted(amps) == ["L1", "L2", "U1", "U2"]
    for i in range(4):
        amp = amps[frag[f"AMPNM{i}"].strip()]
        assert _strip_steps(amp.datasec) == _strip_steps(frag[f"DSEC{i}"])
        assert _strip_steps(amp.biassec) == _strip_steps(frag[f"BSEC{i}"])
        assert _strip_steps(amp.detsec) == _strip_steps(frag[f"CSEC{i}"])
    # a single-amp Mark4 mode (L1) is not one of the described amplifier sets
    one = fits.getheader(REAL / "keck_lris_red_mark4" / "headerL1_1_1.fits.gz")
    one.update({"INSTRUME": "LRIS", "AMPMODE": "HLEFT,VDOWN", "POTNEXT": 1})
    assert not [a for a in s.detector.amplifiers if a.applies_to(one)]
