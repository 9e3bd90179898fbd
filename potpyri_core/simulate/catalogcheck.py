"""Purity and completeness of a stack's source catalog against the simulator's truth.

Used by the catalog tests and ``benchmarks/truth_report.py`` (same figures).

Definitions (``m5`` is :meth:`~potpyri_core.simulate.truthcheck.TruthCheck.m5_truth`):

purity
    the fraction of APPPHOT rows (all of them, whatever their flags) that lie within one
    FWHM of a truth source (star or galaxy) brighter than ``m5 + 1.5``, i.e. one that can
    give a 5-sigma detection with a 2-sigma fluctuation at most;
completeness
    the fraction of truth stars brighter than ``m5 - 0.3`` that have a row within 0.6 FWHM,
    over the stars that can be measured: on the stack, no unusable pixel within the
    aperture, no saturated pixel within 3 FWHM (the wing of a saturated star is not
    searched) and no brighter truth source within 2 FWHM (a blend is one row).
"""

from __future__ import annotations

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.wcs import WCS
from scipy import ndimage
from scipy.spatial import cKDTree

from potpyri_core.maskbits import UNUSABLE, Bit
from potpyri_core.simulate.truthcheck import TruthCheck

PURITY_DEPTH = 1.5
"""Truth sources fainter than m5 + this do not make a row real."""
COMPLETENESS_MARGIN = 0.3
"""Completeness is measured for stars brighter than m5 - this."""


def _scale_arcsec(wcs: WCS) -> float:
    return float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 3600.0


def purity(check: TruthCheck, table: str = "APPPHOT") -> tuple[float, int]:
    """Fraction of catalog rows that are real sources, and the number of rows."""
    rows = Table(check.stack[table][0])
    header = check.header
    fwhm_arcsec = header["FWHM"] * _scale_arcsec(WCS(header))
    truth = check.catalog[np.asarray(check.catalog["mag"]) < check.m5_truth() + PURITY_DEPTH]
    measured = SkyCoord(rows["ra"], rows["dec"], unit="deg")
    _, sep, _ = measured.match_to_catalog_sky(SkyCoord(truth["ra"], truth["dec"], unit="deg"))
    return float(np.mean(sep.arcsec < fwhm_arcsec)), len(rows)


def measurable_stars(check: TruthCheck, faintest: float) -> Table:
    """Truth stars brighter than ``faintest`` that a catalog can be asked to contain (see the
    module's definition of completeness), with their stack pixel positions ``sx``, ``sy``."""
    header = check.header
    wcs = WCS(header)
    fwhm = header["FWHM"]
    mask = check.stack["MASK"][0]
    cat = check.catalog
    x, y = wcs.world_to_pixel(SkyCoord(cat["ra"], cat["dec"], unit="deg"))
    mag = np.asarray(cat["mag"])
    ny, nx = mask.shape
    r = int(np.ceil(header["APRAD"])) + 1
    unusable = ndimage.binary_dilation((mask & UNUSABLE) > 0, np.ones((2 * r + 1, 2 * r + 1), bool))
    s = int(np.ceil(3 * fwhm)) + 1
    saturated = ndimage.binary_dilation((mask & Bit.SATURATED) > 0, np.ones((2 * s + 1, 2 * s + 1), bool))
    ix, iy = np.round(x).astype(int), np.round(y).astype(int)
    inside = (ix >= 0) & (iy >= 0) & (ix < nx) & (iy < ny)
    ok = inside.copy()
    ok[inside] &= ~unusable[iy[inside], ix[inside]] & ~saturated[iy[inside], ix[inside]]
    ok &= (mag < faintest) & ~np.asarray(cat["is_galaxy"])
    # a brighter truth source within 2 FWHM makes a blend
    xy = np.column_stack([x, y])
    tree = cKDTree(xy[inside])
    brighter_near = np.zeros(len(cat), bool)
    inside_idx = np.flatnonzero(inside)
    for i in np.flatnonzero(ok):
        near = inside_idx[tree.query_ball_point(xy[i], 2 * fwhm)]
        brighter_near[i] = bool(np.any(mag[near] < mag[i]))
    out = cat[ok & ~brighter_near]
    out["sx"], out["sy"] = x[ok & ~brighter_near], y[ok & ~brighter_near]
    return out


def completeness(check: TruthCheck, table: str = "APPPHOT") -> tuple[float, int]:
    """Fraction of measurable truth stars brighter than m5 - 0.3 with a catalog row, and how many."""
    stars = measurable_stars(check, check.m5_truth() - COMPLETENESS_MARGIN)
    rows = Table(check.stack[table][0])
    if not len(stars) or not len(rows):
        return 0.0, len(stars)
    dist, _ = cKDTree(np.column_stack([rows["x"], rows["y"]])).query(np.column_stack([stars["sx"], stars["sy"]]))
    return float(np.mean(dist < 0.6 * check.header["FWHM"])), len(stars)
