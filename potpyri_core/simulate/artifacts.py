"""Detector and sky artefacts: cosmic rays, satellite trails, bad/hot columns."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .scene import SceneConfig

#: Response of a dead column relative to its neighbours.
DEAD_COLUMN_RESPONSE = 0.05


def choose_columns(cfg: SceneConfig,
                   rng: np.random.Generator) -> tuple[list[int], dict[int, float]]:
    """Pick dead and hot columns away from gaps, edges and each other.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration (``n_bad_columns``, ``n_hot_columns``, gaps).
    rng : numpy.random.Generator
        Random stream.

    Returns
    -------
    dead : list of int
        Dead columns (response ``DEAD_COLUMN_RESPONSE`` via the flat).
    hot : dict of int to float
        Hot column -> constant extra charge in e- (200-600), present in
        every frame including biases.
    """
    gap = cfg.gap_mask()
    allowed = ~gap
    # Stay >= 3 columns away from gaps and edges.
    near = np.convolve(gap.astype(float), np.ones(7), mode="same") > 0
    allowed &= ~near
    allowed[:5] = allowed[-5:] = False
    n = cfg.n_bad_columns + cfg.n_hot_columns
    chosen: list[int] = []
    candidates = np.flatnonzero(allowed)
    for col in rng.permutation(candidates):
        if all(abs(int(col) - c) > 4 for c in chosen):
            chosen.append(int(col))
        if len(chosen) == n:
            break
    dead = sorted(chosen[:cfg.n_bad_columns])
    hot = {c: float(rng.uniform(200.0, 600.0)) for c in sorted(chosen[cfg.n_bad_columns:])}
    return dead, hot


def cosmic_ray_image(shape: tuple[int, int], n: int, rng: np.random.Generator) -> np.ndarray:
    """Charge image (e-) of ``n`` cosmic-ray events; not PSF-convolved.

    About 80 % of events are compact hits covering 1-4 pixels with a total
    charge of typically 400-6000 e- (log-normal, median 1500 e-); the rest
    are straight tracks of 3-25 pixels depositing 300-1500 e- per pixel of
    path length.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)``.
    n : int
        Number of events.
    rng : numpy.random.Generator
        Random stream.

    Returns
    -------
    numpy.ndarray
        float32 charge image.
    """
    ny, nx = shape
    out = np.zeros(ny * nx, np.float64)
    is_track = rng.uniform(size=n) < 0.2
    n_hit, n_trk = int((~is_track).sum()), int(is_track.sum())

    # Compact hits: a 2x2 block (random quadrant) with 1-4 lit pixels.
    y0, x0 = rng.integers(0, ny, n_hit), rng.integers(0, nx, n_hit)
    total = np.clip(rng.lognormal(math.log(1500.0), 0.7, n_hit), 200.0, 3e4)
    npix = rng.choice([1, 2, 3, 4], size=n_hit, p=[0.35, 0.3, 0.2, 0.15])
    weight = rng.gamma([3.0, 1.0, 1.0, 1.0], size=(n_hit, 4))
    weight[np.arange(4)[None, :] >= npix[:, None]] = 0.0
    weight /= weight.sum(axis=1, keepdims=True)
    sy = rng.choice([-1, 1], n_hit)
    sx = rng.choice([-1, 1], n_hit)
    order = np.argsort(rng.uniform(size=(n_hit, 3)), axis=1) + 1
    base = np.array([(0, 0), (0, 1), (1, 0), (1, 1)])
    offs = base[np.concatenate([np.zeros((n_hit, 1), int), order], axis=1)]
    py = y0[:, None] + offs[..., 0] * sy[:, None]
    px = x0[:, None] + offs[..., 1] * sx[:, None]
    _deposit(out, py.ravel(), px.ravel(), (weight * total[:, None]).ravel(), ny, nx)

    # Tracks: sample the path at 0.25 px steps.
    length = rng.uniform(3.0, 25.0, n_trk)
    dedx = np.clip(rng.lognormal(math.log(600.0), 0.4, n_trk), 300.0, 1500.0)
    theta = rng.uniform(0.0, math.pi, n_trk)
    ty, tx = rng.uniform(0, ny, n_trk), rng.uniform(0, nx, n_trk)
    nstep = np.ceil(length * 4).astype(int) + 1
    ev = np.repeat(np.arange(n_trk), nstep)
    frac = (np.arange(ev.size) - np.repeat(np.cumsum(nstep) - nstep, nstep)) / (nstep[ev] - 1)
    s = (frac - 0.5) * length[ev]
    qy = np.round(ty[ev] + s * np.sin(theta[ev])).astype(int)
    qx = np.round(tx[ev] + s * np.cos(theta[ev])).astype(int)
    _deposit(out, qy, qx, dedx[ev] * length[ev] / nstep[ev], ny, nx)
    return out.reshape(ny, nx).astype(np.float32)


def _deposit(flat_out: np.ndarray, y: np.ndarray, x: np.ndarray, q: np.ndarray,
             ny: int, nx: int) -> None:
    ok = (y >= 0) & (y < ny) & (x >= 0) & (x < nx) & (q > 0)
    flat_out += np.bincount(y[ok] * nx + x[ok], weights=q[ok], minlength=ny * nx)


def add_cosmic_rays(image: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Add ``n`` cosmic-ray events to ``image`` in place.

    Parameters
    ----------
    image : numpy.ndarray
        Image in electrons (modified in place).
    n : int
        Number of events.
    rng : numpy.random.Generator
        Random stream.

    Returns
    -------
    numpy.ndarray
        Boolean mask of every pixel that received CR charge.
    """
    cr = cosmic_ray_image(image.shape, n, rng)
    image += cr
    return cr > 0


def satellite_trail(shape: tuple[int, int], rng: np.random.Generator, peak_e: float,
                    fwhm_px: float) -> np.ndarray:
    """Straight satellite trail crossing the whole grid.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)``.
    rng : numpy.random.Generator
        Random stream (line position and angle).
    peak_e : float
        Peak surface brightness (e- per pixel) on the trail axis.
    fwhm_px : float
        Gaussian cross-track FWHM (pixels).

    Returns
    -------
    numpy.ndarray
        float64 trail image (e-), before flat-fielding.
    """
    ny, nx = shape
    yc = rng.uniform(0.25, 0.75) * ny
    xc = rng.uniform(0.25, 0.75) * nx
    theta = rng.uniform(0.0, math.pi)
    sigma = fwhm_px / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    d = ((np.arange(nx)[None, :] - xc) * math.sin(theta)
         - (np.arange(ny)[:, None] - yc) * math.cos(theta))
    return peak_e * np.exp(-0.5 * (d / sigma) ** 2)


__all__ = ["DEAD_COLUMN_RESPONSE", "add_cosmic_rays", "choose_columns", "cosmic_ray_image",
           "satellite_trail"]
