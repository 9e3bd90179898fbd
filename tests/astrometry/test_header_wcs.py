"""Starting WCS from raw header keywords (expectations computed by hand from the keywords)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from potpyri_core.plugins import PluginManager
from potpyri_core.stages.header_wcs import apply_starting_wcs, is_celestial, pointing, starting_wcs

pytest.importorskip("potpyri_keck")
pytest.importorskip("potpyri_gemini")

# real LRIS-blue primary keyword values (shared/data/templates/lris_blue_phu.hdr) and the
# pane WCS of its first amplifier extension
LRIS_PRIMARY = {"RA": "23:19:58.53", "DEC": "-05:09:55.5", "EQUINOX": 2000.0, "ROTPOSN": -106.20046244,
                "ROTMODE": "position angle"}
LRIS_PANE = {"CTYPE1": "PANE_X", "CTYPE2": "PANE_Y", "CRVAL1": 1.0, "CRVAL2": 1.0, "CD1_1": 2.0, "CD1_2": 0.0,
             "CD2_1": 0.0, "CD2_2": 2.0, "CRPIX1": 26.0, "CRPIX2": 1.0, "WCSNAME": "pane"}


@pytest.fixture(scope="module")
def pm():
    return PluginManager()


def test_pane_and_binospec_slitmask_wcs_are_not_celestial():
    assert not is_celestial(LRIS_PANE)
    assert not is_celestial({"CTYPE1": "BINO_X", "CTYPE2": "BINO_Y"})
    assert is_celestial({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN"})
    assert is_celestial({"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP"})


def test_sexagesimal_pointing(pm):
    centre = pointing(LRIS_PRIMARY, pm.instrument("LRIS").header_wcs)
    assert centre.ra.deg == pytest.approx(15 * (23 + 19 / 60 + 58.53 / 3600), abs=1e-9)
    assert centre.dec.deg == pytest.approx(-(5 + 9 / 60 + 55.5 / 3600), abs=1e-9)


def test_lris_starting_wcs_from_pointing_and_rotator(pm):
    lris = pm.instrument("LRIS")
    shape = (2048, 2048)
    wcs = starting_wcs(LRIS_PRIMARY, lris, shape, binning=2)
    centre = wcs.pixel_to_world(1023.5, 1023.5)
    up = wcs.pixel_to_world(1023.5, 1123.5)
    right = wcs.pixel_to_world(1123.5, 1023.5)
    assert centre.separation(SkyCoord("23:19:58.53 -05:09:55.5", unit=("hourangle", "deg"))).arcsec < 0.01
    # +y points at PA = ROTPOSN + 90 east of north; +x 90 deg west of it (east to the left)
    pa = LRIS_PRIMARY["ROTPOSN"] + 90.0
    assert _wrap(centre.position_angle(up).deg - pa) == pytest.approx(0.0, abs=1e-6)
    assert _wrap(centre.position_angle(right).deg - (pa - 90.0)) == pytest.approx(0.0, abs=1e-6)
    assert centre.separation(up).arcsec == pytest.approx(100 * 0.135 * 2, rel=1e-6)


def _wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


def test_flip_reverses_parity(pm):
    lris = pm.instrument("LRIS")
    flipped = lris.model_copy(update={"header_wcs": lris.header_wcs.model_copy(update={"flip": True})})
    a = starting_wcs(LRIS_PRIMARY, lris, (100, 100), 1)
    b = starting_wcs(LRIS_PRIMARY, flipped, (100, 100), 1)
    assert np.linalg.det(a.wcs.cd) < 0 < np.linalg.det(b.wcs.cd)


def test_pane_wcs_replaced_by_starting_wcs(pm):
    header = fits.Header(LRIS_PANE)
    header["BINNING"] = "2x2"
    assert apply_starting_wcs(header, LRIS_PRIMARY, pm.instrument("LRIS"), (2048, 2048)) == "pointing"
    assert header["CTYPE1"] == "RA---TAN" and "WCSNAME" not in header
    assert WCS(header).has_celestial


def test_celestial_header_wcs_kept_and_calibrations_left_alone(pm):
    gmos = pm.instrument("GMOS-N")
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 10.0, "CRVAL2": 20.0,
                          "CD1_1": -2e-5, "CD2_2": 2e-5, "CRPIX1": 5.0, "CRPIX2": 6.0})
    assert apply_starting_wcs(header, {"RA": 11.0, "DEC": 21.0}, gmos, (100, 100)) == "header"
    assert header["CRVAL1"] == 10.0
    bias = fits.Header({"BINNING": "2x2"})
    assert apply_starting_wcs(bias, {"OBSTYPE": "BIAS"}, gmos, (100, 100)) == "none"
    assert "CTYPE1" not in bias


def test_every_instrument_declares_its_header_wcs(pm):
    names = ["LRIS", "DEIMOS", "MOSFIRE", "GMOS-N", "GMOS-S", "F2", "BINOSPEC", "MMIRS", "IMACS", "FOURSTAR"]
    for name in names:
        settings = pm.instrument(name).header_wcs
        assert settings.ra_keyword and settings.dec_keyword, name


REAL = Path(__file__).resolve().parents[1] / "data" / "real"


def test_real_lris_raw_header_gets_a_celestial_wcs(pm):
    lris = pm.instrument("LRIS")
    with fits.open(REAL / "keck_lris_blue" / "LB.20160109.57204.hdr.fits.gz") as hdul:
        primary, ext = hdul[0].header, hdul[1].header
    assert ext["CTYPE1"] == "PANE_X" and not is_celestial(ext)
    header = fits.Header({k: ext[k] for k in ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2")})
    header["BINNING"] = "2x2"
    assert apply_starting_wcs(header, primary, lris, (2048, 2048)) == "pointing"
    wcs = WCS(header)
    centre = wcs.pixel_to_world(1023.5, 1023.5)
    assert centre.separation(SkyCoord(primary["RA"], primary["DEC"], unit=("hourangle", "deg"))).arcsec < 0.01
    up = wcs.pixel_to_world(1023.5, 1123.5)
    assert _wrap(centre.position_angle(up).deg - (primary["ROTPOSN"] + 90.0)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", ["bino_proc_left", "bino_proc_right"])
def test_binospec_settings_reproduce_the_real_header_wcs(pm, name):
    """The fallback (POSANG + 180, mirrored, 0.2444"/px) matches the real header's own WCS."""
    pytest.importorskip("potpyri_mmt")
    binospec = pm.instrument("BINOSPEC")
    header = fits.getheader(REAL / "mmt_binospec" / f"{name}.trim.staticmask.hdr.fits.gz", 1)
    real = WCS(header).wcs
    real_cd = np.diag(real.cdelt) @ real.get_pc()
    ours = starting_wcs(header, binospec, (4112, 4096), 1).wcs.cd
    assert np.allclose(ours, real_cd, atol=2e-4 * np.abs(real_cd).max())
