"""The astrometric truth figures judge the WCS, not the centroid noise of faint stars.

A synthetic reduced night is written here: a truth catalog of stars, one science frame on
three CCDs with a known WCS, and a stack catalog whose positions are the true ones plus
centroid noise ``FWHM / S/N`` per axis in 1.8" seeing (2-D RMS x S/N / FWHM = 1.41; measured
on the simulated BINOSPEC stack: 1.2-1.6), S/N drawn from N(> S) ~ 1/S between 20 and 2000.
With a perfect WCS the S/N > 20 RMS is ~0.07" (the old metric failed the 0.05" limit for this
reason); stars whose expected centroid error ``FWHM / (2.35 S/N)`` is below 0.02" give
~0.04". The same catalog shifted by 0.05" must fail 0.05", and one CCD shifted by 0.05" must
fail the 0.03" per-CCD limit.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from potpyri_core.simulate.truthcheck import TruthCheck

SEEING = 1.8
SCALE = 0.25  # arcsec / pixel
SHAPE = (1200, 1800)  # y, x
CCDS = {"1": (0, 600, 0, 1200), "2": (600, 1200, 0, 1200), "3": (1200, 1800, 0, 1200)}


def frame_wcs() -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.crpix = [SHAPE[1] / 2, SHAPE[0] / 2]
    wcs.wcs.cdelt = [-SCALE / 3600, SCALE / 3600]
    return wcs


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Truth files, and the true positions, S/N and CCD of each isolated star."""
    root = tmp_path_factory.mktemp("astro_night")
    rng = np.random.default_rng(5)
    n = 900
    wcs = frame_wcs()
    x, y = rng.uniform(20, SHAPE[1] - 20, n), rng.uniform(20, SHAPE[0] - 20, n)
    sky = wcs.pixel_to_world(x, y)
    catalog = Table({"ra": sky.ra.deg, "dec": sky.dec.deg, "mag": rng.uniform(17.0, 23.0, n),
                     "is_galaxy": np.zeros(n, bool)})
    (root / "truth").mkdir()
    catalog.write(root / "truth" / "truth_catalog.ecsv")
    truth = {"frames": [{"kind": "science", "file": "f1.fits", "true_wcs_header": wcs.to_header().tostring(sep="\n")}],
             "ccd_regions": {k: list(v) for k, v in CCDS.items()}}
    (root / "truth" / "truth.json").write_text(json.dumps(truth))
    snr = 20.0 / (1.0 - rng.uniform(0, 1, n) * (1.0 - 20.0 / 2000.0))
    ccd = np.digitize(x, [600, 1200])
    return {"root": root, "sky": sky, "snr": snr, "ccd": ccd, "rng": rng}


def reduced(night, name: str, east: np.ndarray) -> TruthCheck:
    """A stack whose catalog is the truth plus centroid noise plus ``east`` (arcsec) per star."""
    rng = np.random.default_rng(9)
    sigma = SEEING / night["snr"]
    sky: SkyCoord = night["sky"]
    dra = rng.normal(0, sigma) + east
    ddec = rng.normal(0, sigma)
    dec = sky.dec.deg + ddec / 3600
    ra = sky.ra.deg + dra / 3600 / np.cos(np.radians(dec))
    table = Table({"ra": ra, "dec": dec, "snr": night["snr"], "flags": np.zeros(len(ra), int)})
    sci = fits.PrimaryHDU(np.zeros((4, 4), np.float32), header=fits.Header({"EXTNAME": "SCI", "SEEING": SEEING}))
    phot = fits.table_to_hdu(table)
    phot.name = "APPPHOT"
    path = night["root"] / f"{name}.stk.fits"
    fits.HDUList([sci, phot]).writeto(path, overwrite=True)
    return TruthCheck(night["root"], path, {}, read_noise=5.0)


def worst_ccd_offset(check: TruthCheck) -> float:
    offsets = check.chip_offsets()
    assert len(offsets) == 3 and all(n >= 50 for *_, n in offsets.values()), offsets
    return max(math.hypot(e, n) for e, n, _ in offsets.values())


def test_a_perfect_wcs_passes_in_poor_seeing(night):
    check = reduced(night, "perfect", np.zeros(len(night["snr"])))
    assert check.astrometric_snr_floor() == pytest.approx(SEEING / (2.35 * 0.02))
    rms, matched = check.astrometric_rms()
    assert matched > 150
    assert rms <= 0.05, rms
    assert worst_ccd_offset(check) <= 0.03
    # every S/N > 20 star: centroid noise alone fails the limit
    assert check.astrometric_rms(max_centroid_error=math.inf)[0] > 0.05


def test_a_shift_of_every_position_fails(night):
    check = reduced(night, "shifted", np.full(len(night["snr"]), 0.05))
    rms, _ = check.astrometric_rms()
    assert rms > 0.05, rms


def test_a_shift_of_one_ccd_fails_the_per_ccd_limit(night):
    check = reduced(night, "one_ccd", np.where(night["ccd"] == 1, 0.05, 0.0))
    offsets = check.chip_offsets()
    assert math.hypot(*offsets["2"][:2]) > 0.03, offsets
    assert all(math.hypot(*offsets[k][:2]) <= 0.03 for k in ("1", "3")), offsets
