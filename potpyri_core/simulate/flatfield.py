"""Flat-field response pattern of the simulated detector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .artifacts import DEAD_COLUMN_RESPONSE

if TYPE_CHECKING:
    from .scene import SceneConfig


def flat_pattern(cfg: SceneConfig, rng: np.random.Generator,
                 dead_columns: Sequence[int] | None = None) -> np.ndarray:
    """Multiplicative detector+optics response on the focal-plane grid.

    Components: chip-to-chip QE offsets (2 % rms per gap-separated chip),
    vignetting (4 % quadratic fall-off to the grid corner), 3-6 dust donuts
    (annuli of 2-5 % depth, outer radii 10-40 px, central hole 40 % of the
    radius), 1 % rms pixel-to-pixel noise and dead columns
    (``DEAD_COLUMN_RESPONSE``).  Normalised to median exactly 1 over the
    non-gap pixels; gap columns are 0.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration (shape, gaps).
    rng : numpy.random.Generator
        Random stream (draw once per night).
    dead_columns : sequence of int, optional
        Dead columns; default none.

    Returns
    -------
    numpy.ndarray
        float32 pattern of shape ``cfg.shape``.
    """
    ny, nx = cfg.shape
    gap = cfg.gap_mask()
    yy = np.arange(ny, dtype=np.float64)[:, None]
    xx = np.arange(nx, dtype=np.float64)[None, :]
    xc, yc = cfg.centre_px
    r2 = ((xx - xc) ** 2 + (yy - yc) ** 2) / cfg.corner_radius_px**2

    chip = np.ones(nx)
    edges = np.flatnonzero(np.diff(np.concatenate([[1], gap.astype(int), [1]])) != 0)
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        chip[start:stop] = 1.0 + 0.02 * rng.standard_normal()
    pattern = (1.0 - 0.04 * r2) * chip[None, :]

    for _ in range(int(rng.integers(3, 7))):
        radius = rng.uniform(10.0, 40.0)
        depth = rng.uniform(0.02, 0.05)
        dx0, dy0 = rng.uniform(radius, nx - radius), rng.uniform(radius, ny - radius)
        y0, y1 = max(int(dy0 - radius - 4), 0), min(int(dy0 + radius + 5), ny)
        x0, x1 = max(int(dx0 - radius - 4), 0), min(int(dx0 + radius + 5), nx)
        rr = np.hypot(xx[:, x0:x1] - dx0, yy[y0:y1] - dy0)
        edge = 1.5
        annulus = (_logistic((radius - rr) / edge) - _logistic((0.4 * radius - rr) / edge))
        pattern[y0:y1, x0:x1] *= 1.0 - depth * annulus

    pattern *= 1.0 + 0.01 * rng.standard_normal((ny, nx))
    for col in dead_columns or ():
        pattern[:, col] *= DEAD_COLUMN_RESPONSE
    pattern[:, gap] = 0.0
    pattern /= np.median(pattern[:, ~gap])
    out = pattern.astype(np.float32)
    out /= np.median(out[:, ~gap])
    return out


def _logistic(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


__all__ = ["flat_pattern"]

