"""Catalog-only astrometric solver: match detected stars to a reference catalog and fit a
TAN-SIP WCS.

The header WCS is assumed right to within ``max_offset`` arcsec and ``max_rotation``
degrees (typical telescope pointing). The offset and rotation are found by voting
(2-D histogram of star-catalog offsets for a grid of trial rotations); the WCS is then
fitted to the matched pairs with astropy's ``fit_wcs_from_points`` including SIP
distortion, and refined with tighter matching.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import fit_wcs_from_points, proj_plane_pixel_scales
from photutils.segmentation import SourceCatalog, detect_sources
from scipy import ndimage
from scipy.spatial import cKDTree

from potpyri_core.maskbits import UNUSABLE, Bit
from potpyri_core.stages.centroids import refine_centroids


class AstrometryError(RuntimeError):
    """The WCS could not be solved."""


@dataclass
class Solution:
    """A solved WCS and its quality figures."""

    wcs: WCS
    n_matched: int
    rms_ra: float
    """RMS residual in RA (arcsec)."""
    rms_dec: float
    """RMS residual in Dec (arcsec)."""


def detect_stars(
    data: np.ndarray, error: np.ndarray, mask: np.ndarray, fwhm_pix: float, nmax: int = 600, snr: float = 10.0
) -> Table:
    """Detect compact sources and measure windowed centroids.

    Positions are Gaussian-windowed centroids with a window sized by ``fwhm_pix``
    (:func:`~potpyri_core.stages.centroids.refine_centroids`).

    Returns
    -------
    astropy.table.Table
        Columns ``x``, ``y`` (0-based), ``flux``, ``fwhm``, ``elongation``; the ``nmax``
        brightest usable sources above ``snr``, brightest first.
    """
    bad = (mask & UNUSABLE) > 0
    sigma = max(fwhm_pix, 1.0) / 2.355
    clean = np.where(bad, 0.0, data).astype(np.float32)
    smooth = ndimage.gaussian_filter(clean, sigma, mode="constant", truncate=4.0)
    # noise of a Gaussian-weighted sum of independent pixels: sigma_pix / (2 sqrt(pi) sigma)
    noise = np.where(bad, np.inf, error) / (2.0 * np.sqrt(np.pi) * sigma)
    threshold = snr * np.median(noise[np.isfinite(noise)]) / 2.0
    segments = detect_sources(np.where(bad, 0.0, smooth), threshold, n_pixels=5)
    if segments is None:
        return Table(names=["x", "y", "flux", "fwhm", "elongation"])
    catalog = SourceCatalog(clean, segments, error=np.where(bad, 0.0, error), mask=bad)
    flux = np.asarray(catalog.segment_flux)
    flux_err = np.asarray(catalog.segment_flux_err)
    order = np.argsort(-np.nan_to_num(flux, nan=-np.inf))
    keep = []
    touches = ((mask & (Bit.SATURATED | Bit.NO_DATA | Bit.BAD)) > 0)
    for idx in order:
        if len(keep) >= nmax:
            break
        if not np.isfinite(flux[idx]) or flux[idx] < snr * flux_err[idx]:
            continue
        bbox = catalog.bbox[idx]
        if touches[bbox.iymin:bbox.iymax + 1, bbox.ixmin:bbox.ixmax + 1].any():
            continue
        keep.append(idx)
    if not keep:
        return Table(names=["x", "y", "flux", "fwhm", "elongation"])
    sub = catalog[keep]
    table = Table(
        {
            "x": np.asarray(sub.x_centroid, float),
            "y": np.asarray(sub.y_centroid, float),
            "flux": np.asarray(sub.segment_flux, float),
            "fwhm": np.asarray(sub.fwhm.value, float),
            "elongation": np.asarray(sub.elongation.value, float),
        }
    )
    table = table[np.isfinite(table["x"]) & np.isfinite(table["y"])]
    refined = refine_centroids(clean, np.column_stack([table["x"], table["y"]]), max(fwhm_pix, 1.0))
    table["x"], table["y"] = refined[:, 0], refined[:, 1]
    return table


def _vote(xy_det: np.ndarray, xy_cat: np.ndarray, center: np.ndarray, max_shift: float,
          max_rotation: float, bin_size: float) -> tuple[float, np.ndarray, int]:
    """Find the rotation (deg) and shift (px) that line up most detections with the catalog."""
    best = (0.0, np.zeros(2), -1)
    edges = np.arange(-max_shift, max_shift + bin_size, bin_size)
    step = np.degrees(bin_size / max(np.max(np.abs(xy_det - center)), 1.0))
    for angle in np.arange(-max_rotation, max_rotation + step, step):
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        rot = (xy_det - center) @ np.array([[c, s], [-s, c]]) + center
        d = (xy_cat[None, :, :] - rot[:, None, :]).reshape(-1, 2)
        near = (np.abs(d[:, 0]) < max_shift) & (np.abs(d[:, 1]) < max_shift)
        hist, _, _ = np.histogram2d(d[near, 0], d[near, 1], bins=[edges, edges])
        peak = int(hist.max()) if hist.size else 0
        if peak > best[2]:
            i, j = np.unravel_index(np.argmax(hist), hist.shape)
            sel = near.copy()
            sel[near] = ((d[near, 0] >= edges[i]) & (d[near, 0] < edges[i + 1]) &
                         (d[near, 1] >= edges[j]) & (d[near, 1] < edges[j + 1]))
            best = (float(angle), np.median(d[sel], axis=0), peak)
    return best


def solve_wcs(
    stars: Table,
    reference: tuple[np.ndarray, np.ndarray, np.ndarray],
    header_wcs: WCS,
    shape: tuple[int, int],
    max_offset: float = 30.0,
    max_rotation: float = 1.5,
    sip_degree: int = 3,
) -> Solution:
    """Solve the WCS of a frame.

    Parameters
    ----------
    stars : astropy.table.Table
        Detections from :func:`detect_stars` (brightest first).
    reference : tuple of ndarray
        ``(ra, dec, mag)`` of reference stars at the epoch of the observation.
    header_wcs : astropy.wcs.WCS
        Approximate WCS from the raw header.
    shape : tuple of int
        Image shape ``(ny, nx)``.
    max_offset : float
        Largest header pointing error searched (arcsec).
    max_rotation : float
        Largest header rotation error searched (degrees).
    sip_degree : int
        Order of the SIP distortion polynomial fitted (0 for none).

    Raises
    ------
    AstrometryError
        When too few stars match.
    """
    ra, dec, mag = reference
    scale = float(np.mean(proj_plane_pixel_scales(header_wcs.celestial))) * 3600.0
    xc, yc = header_wcs.world_to_pixel_values(ra, dec)
    margin = max_offset / scale
    inside = (xc > -margin) & (xc < shape[1] + margin) & (yc > -margin) & (yc < shape[0] + margin)
    order = np.argsort(np.where(inside, mag, np.inf))[: max(3 * min(len(stars), 150), 50)]
    order = order[inside[order]]
    xy_cat = np.column_stack([xc[order], yc[order]])
    xy_det = np.column_stack([stars["x"], stars["y"]])[:150]
    if len(xy_det) < 6 or len(xy_cat) < 6:
        raise AstrometryError(f"too few stars to solve: {len(xy_det)} detected, {len(xy_cat)} in the catalog")
    center = np.array([shape[1] / 2.0, shape[0] / 2.0])
    angle, shift, votes = _vote(xy_det, xy_cat, center, margin, max_rotation, bin_size=max(2.0, 1.0 / scale))
    if votes < 6:
        raise AstrometryError(f"no consistent match between stars and catalog (best vote {votes})")
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    all_det = np.column_stack([stars["x"], stars["y"]])
    guess = (all_det - center) @ np.array([[c, s], [-s, c]]) + center + shift
    cat_all = np.column_stack([xc, yc])
    tree = cKDTree(cat_all)
    wcs = header_wcs
    radius = 3.0 + 1.0 / scale
    for iteration, degree in enumerate([0, 0, sip_degree, sip_degree, sip_degree]):
        dist, idx = tree.query(guess, distance_upper_bound=radius)
        ok = np.isfinite(dist)
        # keep one detection per catalog star
        _, first = np.unique(idx[ok], return_index=True)
        det_idx = np.flatnonzero(ok)[first]
        if len(det_idx) < max(6, 2 * (degree + 1) * (degree + 2) // 2):
            raise AstrometryError(f"only {len(det_idx)} matched stars at iteration {iteration}")
        world = SkyCoord(ra[idx[det_idx]], dec[idx[det_idx]], unit="deg")
        xy = (all_det[det_idx, 0], all_det[det_idx, 1])
        wcs = fit_wcs_from_points(xy, world, projection="TAN", sip_degree=degree or None)
        fitted = wcs.world_to_pixel(world)
        resid = np.hypot(fitted[0] - xy[0], fitted[1] - xy[1])
        sigma = 1.4826 * np.median(resid) + 0.05
        xc2, yc2 = wcs.world_to_pixel_values(ra, dec)
        tree = cKDTree(np.column_stack([xc2, yc2]))
        guess = all_det
        radius = max(1.0, 5.0 * sigma) if iteration else 2.0 + 0.5 / scale
    world_fit = wcs.pixel_to_world(*xy)
    dra = (world_fit.ra.deg - world.ra.deg) * np.cos(np.radians(world.dec.deg)) * 3600
    ddec = (world_fit.dec.deg - world.dec.deg) * 3600
    return Solution(wcs=wcs, n_matched=len(det_idx), rms_ra=float(np.std(dra)), rms_dec=float(np.std(ddec)))
