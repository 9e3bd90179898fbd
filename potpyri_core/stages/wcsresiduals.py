"""The stars a solved frame WCS is checked on: residuals against the reference catalog.

Measured by the QA report on each calibrated frame with its final WCS (after alignment):
residual vector maps, seeing and transparency per frame.
"""

from __future__ import annotations

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.wcs import WCS

from potpyri_core.frames import Frame
from potpyri_core.maskbits import UNUSABLE
from potpyri_core.stages.astrometry import detect_stars
from potpyri_core.stages.photometry import measure_fwhm

MATCH_ARCSEC = 1.0
"""Detections within this distance of a reference star are matched to it..."""
CLIP = 4.0
"""...and kept if also within this many times the typical distance (1.4826 x median)..."""
FLOOR_ARCSEC = 0.1
"""...or within this distance (arcsec)."""


def residual_table(frame: Frame, wcs: WCS, reference: Table, fwhm_init: float) -> Table:
    """Detected stars of ``frame`` matched to ``reference`` through ``wcs``.

    Parameters
    ----------
    frame : Frame
        A calibrated, sky-subtracted frame (e-).
    wcs : astropy.wcs.WCS
        Its solved WCS.
    reference : astropy.table.Table
        The astrometric catalog at the frame's epoch (``ra``, ``dec``, optional ``mag_*``).
    fwhm_init : float
        First guess of the FWHM (pixels) for detection.

    Returns
    -------
    astropy.table.Table
        Matched stars (see :data:`MATCH_ARCSEC`, :data:`CLIP`): ``x``, ``y`` (pixels),
        ``dra``, ``ddec`` (measured minus catalog, arcsec, east and north), ``flux`` (segment flux, e-) and ``mag_ref`` (the catalog's first magnitude);
        ``meta['FWHM']`` is the frame's stellar FWHM (pixels).
    """
    bad = (frame.mask & UNUSABLE) > 0
    stars = detect_stars(frame.data, np.sqrt(np.clip(frame.variance, 0, None)), frame.mask, fwhm_init)
    empty = Table({name: np.zeros(0) for name in ("x", "y", "dra", "ddec", "flux", "mag_ref")})
    if len(stars) < 3:
        empty.meta["FWHM"] = float("nan")
        return empty
    measured = wcs.pixel_to_world(np.asarray(stars["x"]), np.asarray(stars["y"]))
    catalog = SkyCoord(reference["ra"], reference["dec"], unit="deg")
    idx, sep, _ = measured.match_to_catalog_sky(catalog)
    ok = sep.arcsec < MATCH_ARCSEC
    if ok.sum() >= 3:  # a blend or a wrong neighbour is not a residual of the solution
        typical = 1.4826 * float(np.median(sep.arcsec[ok]))
        ok &= sep.arcsec < max(CLIP * typical, FLOOR_ARCSEC)
    dra, ddec = catalog[idx[ok]].spherical_offsets_to(measured[ok])
    mag_column = next((c for c in reference.colnames if c.startswith("mag_")), None)
    mag = np.asarray(reference[mag_column], float)[idx[ok]] if mag_column else np.full(int(ok.sum()), np.nan)
    table = Table({"x": np.asarray(stars["x"])[ok], "y": np.asarray(stars["y"])[ok], "dra": dra.arcsec,
                   "ddec": ddec.arcsec, "flux": np.asarray(stars["flux"])[ok], "mag_ref": mag})
    table.meta["FWHM"] = measure_fwhm(frame.data, bad, stars[ok]) if ok.sum() >= 3 else float("nan")
    table.meta["MAGCOL"] = mag_column or ""
    return table
