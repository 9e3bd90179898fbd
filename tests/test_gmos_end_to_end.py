"""Reduce a simulated full-size GMOS-N 2x2 night and check the science against the truth.

The night (3 bias, 3 twilight flats, 5 dithered 120 s r-band frames, cosmic rays, a
satellite trail, saturated stars, dead and hot columns, a header WCS off by 5" and 0.3 deg)
is simulated once per test session; the reduction runs once with the saved reference
catalogs (no network).
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from potpyri_core.maskbits import UNUSABLE, Bit
from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night

pytest.importorskip("potpyri_gemini")


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Simulate and reduce the night; return paths, truth and the stack."""
    root = tmp_path_factory.mktemp("gmos_night")
    pm = PluginManager()
    gmos = pm.instrument("GMOS-N")
    simulate_instrument_night(pm, gmos, root, seed=7, binning=2)
    refcat = root / "refcat"
    options = RunOptions(proc=2, catalogs=(refcat / "gaia_dr3.ecsv", refcat / "ps1.ecsv"))
    pipeline = Pipeline(gmos, root, options, pm)
    raw_before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.glob("*.fits")}
    summary = pipeline.run()
    raw_after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.glob("*.fits")}
    truth = json.loads((root / "truth" / "truth.json").read_text())
    catalog = Table.read(root / "truth" / "truth_catalog.ecsv")
    assert not summary.failures, summary.table()
    assert len(summary.stacks) == 1
    with fits.open(summary.stacks[0]) as hdul:
        stack = {h.name: (h.data.copy() if h.data is not None else None, h.header.copy()) for h in hdul}
    return {"root": root, "pipeline": pipeline, "truth": truth, "catalog": catalog, "stack": stack,
            "raw_before": raw_before, "raw_after": raw_after}


def _science(truth):
    return [f for f in truth["frames"] if f["kind"] == "science"]


def _stack_wcs(night):
    return WCS(night["stack"]["SCI"][1])


def _isolated_stars(catalog: Table, radius_arcsec: float = 2.5, contrast: float = 4.0) -> Table:
    """Stars with no object brighter than ``mag + contrast`` within ``radius_arcsec``
    (a blend has no single true position to compare a centroid with)."""
    xyz = SkyCoord(catalog["ra"], catalog["dec"], unit="deg").cartesian.xyz.value.T
    tree = cKDTree(xyz)
    pairs = tree.query_pairs(np.radians(radius_arcsec / 3600.0), output_type="ndarray")
    mag = np.asarray(catalog["mag"])
    spoiled = np.zeros(len(catalog), bool)
    spoiled[pairs[:, 0][mag[pairs[:, 1]] < mag[pairs[:, 0]] + contrast]] = True
    spoiled[pairs[:, 1][mag[pairs[:, 0]] < mag[pairs[:, 1]] + contrast]] = True
    return catalog[~spoiled & ~np.asarray(catalog["is_galaxy"])]


def test_astrometric_rms_of_stack_stars(night):
    phot = Table(night["stack"]["APPPHOT"][0])
    stars = _isolated_stars(night["catalog"])
    good = phot[(phot["snr"] > 20) & (phot["flags"] == 0)]
    measured = SkyCoord(good["ra"], good["dec"], unit="deg")
    true = SkyCoord(stars["ra"], stars["dec"], unit="deg")
    idx, sep, _ = measured.match_to_catalog_sky(true)
    ok = sep.arcsec < 0.5
    assert ok.sum() > 100
    dra, ddec = measured[ok].spherical_offsets_to(true[idx[ok]])
    rms = math.sqrt(np.mean(dra.arcsec**2 + ddec.arcsec**2))
    assert rms <= 0.05, f"astrometric RMS {rms:.3f} arcsec"


def test_zero_point_matches_truth(night):
    header = night["stack"]["SCI"][1]
    assert header["BUNIT"] == "electron/s"
    assert abs(header["ZPTMAG"] - night["truth"]["zeropoint"]) <= 0.03, header["ZPTMAG"]
    assert header["ZPTNSTAR"] >= 20
    assert header["ZPTMUCER"] < 0.03


def _moffat_enclosed(radius_px: float, alpha: float, beta: float) -> float:
    return 1.0 - (1.0 + (radius_px / alpha) ** 2) ** (1.0 - beta)


def test_limiting_magnitude_matches_truth(night):
    truth = night["truth"]
    header = night["stack"]["SCI"][1]
    frames = _science(truth)
    exptime = frames[0]["exptime"]
    gmos = night["pipeline"].instrument
    read_noise = float(np.median([a.readnoise for a in gmos.detector.amplifiers]))
    # per native pixel, per frame; the flat is ~1 so the variance is sky + RN^2
    pixel_var = np.mean([f["sky_e_per_pix"] for f in frames]) + read_noise**2
    radius = header["APRAD"]
    sigma_ap = math.sqrt(math.pi * radius**2 * pixel_var / len(frames)) / exptime
    enclosed = _moffat_enclosed(radius, truth["moffat_alpha_px"], truth["moffat_beta"])
    m5_truth = truth["zeropoint"] - 2.5 * math.log10(5 * sigma_ap / enclosed)
    assert abs(header["M5SIGMA"] - m5_truth) <= 0.3, (header["M5SIGMA"], m5_truth)
    assert header["M3SIGMA"] > header["M5SIGMA"] > header["M10SIGMA"]


def _workspace(night, frame):
    return night["pipeline"].workspace_path(frame["file"])


def test_cosmic_rays_flagged_in_frames(night):
    with fits.open(night["root"] / "truth" / "cr_masks.fits") as crs:
        for frame in _science(night["truth"]):
            injected = crs[frame["file"]].data.astype(bool)
            mask = fits.getdata(_workspace(night, frame), "MASK")
            flagged = (mask & Bit.COSMIC_RAY) > 0
            # pixels that cannot be judged (gaps, saturated) are excluded
            judged = injected & ((mask & (Bit.NO_DATA | Bit.SATURATED)) == 0)
            fraction = (flagged & judged).sum() / judged.sum()
            assert judged.sum() > 100
            assert fraction >= 0.95, f"{frame['file']}: {fraction:.3f} of CR pixels flagged"


def _isolated_stack_pixels(night, sky: SkyCoord) -> tuple[np.ndarray, np.ndarray]:
    """Stack pixels of ``sky`` positions away from every source and usable."""
    data, header = night["stack"]["SCI"]
    mask = night["stack"]["MASK"][0]
    wcs = WCS(header)
    x, y = wcs.world_to_pixel(sky)
    ix, iy = np.round(x).astype(int), np.round(y).astype(int)
    inside = (ix >= 0) & (iy >= 0) & (ix < data.shape[1]) & (iy < data.shape[0])
    ix, iy = ix[inside], iy[inside]
    cat = night["catalog"]
    sx, sy = wcs.world_to_pixel(SkyCoord(cat["ra"], cat["dec"], unit="deg"))
    bright = cat["mag"] < 25.5
    dist, _ = cKDTree(np.column_stack([sx[bright], sy[bright]])).query(np.column_stack([ix, iy]))
    keep = (dist > 4 * header["FWHM"]) & ((mask[iy, ix] & UNUSABLE) == 0)
    return iy[keep], ix[keep]


def _snr(night):
    data = night["stack"]["SCI"][0]
    error = night["stack"]["ERROR"][0]
    return data / np.where(error > 0, error, np.inf)


def test_no_cosmic_ray_residual_in_stack(night):
    snr = _snr(night)
    with fits.open(night["root"] / "truth" / "cr_masks.fits") as crs:
        for frame in _science(night["truth"]):
            y, x = np.nonzero(crs[frame["file"]].data)
            true_wcs = WCS(fits.Header.fromstring(frame["true_wcs_header"], sep="\n"))
            iy, ix = _isolated_stack_pixels(night, true_wcs.pixel_to_world(x, y))
            assert iy.size > 50
            assert snr[iy, ix].max() < 5.0, f"{frame['file']}: CR residual at {snr[iy, ix].max():.1f} sigma"


def test_saturated_stars_flagged(night):
    cat = night["catalog"]
    by_id = {int(i): k for k, i in enumerate(cat["id"])}
    checked = 0
    for frame in _science(night["truth"]):
        mask = fits.getdata(_workspace(night, frame), "MASK")
        true_wcs = WCS(fits.Header.fromstring(frame["true_wcs_header"], sep="\n"))
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
    frames = [f for f in _science(night["truth"]) if f["has_satellite"]]
    assert frames
    snr = _snr(night)
    with fits.open(night["root"] / "truth" / "satellite_mask.fits") as trails:
        for frame in frames:
            trail = trails[frame["file"]].data.astype(bool)
            mask = fits.getdata(_workspace(night, frame), "MASK")
            judged = trail & ((mask & Bit.NO_DATA) == 0)
            fraction = ((mask & Bit.SATELLITE) > 0)[judged].mean()
            assert fraction >= 0.95, f"{fraction:.3f} of trail pixels masked"
            y, x = np.nonzero(trail)
            true_wcs = WCS(fits.Header.fromstring(frame["true_wcs_header"], sep="\n"))
            iy, ix = _isolated_stack_pixels(night, true_wcs.pixel_to_world(x, y))
            assert iy.size > 500
            values = snr[iy, ix]
            assert abs(np.median(values)) < 0.3, np.median(values)
            assert values.max() < 5.0


def test_stack_error_matches_sky_noise(night):
    data, header = night["stack"]["SCI"]
    error = night["stack"]["ERROR"][0]

    ny, nx = data.shape
    rng = np.random.default_rng(0)
    ys, xs = rng.integers(0, ny, 40000), rng.integers(0, nx, 40000)
    sky = WCS(header).pixel_to_world(xs, ys)
    iy, ix = _isolated_stack_pixels(night, sky)
    values, errors = data[iy, ix], error[iy, ix]
    measured = 1.4826 * np.median(np.abs(values - np.median(values)))
    predicted = float(np.median(errors))
    assert 0.9 <= measured / predicted <= 1.1, (measured, predicted)


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


def _psf_truth_matches(night, snr_min: float = 50.0):
    """Clean PSF measurements of isolated truth stars with S/N > ``snr_min``, and their truth."""
    phot = Table(night["stack"]["PSFPHOT"][0])
    good = phot[(phot["snr"] > snr_min) & (phot["flags"] == 0)]
    stars = _isolated_stars(night["catalog"])
    measured = SkyCoord(good["ra"], good["dec"], unit="deg")
    idx, sep, _ = measured.match_to_catalog_sky(SkyCoord(stars["ra"], stars["dec"], unit="deg"))
    ok = sep.arcsec < 0.3
    return good[ok], stars[idx[ok]]


def test_psf_fluxes_match_truth(night):
    measured, truth = _psf_truth_matches(night)
    assert len(measured) > 100
    true_flux = np.asarray(truth["flux_e_per_s"], float)
    ratio = np.asarray(measured["flux"]) / true_flux
    assert abs(np.median(ratio) - 1.0) < 0.02, np.median(ratio)
    pull = np.abs(np.asarray(measured["flux"]) - true_flux) / np.asarray(measured["flux_err"])
    assert np.median(pull) < 1.5, np.median(pull)
    # PSF magnitudes carry the zero point like the aperture ones
    header = night["stack"]["SCI"][1]
    np.testing.assert_allclose(measured["mag"], measured["mag_inst"] + header["ZPTMAG"], atol=1e-6)


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
    options = first.options.model_copy(update={"stages": ("photometry",)})
    summary = Pipeline(first.instrument, root, options, first.plugins).run()
    assert not summary.failures, summary.table()
    (path,) = (root / "red").glob("*.stk.fits")
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
    for name in ("SCI", "MASK", "ERROR", "PROVENANCE", "APPPHOT", "PSFPHOT", "PSFSTARS", "PSF", "RESIDUAL"):
        assert names.count(name) == 1, names
