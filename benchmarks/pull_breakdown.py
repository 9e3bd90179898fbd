"""Flux pulls of isolated stars by S/N, in the stack catalogs and in plain aperture sums.

Usage: python benchmarks/pull_breakdown.py NIGHT_DIR [--radius-fwhm 3]

NIGHT_DIR is a reduced simulated night. For APPPHOT and PSFPHOT of the stack: per S/N bin,
median flux/truth - 1, median |pull| (0.674 for N(0, 1)) and the pull's robust standard
deviation. Then aperture sums (``--radius-fwhm`` true FWHM, at the true positions) of the
same stars in the first calibrated workspace frame (its ERROR) and in the stack (ERROR x
sqrt(NOISECOR)), against truth flux x the true Moffat fraction in that aperture: where the
frame's pulls are N(0, 1) and the stack's are not, resampling or combining is the cause.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from photutils.aperture import CircularAperture, aperture_photometry

from potpyri_core.maskbits import UNUSABLE
from potpyri_core.simulate.truthcheck import TruthCheck, isolated_stars, moffat_fraction_within

BINS = ((10, 20), (20, 50), (50, 100), (100, 200), (200, 500), (500, np.inf))


def print_bins(label: str, snr: np.ndarray, measured: np.ndarray, true: np.ndarray, error: np.ndarray) -> None:
    """One line per S/N bin with at least 5 stars."""
    print(label)
    pull = (measured - true) / error
    for lo, hi in BINS:
        sel = (snr >= lo) & (snr < hi)
        if sel.sum() < 5:
            continue
        p = pull[sel]
        print(f"  S/N {lo:>4}-{hi:<5} n {sel.sum():5d}  flux/truth-1 {np.median(measured[sel] / true[sel]) - 1:+.4f}"
              f"  median|pull| {np.median(np.abs(p)):.3f}  robust std {1.4826 * np.median(np.abs(p - np.median(p))):.2f}")


def catalog_pulls(check: TruthCheck, table: str) -> None:
    """Pulls of a stack catalog's unflagged rows matched (0.3") to isolated truth stars."""
    phot = Table(check.stack[table][0])
    good = phot[(phot["flags"] == 0) & np.isfinite(phot["snr"])]
    stars = isolated_stars(check.catalog)
    idx, sep, _ = SkyCoord(good["ra"], good["dec"], unit="deg").match_to_catalog_sky(
        SkyCoord(stars["ra"], stars["dec"], unit="deg"))
    ok = sep.arcsec < 0.3
    print_bins(f"{table} (catalog flux, flux_err)", np.asarray(good["snr"])[ok], np.asarray(good["flux"])[ok],
               np.asarray(stars["flux_e_per_s"])[idx[ok]], np.asarray(good["flux_err"])[ok])


def sum_pulls(label: str, path: Path, stars: Table, radius: float, fraction: float, stack: bool) -> None:
    """Pulls of aperture sums at the true positions in one image (a frame in e-, or the stack in e-/s)."""
    with fits.open(path) as hdul:
        data, error, mask = (hdul[n].data.astype(float) for n in ("SCI", "ERROR", "MASK"))
        header = hdul[0].header
    bad = (mask.astype(int) & UNUSABLE) > 0 if stack else mask > 0
    if stack:
        error = error * np.sqrt(max(float(header["NOISECOR"]), 1.0))
    x, y = WCS(header).world_to_pixel(SkyCoord(stars["ra"], stars["dec"], unit="deg"))
    margin = radius + 5
    inside = (x > margin) & (y > margin) & (x < data.shape[1] - margin) & (y < data.shape[0] - margin)
    aperture = CircularAperture(np.column_stack([x[inside], y[inside]]), r=radius)
    sums = aperture_photometry(np.where(bad, 0.0, data), aperture, error=error)
    hit = np.asarray(aperture_photometry(bad.astype(float), aperture)["aperture_sum"]) > 0
    scale = 1.0 if stack else float(header["EXPTIME"])
    true = np.asarray(stars["flux_e_per_s"])[inside] * scale * fraction
    flux, err = np.asarray(sums["aperture_sum"]), np.asarray(sums["aperture_sum_err"])
    ok = ~hit & (err > 0)
    print_bins(label, true[ok] / err[ok], flux[ok], true[ok], err[ok])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("night", type=Path)
    parser.add_argument("--radius-fwhm", type=float, default=3.0)
    args = parser.parse_args()
    stack = min((args.night / "red").glob("*.stk.fits"))
    check = TruthCheck(args.night, stack, {}, read_noise=0.0)
    for table in ("APPPHOT", "PSFPHOT"):
        if table in check.stack:
            catalog_pulls(check, table)
    truth = check.truth
    radius = args.radius_fwhm * truth["fwhm_px"]
    fraction = moffat_fraction_within(radius, truth["moffat_alpha_px"], truth["moffat_beta"])
    stars = isolated_stars(check.catalog, radius_arcsec=4.0)
    frame = min((args.night / "red" / "workspace").glob("*_red.fits"))
    sum_pulls(f"sums of {args.radius_fwhm:g} FWHM in {frame.name} (ERROR)", frame, stars, radius, fraction, False)
    sum_pulls(f"sums of {args.radius_fwhm:g} FWHM in the stack (ERROR x sqrt(NOISECOR))", stack, stars, radius,
              fraction, True)


if __name__ == "__main__":
    main()
