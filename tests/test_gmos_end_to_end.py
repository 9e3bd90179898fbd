"""Reduce a simulated full-size GMOS-N 2x2 night and check the science against the truth.

The night (3 bias, 3 twilight flats, 5 dithered 120 s r-band frames, cosmic rays, a
satellite trail, saturated stars, dead and hot columns, a header WCS off by 5" and 0.3 deg)
is simulated once per test module; the reduction runs once with the saved reference
catalogs (no network). The figures come from :mod:`potpyri_core.simulate.truthcheck`, which
``benchmarks/truth_report.py`` prints for any reduced simulated night.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table

from potpyri_core.maskbits import Bit
from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from potpyri_core.simulate.truthcheck import TruthCheck, isolated_stars
from tests.support.required import require_module

require_module("potpyri_gemini")


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Simulate and reduce the night; return paths, truth, the stack and its truth check."""
    root = tmp_path_factory.mktemp("gmos_night")
    pm = PluginManager()
    gmos = pm.instrument("GMOS-N")
    simulate_instrument_night(pm, gmos, root, seed=7, binning=2)
    refcat = root / "refcat"
    options = RunOptions(proc=2, catalogs=(refcat / "gaia_dr3.ecsv", refcat / "ps1.ecsv"))
    pipeline = Pipeline(gmos, root, options, pm)
    raw_before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.glob("*.fits*")}
    summary = pipeline.run()
    raw_after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.glob("*.fits*")}
    assert not summary.failures, summary.table()
    assert len(summary.stacks) == 1
    read_noise = float(np.median([a.readnoise for a in gmos.detector.amplifiers]))
    check = TruthCheck(root, summary.stacks[0], {}, read_noise)
    check.workspace = {f["file"]: pipeline.workspace_path(f["file"]) for f in check.science}
    return {"root": root, "pipeline": pipeline, "truth": check.truth, "catalog": check.catalog,
            "stack": check.stack, "check": check, "raw_before": raw_before, "raw_after": raw_after}


def test_astrometric_rms_of_stack_stars(night):
    rms, matched = night["check"].astrometric_rms()
    assert matched > 100
    assert rms <= 0.05, f"astrometric RMS {rms:.3f} arcsec"


def test_zero_point_matches_truth(night):
    header = night["stack"]["SCI"][1]
    assert header["BUNIT"] == "electron/s"
    assert abs(night["check"].zero_point_error()) <= 0.03, header["ZPTMAG"]
    assert header["ZPTNSTAR"] >= 20
    assert header["ZPTMUCER"] < 0.03


def test_limiting_magnitude_matches_truth(night):
    header = night["stack"]["SCI"][1]
    m5_truth = night["check"].m5_truth()
    assert abs(header["M5SIGMA"] - m5_truth) <= 0.3, (header["M5SIGMA"], m5_truth)
    assert header["M3SIGMA"] > header["M5SIGMA"] > header["M10SIGMA"]


def test_cosmic_rays_flagged_in_frames(night):
    recall = night["check"].cosmic_ray_recall()
    assert len(recall) == 5
    for name, fraction in recall.items():
        assert fraction >= 0.95, f"{name}: {fraction:.3f} of CR pixels flagged"


def test_no_cosmic_ray_residual_in_stack(night):
    for name, (largest, checked) in night["check"].cosmic_ray_residuals().items():
        assert checked > 50
        assert largest < 5.0, f"{name}: CR residual at {largest:.1f} sigma"


def test_aperture_fluxes_match_truth(night):
    ratio, _, matched = night["check"].flux_ratio("APPPHOT")
    assert matched > 100
    assert abs(ratio - 1.0) < 0.01, ratio


# Median |flux - true| / flux_err of N(0, 1) pulls is 0.674. Measured on this night (seed 7,
# S/N > 50, isolated stars; session 4): 0.99 (apertures), 0.98 (PSF), fluxes unbiased (median
# flux/truth 1.0004, 0.9993). Not the aperture correction (its error, 0.04%, is now in
# flux_err) and not a constant floor: the excess scales with the error (aperture pull robust
# std 1.14 at S/N 20-50, 1.37 at 50-100, 1.45 at 100-200, 2.4 above 500). The calibrated
# frames are right: sums of the same stars in a workspace frame (3 FWHM) have pull robust std
# 0.82-1.19 at S/N 20-200, the stack's sums with ERROR x sqrt(NOISECOR) 1.45-1.68: resampling
# and combining make a star's flux noisier than the stack's ERROR and the blank-sky NOISECOR
# say. On a synthetic stack with photon noise only the same photometry gives 0.73 (apertures)
# and 0.75 (PSF) (tests/unit/test_photometry.py). Strict: passes -> remove the mark.
PULL_XFAIL = pytest.mark.xfail(strict=True, reason="stack errors of stars too small above S/N 50 (pulls of frame "
                               "sums are N(0,1)): median |pull| 0.99 (aperture), 0.98 (PSF) instead of 0.674")


def test_master_flat_matches_the_true_flat_and_flags_dead_columns(night):
    """The truth's flat pattern is on the focal-plane grid: a misplaced CCD or amplifier breaks
    the pixel-to-pixel match (3 flats of 25000 e-: photon noise 0.37%)."""
    center, rms = night["check"].flat_error()
    assert abs(center - 1.0) < 0.005, center
    assert rms < 0.006, rms
    assert night["check"].dead_columns_flagged() > 0.99


@PULL_XFAIL
@pytest.mark.parametrize("table", ["APPPHOT", "PSFPHOT"])
def test_flux_pulls_are_standard_normal(night, table):
    _, pull, matched = night["check"].flux_ratio(table)
    assert matched > 100
    assert abs(pull - 0.674) < 0.1, pull


def test_saturated_stars_flagged(night):
    cat = night["catalog"]
    by_id = {int(i): k for k, i in enumerate(cat["id"])}
    checked = 0
    check = night["check"]
    for frame in check.science:
        mask = fits.getdata(check.workspace[frame["file"]], "MASK")
        true_wcs = check.true_wcs(frame)
        for star in frame["saturated_star_ids"]:
            row = cat[by_id[int(star)]]
            x, y = true_wcs.world_to_pixel(SkyCoord(row["ra"], row["dec"], unit="deg"))
            ix, iy = round(float(x)), round(float(y))
            if not (2 <= ix < mask.shape[1] - 2 and 2 <= iy < mask.shape[0] - 2):
                continue
            if (mask[iy - 1:iy + 2, ix - 1:ix + 2] & Bit.NO_DATA).any():
                continue
            assert (mask[iy - 2:iy + 3, ix - 2:ix + 3] & Bit.SATURATED).any(), f"star {star} in {frame['file']}"
            checked += 1
    assert checked >= 5


def test_satellite_trail_masked_and_absent_from_stack(night):
    trails = night["check"].satellite()
    assert trails
    for name, (masked, median_snr, max_snr, checked) in trails.items():
        assert masked >= 0.95, f"{name}: {masked:.3f} of trail pixels masked"
        assert checked > 500
        assert abs(median_snr) < 0.3, median_snr
        assert max_snr < 5.0, max_snr


def test_stack_error_matches_sky_noise(night):
    ratio = night["check"].error_over_noise()
    assert 0.9 <= ratio <= 1.1, ratio


def test_products_layout_and_provenance(night):
    root = night["root"]
    assert (root / "file_list.txt").exists()
    assert list((root / "red" / "cals").glob("mbias_*.fits"))
    assert list((root / "red" / "cals").glob("mflat_*.fits"))
    assert len(list((root / "red" / "workspace").glob("*_red.fits"))) == 5
    stack = night["stack"]
    for name in ("SCI", "MASK", "ERROR", "PROVENANCE", "APPPHOT"):
        assert name in stack
    prov = Table(stack["PROVENANCE"][0])
    assert len(prov) == 5 and all(len(m) == 32 for m in prov["md5"])
    header = stack["SCI"][1]
    for key in ("FWHM", "SKYSIG", "RADISP", "DEDISP", "ZPTMAG", "ZPTMUCER", "ZPTNSTAR", "ZPTCAT",
                "M3SIGMA", "M5SIGMA", "M10SIGMA"):
        assert key in header, key
    mask_header = stack["MASK"][1]
    assert "MASKB1" in mask_header and "CR" in mask_header["MASKB1"]


def test_raw_files_untouched(night):
    assert len(night["raw_before"]) == 11
    assert night["raw_before"] == night["raw_after"]


# ---------------------------------------------------------------- PSF photometry


def test_psf_products_in_stack(night):
    stack = night["stack"]
    for name in ("APPPHOT", "PSFPHOT", "PSFSTARS", "PSF", "RESIDUAL"):
        assert name in stack, name
    psf, psf_header = stack["PSF"]
    assert psf_header["OVERSAMP"] >= 1 and psf.ndim == 2
    assert stack["RESIDUAL"][0].shape == stack["SCI"][0].shape
    assert stack["RESIDUAL"][0].dtype.kind == "f" and stack["RESIDUAL"][0].dtype.itemsize == 4
    stars = Table(stack["PSFSTARS"][0])
    assert 20 <= len(stars) <= 60
    phot = Table(stack["PSFPHOT"][0])
    for name in ("x", "y", "ra", "dec", "flux", "flux_err", "mag_inst", "mag_err", "mag", "qfit", "cfit", "flags"):
        assert name in phot.colnames, name
    assert len(phot) > 300


def _profile_fwhm(image: np.ndarray, oversampling: int) -> float:
    """FWHM (stack pixels) of an oversampled PSF image: where its azimuthal mean profile
    crosses half the peak, interpolated linearly."""
    ny, nx = image.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    peak_y, peak_x = np.unravel_index(np.argmax(image), image.shape)
    r = np.hypot(xx - peak_x, yy - peak_y) / oversampling
    edges = np.arange(0.0, r.max(), 0.25 / oversampling)
    which = np.digitize(r.ravel(), edges)
    radii, values = [], []
    for k in range(1, edges.size):
        sel = which == k
        if sel.any():
            radii.append(r.ravel()[sel].mean())
            values.append(image.ravel()[sel].mean())
    radii, values = np.array(radii), np.array(values) / image.max()
    k = int(np.argmax(values < 0.5))
    half = radii[k - 1] + (0.5 - values[k - 1]) * (radii[k] - radii[k - 1]) / (values[k] - values[k - 1])
    return 2.0 * float(half)


def test_epsf_fwhm_matches_stack_fwhm(night):
    psf, psf_header = night["stack"]["PSF"]
    fwhm = _profile_fwhm(psf, int(psf_header["OVERSAMP"]))
    header = night["stack"]["SCI"][1]
    # the keyword comes from Gaussian fits to the cores of bright stars, the ePSF from all of them
    assert abs(fwhm / header["FWHM"] - 1.0) < 0.05, (fwhm, header["FWHM"])
    # pixel-integrated, resampled Moffat: a little broader than the simulated seeing
    assert 1.0 <= fwhm / night["truth"]["fwhm_px"] < 1.10, (fwhm, night["truth"]["fwhm_px"])


def test_psf_fluxes_match_truth(night):
    ratio, _, matched = night["check"].flux_ratio("PSFPHOT")
    assert matched > 100
    assert abs(ratio - 1.0) < 0.02, ratio
    # PSF magnitudes carry the zero point like the aperture ones
    phot = Table(night["stack"]["PSFPHOT"][0])
    valid = np.isfinite(phot["mag"])
    np.testing.assert_allclose(phot["mag"][valid], phot["mag_inst"][valid] + night["stack"]["SCI"][1]["ZPTMAG"],
                               atol=1e-6)


def _psf_truth_matches(night, snr_min: float = 50.0):
    """Clean PSF measurements of isolated truth stars with S/N > ``snr_min``, and their truth."""
    phot = Table(night["stack"]["PSFPHOT"][0])
    good = phot[(phot["snr"] > snr_min) & (phot["flags"] == 0)]
    stars = isolated_stars(night["catalog"])
    measured = SkyCoord(good["ra"], good["dec"], unit="deg")
    idx, sep, _ = measured.match_to_catalog_sky(SkyCoord(stars["ra"], stars["dec"], unit="deg"))
    ok = sep.arcsec < 0.3
    return good[ok], stars[idx[ok]]


def test_psf_residual_small_at_stars(night):
    from photutils.aperture import CircularAperture, aperture_photometry

    measured, truth = _psf_truth_matches(night)
    residual = night["stack"]["RESIDUAL"][0].astype(float)
    fwhm = night["stack"]["SCI"][1]["FWHM"]
    xy = np.column_stack([measured["x"], measured["y"]])
    sums = np.asarray(aperture_photometry(residual, CircularAperture(xy, r=fwhm))["aperture_sum"])
    fraction = np.abs(sums) / np.asarray(truth["flux_e_per_s"], float)
    assert np.median(fraction) < 0.05, np.median(fraction)


def test_photometry_rerun_replaces_psf_products(night):
    """Re-running the photometry stage rewrites the photometry extensions, never duplicates them."""
    root = night["root"]
    first = night["pipeline"]
    options = first.options.model_copy(update={"stages": ("photometry",), "force": True})
    summary = Pipeline(first.instrument, root, options, first.plugins).run()
    assert not summary.failures, summary.table()
    (path,) = (root / "red").glob("*.stk.fits")
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
    for name in ("SCI", "MASK", "ERROR", "PROVENANCE", "APPPHOT", "PSFPHOT", "PSFSTARS", "PSF", "RESIDUAL"):
        assert names.count(name) == 1, names
