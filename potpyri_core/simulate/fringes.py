"""Fringes: an additive interference pattern of the night-sky lines in thin CCDs.

The pattern is fixed in detector coordinates (it follows the CCD's thickness), different on
every CCD, and its amplitude in electrons is a fraction of the frame's sky level that varies a
little from frame to frame (the emission lines vary against the continuum). It is drawn
here from its own random streams, so a night without fringes is unchanged, and it knows
nothing of the reduction.

The model: on each CCD (the columns between chip gaps) the phase is a sum of a few long
plane waves, ``phi = 2 pi sum_m A_m cos(k_m . r + psi_m)``, whose local gradient gives
fringes of about :data:`FRINGE_PERIOD_PX` unbinned pixels that curve and widen like
thickness contours; the pattern is ``cos(phi)``, between -1 and 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .geometry import true_runs

if TYPE_CHECKING:
    from .scene import SceneConfig

FRINGE_AMPLITUDE = {"i": 0.012, "I": 0.012, "z": 0.03}
"""Peak fringe amplitude as a fraction of the sky, by band (a few % of the sky in z and ~1% in
i, the size issue 9 asks the simulated fringes to have)."""
FRINGE_PERIOD_PX = 110.0
"""Typical fringe spacing in unbinned pixels."""
FRINGE_VARIATION = 0.12
"""Frame-to-frame rms of the fringe amplitude relative to the sky."""
_WAVES = 4
"""Plane waves that make each CCD's phase."""
_WAVELENGTH_PX = (700.0, 2500.0)
"""Range of the waves' wavelengths (unbinned pixels)."""


def ccd_columns(cfg: SceneConfig) -> list[tuple[int, int]]:
    """Column ranges ``[x0, x1)`` of the CCDs: the columns between chip gaps."""
    return true_runs(~cfg.gap_mask())


def fringe_pattern(cfg: SceneConfig) -> np.ndarray:
    """The night's fringe pattern on the focal-plane grid (between -1 and 1, 0 in the gaps).

    Parameters
    ----------
    cfg : SceneConfig
        Configuration (``seed``, ``shape``, gaps and the binned pixel size).

    Returns
    -------
    numpy.ndarray
        float32 pattern; the fringe in electrons is this times the frame's
        :func:`fringe_electrons`.
    """
    binning = cfg.pixel_size_um / 15.0
    out = np.zeros(cfg.shape, np.float32)
    vv, uu = np.mgrid[0:cfg.ny, 0:cfg.nx].astype(np.float64) * binning
    for number, (x0, x1) in enumerate(ccd_columns(cfg)):
        rng = np.random.default_rng([cfg.seed, 4, number])
        u, v = uu[:, x0:x1], vv[:, x0:x1]
        phase = np.zeros(u.shape)
        for _ in range(_WAVES):
            wavelength = rng.uniform(*_WAVELENGTH_PX)
            angle = rng.uniform(0.0, np.pi)
            k = 2.0 * np.pi / wavelength
            # amplitude A_m with A_m k_m = 1 / period: each wave alone makes fringes of the period
            amplitude = wavelength / (2.0 * np.pi * FRINGE_PERIOD_PX) * np.sqrt(2.0 / _WAVES)
            phase += amplitude * np.cos(k * (u * np.cos(angle) + v * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
        out[:, x0:x1] = np.cos(2.0 * np.pi * phase)
    return out


def fringe_electrons(cfg: SceneConfig, index: int, sky_e: float) -> float:
    """Peak fringe amplitude (e-) of science frame ``index`` whose sky is ``sky_e`` per pixel:
    ``cfg.fringe_amplitude`` times the sky, times a frame factor ``1 + FRINGE_VARIATION * N(0, 1)``
    from its own random stream."""
    if cfg.fringe_amplitude <= 0:
        return 0.0
    factor = 1.0 + FRINGE_VARIATION * np.random.default_rng([cfg.seed, 5, index]).standard_normal()
    return float(cfg.fringe_amplitude * sky_e * max(factor, 0.5))


__all__ = ["FRINGE_AMPLITUDE", "FRINGE_PERIOD_PX", "ccd_columns", "fringe_electrons", "fringe_pattern"]
