"""How much of the true fringe pattern is left in reduced frames of a simulated night.

Independent of the reduction's fringe code: the true pattern (``truth/fringe_pattern.fits``)
times each frame's true amplitude (``fringe_e`` in ``truth.json``) is fitted, with a plane,
to the frame's empty sky (usable pixels more than 4 FWHM from every truth source brighter than
25.5 mag); the fringe left is the fitted fraction of the true fringe times its rms there, in
units of the frame's pixel noise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from potpyri_core.maskbits import UNUSABLE


@dataclass(frozen=True)
class FringeResidual:
    """Fringe left in one frame.

    Attributes
    ----------
    fraction : float
        Fitted amplitude of the true fringe left, as a fraction of the true fringe (1: none
        removed).
    sigma : float
        Rms of the fringe left over the empty sky, in units of the pixel noise there.
    true_sigma : float
        Rms of the whole true fringe there, in units of the pixel noise.
    n_pixels : int
        Empty-sky pixels used.
    """

    fraction: float
    sigma: float
    true_sigma: float
    n_pixels: int


def empty_sky(root: Path, frame: dict, shape: tuple[int, int], fwhm_px: float) -> np.ndarray:
    """Pixels of a frame more than 4 FWHM from every truth source brighter than 25.5 mag."""
    catalog = Table.read(root / "truth" / "truth_catalog.ecsv")
    wcs = WCS(fits.Header.fromstring(frame["true_wcs_header"], sep="\n"))
    bright = catalog[catalog["mag"] < 25.5]
    x, y = wcs.world_to_pixel(SkyCoord(bright["ra"], bright["dec"], unit="deg"))
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    dist, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([xx.ravel(), yy.ravel()]))
    return (dist > 4 * fwhm_px).reshape(shape)


def fringe_residuals(root: Path, workspace: dict[str, Path]) -> dict[str, FringeResidual]:
    """The true fringe left in each reduced frame of a simulated night.

    Parameters
    ----------
    root : Path
        The simulated night (``truth/``).
    workspace : dict
        Raw file name -> reduced frame (SCI, MASK) on the simulated focal-plane grid.

    Returns
    -------
    dict
        Raw file name -> :class:`FringeResidual`.
    """
    truth = json.loads((root / "truth" / "truth.json").read_text())
    pattern = fits.getdata(root / "truth" / "fringe_pattern.fits").astype(np.float64)
    out = {}
    for frame in (f for f in truth["frames"] if f["kind"] == "science"):
        with fits.open(workspace[frame["file"]]) as hdul:
            data, mask = hdul["SCI"].data.astype(np.float64), hdul["MASK"].data
        keep = ((mask & UNUSABLE) == 0) & empty_sky(root, frame, data.shape, truth["fwhm_px"]) & (pattern != 0)
        true = frame["fringe_e"] * pattern
        ny, nx = data.shape
        yy, xx = np.mgrid[0:ny, 0:nx]
        design = np.stack([np.ones(keep.sum()), xx[keep] / nx, yy[keep] / ny, true[keep]], axis=1)
        values = data[keep]
        good = np.ones(values.size, bool)
        for _ in range(3):  # CRs and trails missed by the mask
            coef, *_ = np.linalg.lstsq(design[good], values[good], rcond=None)
            resid = values - design @ coef
            noise = 1.4826 * float(np.median(np.abs(resid[good] - np.median(resid[good]))))
            good = np.abs(resid) < 5 * noise
        rms = float(np.std(true[keep][good]))
        out[frame["file"]] = FringeResidual(float(coef[3]), abs(float(coef[3])) * rms / noise, rms / noise,
                                            int(good.sum()))
    return out


__all__ = ["FringeResidual", "empty_sky", "fringe_residuals"]
