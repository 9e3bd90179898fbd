"""Limiting magnitudes from injected artificial stars built from the stack's own PSF.

Stars of known magnitude are added, one at a time, to blank-sky places of the stack (no
catalog source within ``BLANK_FWHM`` FWHM, no unusable pixel in the aperture) and found and
measured again with the catalog's own detection (:func:`~potpyri_core.stages.photometry.
find_sources`, the same threshold and correlated-noise factor) and aperture photometry. Each
star is judged on a cut-out of the stack plus that star alone, so injected stars never crowd
one another and one pass suffices.

Two figures come out (both in the stack header, with their definitions):

``MC50INJ``
    the magnitude at which half of the injected stars are recovered (a logistic fit of the
    recovered fraction against magnitude), the completeness-50% limit;
``M5INJ``
    the magnitude at which the recovered aperture flux has S/N 5, the noise being the robust
    scatter of the measured minus injected total flux at each magnitude (a straight-line fit
    of log S/N against magnitude), independent of the ERROR plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from photutils.psf import ImagePSF
from scipy.optimize import curve_fit
from scipy.spatial import cKDTree

from potpyri_core.maskbits import UNUSABLE
from potpyri_core.params import PhotometryParams
from potpyri_core.stages.centroids import refine_centroids
from potpyri_core.stages.photometry import ApertureResult, _photometry, find_sources

MAG_OFFSETS = np.linspace(-1.2, 1.0, 12)
"""Injected magnitudes, relative to the analytic 5-sigma limit."""
BLANK_FWHM = 4.0
"""Injected stars are at least this many FWHM from any catalog source."""
CUTOUT_FWHM = 4.5
"""Half side of the cut-out each star is judged on (FWHM)."""
MATCH_FWHM = 0.6
"""A detection within this many FWHM of the injected position recovers it."""


@dataclass(frozen=True)
class InjectionResult:
    """Outcome of an injection-recovery run."""

    mags: np.ndarray
    """Injected magnitudes (AB), one per magnitude step."""
    recovered: np.ndarray
    """Fraction recovered per magnitude step."""
    snr: np.ndarray
    """Injected total flux / robust scatter of the measured total flux, per step."""
    m50: float
    """Completeness-50% magnitude (NaN if the fit fails)."""
    m5: float
    """Magnitude of S/N 5 (NaN if the fit fails)."""
    n_stars: int
    """Stars injected in all."""


def blank_positions(mask: np.ndarray, sources: np.ndarray, fwhm: float, radius: float, n: int,
                    rng: np.random.Generator) -> np.ndarray:
    """``n`` random positions (x, y) on usable sky away from sources and from the border.

    Raises
    ------
    RuntimeError
        When fewer than ``n`` such positions exist among many random tries.
    """
    ny, nx = mask.shape
    edge = int(np.ceil(CUTOUT_FWHM * fwhm)) + 2
    tries = rng.uniform([edge, edge], [nx - edge, ny - edge], size=(40 * n, 2))
    far = cKDTree(sources).query(tries)[0] > BLANK_FWHM * fwhm if len(sources) else np.ones(len(tries), bool)
    r = int(np.ceil(radius)) + 1
    ix, iy = np.round(tries[:, 0]).astype(int), np.round(tries[:, 1]).astype(int)
    clean = np.ones(len(tries), bool)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            clean &= (mask[iy + dy, ix + dx] & UNUSABLE) == 0
    good = tries[far & clean]
    if len(good) < n:
        raise RuntimeError(f"only {len(good)} blank places for {n} injected stars")
    return good[:n]


def _render(psf: ImagePSF, shape: tuple[int, int], x: float, y: float, flux: float) -> np.ndarray:
    """The PSF model of total ``flux`` centred at (x, y) of a cut-out of ``shape``."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return np.asarray(psf.evaluate(xx, yy, flux, x, y), float)


def _judge(data: np.ndarray, variance: np.ndarray, bad: np.ndarray, star: np.ndarray, centre: tuple[float, float],
           result: ApertureResult, snr: float) -> tuple[bool, float]:
    """Whether a star added to a cut-out is detected (and where), and its aperture flux."""
    image = data + star
    xy, _ = find_sources(image, variance, bad, result.fwhm, result.noise_correlation, snr)
    found = False
    position = np.array([centre])
    if len(xy):
        near = xy[np.hypot(xy[:, 0] - centre[0], xy[:, 1] - centre[1]) < 2 * result.fwhm]
        if len(near):
            refined = refine_centroids(np.where(bad, 0.0, image), near, result.fwhm)
            dist = np.hypot(refined[:, 0] - centre[0], refined[:, 1] - centre[1])
            best = int(np.argmin(dist))
            if dist[best] < MATCH_FWHM * result.fwhm:
                found, position = True, refined[best:best + 1]
    flux, err, _ = _photometry(image, variance, bad, position, result.radius)
    err = err * np.sqrt(max(result.noise_correlation, 1.0))
    forced, _, _ = _photometry(image, variance, bad, np.array([centre]), result.radius)
    detected = found and bool(flux[0] >= snr * err[0])
    return detected, float(forced[0]) * result.apcor


def _logistic(mag: np.ndarray, m50: float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp((mag - m50) / width))


def inject_and_recover(data: np.ndarray, variance: np.ndarray, mask: np.ndarray, result: ApertureResult,
                       zeropoint: float, m5_analytic: float, params: PhotometryParams = PhotometryParams()
                       ) -> InjectionResult:
    """Inject ``params.injection_stars`` stars per magnitude step and measure the limits.

    Parameters
    ----------
    data, variance, mask : ndarray
        Stack SCI (e-/s), variance and mask bits.
    result : ApertureResult
        The stack's photometry, with its ePSF (``epsf_image``).
    zeropoint : float
        ZPTMAG (AB).
    m5_analytic : float
        The analytic M5SIGMA; the magnitudes injected are ``m5_analytic + MAG_OFFSETS``.
    params : PhotometryParams
        ``injection_stars``, ``injection_seed``, ``detect_snr``.

    Raises
    ------
    ValueError
        Without an ePSF in ``result``.
    """
    if result.epsf_image is None:
        raise ValueError("no ePSF: artificial stars are built from it")
    psf = ImagePSF(np.asarray(result.epsf_image, float), oversampling=int(result.epsf_oversampling))
    rng = np.random.default_rng(params.injection_seed)
    mags = m5_analytic + MAG_OFFSETS
    n = params.injection_stars
    sources = np.column_stack([np.asarray(result.table["x"], float), np.asarray(result.table["y"], float)])
    places = blank_positions(mask, sources, result.fwhm, result.radius, n * len(mags), rng)
    half = int(np.ceil(CUTOUT_FWHM * result.fwhm))
    bad = (mask & UNUSABLE) > 0
    recovered = np.zeros(len(mags))
    snr = np.zeros(len(mags))
    for k, mag in enumerate(mags):
        flux = 10 ** (-0.4 * (mag - zeropoint))
        found, measured = [], []
        for x, y in places[k * n:(k + 1) * n]:
            ix, iy = round(x), round(y)
            cut = (slice(iy - half, iy + half + 1), slice(ix - half, ix + half + 1))
            centre = (x - ix + half, y - iy + half)
            star = _render(psf, (2 * half + 1, 2 * half + 1), *centre, flux)
            ok, total = _judge(np.asarray(data[cut], float), np.asarray(variance[cut], float), bad[cut], star, centre,
                               result, params.detect_snr)
            found.append(ok)
            measured.append(total)
        recovered[k] = np.mean(found)
        scatter = 1.4826 * np.median(np.abs(np.asarray(measured) - np.median(measured)))
        snr[k] = flux / scatter if scatter > 0 else np.inf
    return InjectionResult(mags, recovered, snr, _fit_m50(mags, recovered), _fit_m5(mags, snr),
                           n * len(mags))


def _fit_m50(mags: np.ndarray, recovered: np.ndarray) -> float:
    """Magnitude of 50% recovery from a logistic fit (NaN when it fails or is unbracketed)."""
    if not (recovered.max() > 0.5 > recovered.min()):
        return float("nan")
    start = float(mags[np.argmin(np.abs(recovered - 0.5))])
    try:
        (m50, _), _ = curve_fit(_logistic, mags, recovered, p0=(start, 0.2), bounds=([mags[0], 0.01], [mags[-1], 2.0]))
    except (RuntimeError, ValueError):
        return float("nan")
    return float(m50)


def _fit_m5(mags: np.ndarray, snr: np.ndarray) -> float:
    """Magnitude of S/N 5 from a straight line fitted to log10 S/N against magnitude."""
    ok = np.isfinite(snr) & (snr > 0)
    if ok.sum() < 3:
        return float("nan")
    slope, intercept = np.polyfit(mags[ok], np.log10(snr[ok]), 1)
    return float((np.log10(5.0) - intercept) / slope) if slope < 0 else float("nan")
