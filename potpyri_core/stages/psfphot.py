"""PSF photometry of a stack with an empirical PSF (ePSF) built from its own stars.

The ePSF is built by :class:`photutils.psf.EPSFBuilder` from bright, isolated, round,
clean stars of the aperture catalog (:func:`select_psf_stars`, :func:`build_epsf`) and is
normalised to unit *total* flux: the light outside its stamp is estimated with a Moffat fit
to its growth curve (:func:`~potpyri_core.stages.photometry.light_beyond`, as for the
aperture correction), so a fitted flux is the total flux of the source in e-/s and
``m = -2.5 log10(flux) + ZPTMAG`` holds for PSF magnitudes as for aperture ones.

:func:`psf_photometry` fits the ePSF (position and flux, each source on its own, no local
background: the frames' sky models are the background) at the aperture positions with
:class:`photutils.psf.PSFPhotometry` and returns the table and the residual image.
:func:`psf_photometry_stack` runs both on a stack and fills the PSF fields of an
:class:`~potpyri_core.stages.photometry.ApertureResult`.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from astropy.modeling.fitting import LevMarLSQFitter
from astropy.modeling.models import Moffat2D
from astropy.nddata import NDData
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from photutils.aperture import CircularAperture, aperture_photometry
from photutils.psf import EPSFBuilder, ImagePSF, PSFPhotometry, extract_stars
from scipy.spatial import cKDTree

from potpyri_core.maskbits import UNUSABLE
from potpyri_core.stages.photometry import ApertureResult, light_beyond
from potpyri_core.stages.sourcecat import SourceFlag

log = logging.getLogger("potpyri")

EPSF_OVERSAMPLING = 2
"""Oversampling of the ePSF relative to the stack pixels."""
EPSF_STAMP_FWHM = 6.0
"""Side of the star stamps (and of the ePSF) in FWHM."""
EPSF_MAXITERS = 10
"""Most ePSF build iterations; the build stops earlier once the star centres move less than
photutils' ``center_accuracy`` (5 iterations on the unit-test field; 4 never converged)."""
MIN_PSF_STARS = 8
"""Fewer usable stars than this: no ePSF (and no PSF photometry)."""
MAX_PSF_STARS = 50
"""At most this many stars (the brightest that qualify) build the ePSF."""
PSF_SNR_MIN = 5.0
"""Aperture S/N above which a source is PSF-fitted."""
PHOTUTILS_FLAG_MAP: dict[int, SourceFlag] = {
    1: SourceFlag.PSF_PARTIAL, 2: SourceFlag.PSF_PARTIAL, 4: SourceFlag.NEGATIVE, 8: SourceFlag.PSF_NOCONV,
    16: SourceFlag.PSF_NOCONV, 32: SourceFlag.PSF_SHIFTED, 64: SourceFlag.PSF_PARTIAL, 128: SourceFlag.PSF_PARTIAL,
    256: SourceFlag.PSF_PARTIAL, 512: SourceFlag.PSF_NOCONV, 1024: SourceFlag.PSF_NOCONV, 2048: SourceFlag.PSF_NOCONV,
}
"""photutils PSF flag bit (:func:`photutils.psf.decode_psf_flags`) -> our named bit; bit 32
(a fitted parameter at its bound) is the position reaching its 1-FWHM bound."""


def _odd(value: float) -> int:
    """The odd integer nearest ``value`` (at least 3)."""
    n = round(value)
    return max(3, n if n % 2 else n + 1)


def select_psf_stars(table: Table, fwhm: float, snr_min: float = 50.0, isolation_fwhm: float = 4.0,
                     max_elongation: float = 1.2, nmax: int = MAX_PSF_STARS) -> np.ndarray:
    """Indices of the aperture sources fit to build an ePSF, brightest first.

    Parameters
    ----------
    table : astropy.table.Table
        Aperture catalog (``x``, ``y``, ``flux``, ``snr``, ``elongation``, ``flags``) from
        :func:`~potpyri_core.stages.photometry.aperture_photometry_stack`.
    fwhm : float
        Stellar FWHM (pixels).
    snr_min : float
        Minimum aperture S/N.
    isolation_fwhm : float
        Minimum distance to the nearest detected source, in FWHM.
    max_elongation : float
        Maximum elongation (rejects galaxies and blends).
    nmax : int
        Maximum number of stars returned.

    Returns
    -------
    ndarray of int
        Row indices into ``table``. Saturated or masked sources (``flags != 0``) are excluded.
    """
    if len(table) < 2:
        return np.zeros(0, int)
    xy = np.column_stack([np.asarray(table["x"], float), np.asarray(table["y"], float)])
    nearest, _ = cKDTree(xy).query(xy, k=2)
    use = (np.asarray(table["snr"]) > snr_min) & (np.asarray(table["flags"]) == 0)
    use &= nearest[:, 1] > isolation_fwhm * fwhm
    use &= np.asarray(table["elongation"]) < max_elongation
    use &= np.isfinite(np.asarray(table["flux"], float))
    rows = np.flatnonzero(use)
    return rows[np.argsort(-np.asarray(table["flux"], float)[rows])][:nmax]


def normalise_epsf(image: np.ndarray, oversampling: int, fwhm: float) -> tuple[np.ndarray, float]:
    """Scale an oversampled ePSF image to unit total flux, wings beyond its stamp included.

    The growth curve of the image (radii 0.5-2.75 FWHM) is fitted with a Moffat profile
    (:func:`~potpyri_core.stages.photometry.light_beyond`); the image is scaled so that its
    light within 2.75 FWHM is the Moffat fraction there.

    Parameters
    ----------
    image : ndarray
        The ePSF sampled on a grid ``oversampling`` times finer than the stack pixels.
    oversampling : int
        Oversampling factor.
    fwhm : float
        Stellar FWHM (stack pixels).

    Returns
    -------
    image : ndarray
        The scaled image: its sum divided by ``oversampling**2`` is the fraction of the
        light within the stamp.
    fraction : float
        That fraction.
    """
    image = np.asarray(image, float)
    centre = ((image.shape[1] - 1) / 2.0, (image.shape[0] - 1) / 2.0)
    half = (min(image.shape) - 1) / 2.0 / oversampling
    top = min(2.75 * fwhm, half - 0.5)
    radii = np.array([r for r in (0.5, 0.75, 1.0, 1.5, 2.0, 2.5) if r * fwhm < top] + [top / fwhm]) * fwhm
    sums = np.array([float(aperture_photometry(image, CircularAperture(centre, r=r * oversampling))["aperture_sum"][0])
                     for r in radii])
    beyond = light_beyond(radii, sums / sums[-1], fwhm)
    scale = oversampling**2 * (1.0 - beyond) / sums[-1]
    image = image * scale
    return image, float(image.sum() / oversampling**2)


def build_epsf(data: np.ndarray, error: np.ndarray, mask: np.ndarray, stars_xy: np.ndarray, fwhm: float,
               oversampling: int = EPSF_OVERSAMPLING, maxiters: int = EPSF_MAXITERS,
               min_stars: int = MIN_PSF_STARS, smoothing_kernel: str | None = "quadratic") -> tuple[ImagePSF, Table]:
    """Build an ePSF from stars of an image, normalised to unit total flux.

    Parameters
    ----------
    data : ndarray
        Background-subtracted image (e-/s).
    error : ndarray
        1-sigma error of ``data`` (not used by the builder; kept for a uniform API and to
        report the S/N of the stars).
    mask : ndarray of bool
        True where a pixel is unusable.
    stars_xy : ndarray, shape (n, 2)
        Positions (x, y; 0-based pixels) of candidate stars, best first (e.g. from
        :func:`select_psf_stars`). Stars whose stamp leaves the image or that have a masked
        pixel within 2 FWHM of their centre are dropped.
    fwhm : float
        Stellar FWHM (pixels); the stamps are ``EPSF_STAMP_FWHM`` FWHM on a side.
    oversampling : int
        ePSF oversampling factor.
    maxiters : int
        ePSF build iterations.
    min_stars : int
        Fewer usable stars raise :class:`ValueError`.
    smoothing_kernel : {'quadratic', 'quartic'} or None
        Smoothing of the ePSF at each iteration. The quadratic kernel suits oversampling 2:
        with the quartic one (made for oversampling 4) fitted positions of bright synthetic
        stars kept 0.05 px pixel-phase errors after 4 iterations (0.01 px with quadratic).

    Returns
    -------
    epsf : photutils.psf.ImagePSF
        The ePSF; ``epsf.data`` is the oversampled image, normalised so that a fitted
        ``flux`` is the total flux.
    stars : astropy.table.Table
        The stars used: ``index`` (row of ``stars_xy``), ``x``, ``y`` (input), ``x_fit``, ``y_fit``, ``flux_fit`` (builder's
        last fit, stamp flux), ``snr`` and ``excluded`` (dropped by the builder).

    Raises
    ------
    ValueError
        Fewer than ``min_stars`` usable stars.
    """
    data = np.asarray(data, float)
    mask = np.asarray(mask, bool)
    xy = np.asarray(stars_xy, float).reshape(-1, 2)
    size = _odd(EPSF_STAMP_FWHM * fwhm)
    half = size // 2
    ny, nx = data.shape
    ix, iy = np.round(xy[:, 0]).astype(int), np.round(xy[:, 1]).astype(int)
    inside = (ix - half >= 0) & (iy - half >= 0) & (ix + half < nx) & (iy + half < ny)
    core = np.zeros(len(xy), bool)
    core_ap = CircularAperture(xy[inside], r=2.0 * fwhm) if inside.any() else None
    if core_ap is not None:
        core[inside] = np.asarray(aperture_photometry(mask.astype(float), core_ap, method="center")["aperture_sum"]) == 0
    keep = inside & core
    if keep.sum() < min_stars:
        raise ValueError(f"only {int(keep.sum())} clean, isolated stars for the ePSF (need {min_stars})")
    used = np.flatnonzero(keep)
    xy = xy[keep]
    clean = np.where(mask, 0.0, data)
    catalog = Table({"x": xy[:, 0], "y": xy[:, 1]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        stars = extract_stars(NDData(clean, mask=mask), catalog, size=size)
        builder = EPSFBuilder(oversampling=oversampling, maxiters=maxiters, progress_bar=False,
                              smoothing_kernel=smoothing_kernel,
                              recentering_maxiters=10, fit_shape=_odd(1.5 * fwhm),
                              recentering_boxsize=_odd(1.5 * fwhm))
        built = builder(stars)
    image, fraction = normalise_epsf(built.epsf.data, oversampling, fwhm)
    epsf = ImagePSF(image, oversampling=oversampling)
    fitted = built.fitted_stars.all_stars
    excluded = np.zeros(len(fitted), bool)
    excluded[list(built.excluded_star_indices)] = True
    centres = np.array([s.center for s in fitted])
    err = np.asarray(error, float)
    sig = np.sqrt(np.asarray(aperture_photometry(np.where(mask, 0.0, err**2), CircularAperture(xy, r=fwhm))["aperture_sum"]))
    sums = np.asarray(aperture_photometry(clean, CircularAperture(xy, r=fwhm))["aperture_sum"])
    table = Table({"index": used, "x": xy[:, 0], "y": xy[:, 1], "x_fit": centres[:, 0], "y_fit": centres[:, 1],
                   "flux_fit": np.array([s.flux for s in fitted]),
                   "snr": sums / np.where(sig > 0, sig, np.inf), "excluded": excluded})
    table.meta.update({"OVERSAMP": oversampling, "NITER": built.iterations, "CONVERGE": bool(built.converged),
                       "PSFFRAC": fraction})
    return epsf, table


def epsf_fwhm(image: np.ndarray, oversampling: int) -> float:
    """FWHM (stack pixels) of an oversampled PSF image from a fitted circular Moffat profile.

    ``FWHM = 2 alpha sqrt(2^(1/beta) - 1)`` of :class:`astropy.modeling.models.Moffat2D`
    (amplitude, centre, alpha and beta free) fitted to the whole image.
    """
    image = np.asarray(image, float)
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    peak_y, peak_x = np.unravel_index(np.argmax(image), image.shape)
    area = np.count_nonzero(image > 0.5 * image.max())
    start = Moffat2D(amplitude=image.max(), x_0=peak_x, y_0=peak_y, gamma=max(2.0 * np.sqrt(area / np.pi), 1.0),
                     alpha=3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        fitted = LevMarLSQFitter()(start, xx, yy, image, maxiter=200)
    return float(fitted.fwhm) / oversampling


def psf_photometry(data: np.ndarray, error: np.ndarray, mask: np.ndarray, epsf: ImagePSF, xy: np.ndarray,
                   fwhm: float, flux_init: np.ndarray | None = None, wcs: WCS | None = None,
                   noise_correlation: float = 1.0) -> tuple[Table, np.ndarray]:
    """Fit the ePSF at given positions; return the photometry and the residual image.

    Each source is fitted alone (position and flux) in a ``fit_shape`` box about 2 FWHM on a
    side, with no local background (the image is background-subtracted); the fitted
    position may move at most 1 FWHM from the initial one.

    Parameters
    ----------
    data : ndarray
        Background-subtracted image (e-/s).
    error : ndarray
        1-sigma error of ``data`` (weights of the fit, and the flux errors).
    mask : ndarray of bool
        True where a pixel is unusable.
    epsf : photutils.psf.ImagePSF
        PSF model normalised to unit total flux (from :func:`build_epsf`).
    xy : ndarray, shape (n, 2)
        Initial positions (x, y; 0-based pixels).
    fwhm : float
        Stellar FWHM (pixels).
    flux_init : ndarray, optional
        Initial fluxes (else aperture sums within 1.5 FWHM).
    wcs : astropy.wcs.WCS, optional
        For the ``ra``, ``dec`` columns (NaN without).
    noise_correlation : float
        Ratio of the real to the predicted variance of a sum over a PSF-sized area
        (resampled stacks: > 1); the flux errors are scaled by its square root.

    Returns
    -------
    table : astropy.table.Table
        ``x``, ``y``, ``ra``, ``dec``, ``flux`` (total, e-/s), ``flux_err``, ``snr``,
        ``mag_inst``, ``mag_err``, ``x_err``, ``y_err``, ``qfit``, ``cfit``,
        ``reduced_chi2``, ``npix`` and ``flags`` (:class:`~potpyri_core.stages.sourcecat.SourceFlag`
        bits translated from photutils' by :data:`PHOTUTILS_FLAG_MAP`), in the order of ``xy``.
    residual : ndarray (float32)
        ``data`` minus the fitted models.
    """
    data = np.asarray(data, float)
    mask = np.asarray(mask, bool)
    error = np.asarray(error, float)
    xy = np.asarray(xy, float).reshape(-1, 2)
    good_err = np.isfinite(error) & (error > 0)
    fit_mask = mask | ~good_err | ~np.isfinite(data)
    error = np.where(good_err, error, np.inf)
    init = Table({"x": xy[:, 0], "y": xy[:, 1]})
    if flux_init is not None:
        init["flux"] = np.where(np.isfinite(flux_init) & (np.asarray(flux_init) > 0), flux_init, 1.0)
    # Levenberg-Marquardt: half the time of the default trust-region fitter, same fluxes
    phot = PSFPhotometry(epsf, _odd(2.0 * fwhm), fitter=LevMarLSQFitter(), xy_bounds=float(fwhm),
                         aperture_radius=1.5 * fwhm, fitter_maxiters=50, progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        result = phot(np.where(fit_mask, 0.0, data), mask=fit_mask, error=error, init_params=init)
        residual = phot.make_residual_image(data)
    x = np.asarray(result["x_fit"], float)
    y = np.asarray(result["y_fit"], float)
    flux = np.asarray(result["flux_fit"], float)
    flux_err = np.asarray(result["flux_err"], float) * np.sqrt(max(noise_correlation, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(flux_err > 0, flux / flux_err, np.nan)
        mag = np.where(flux > 0, -2.5 * np.log10(flux), np.nan)
        mag_err = 1.0857 * flux_err / flux
    if wcs is not None:
        sky = wcs.pixel_to_world(x, y)
        ra, dec = np.asarray(sky.ra.deg), np.asarray(sky.dec.deg)
    else:
        ra = dec = np.full(len(x), np.nan)
    table = Table({
        "x": x, "y": y, "ra": ra, "dec": dec, "flux": flux, "flux_err": flux_err, "snr": snr,
        "mag_inst": mag, "mag_err": mag_err,
        "x_err": np.asarray(result["x_err"], float), "y_err": np.asarray(result["y_err"], float),
        "qfit": np.asarray(result["qfit"], float), "cfit": np.asarray(result["cfit"], float),
        "reduced_chi2": np.asarray(result["reduced_chi2"], float),
        "npix": np.asarray(result["n_pixels_fit"], int), "flags": translate_flags(np.asarray(result["flags"], int)),
    })
    return table, np.asarray(residual, np.float32)


def translate_flags(photutils_flags: np.ndarray) -> np.ndarray:
    """photutils PSF fit flags as :class:`~potpyri_core.stages.sourcecat.SourceFlag` bits."""
    out = np.zeros(len(photutils_flags), int)
    for bit, flag in PHOTUTILS_FLAG_MAP.items():
        out |= np.where(photutils_flags & bit, int(flag), 0)
    return out


def psf_photometry_stack(data: np.ndarray, variance: np.ndarray, mask: np.ndarray, wcs: WCS,
                         result: ApertureResult, snr_min: float = PSF_SNR_MIN,
                         max_shift_fwhm: float = 0.3) -> ApertureResult:
    """Build the ePSF of a stack and PSF-fit its sources; fill the PSF fields of ``result``.

    Parameters
    ----------
    data, variance, mask : ndarray
        Stack SCI (e-/s), variance and mask bits.
    wcs : astropy.wcs.WCS
        Stack WCS.
    result : ApertureResult
        Aperture photometry of the stack (positions, fluxes, FWHM, noise correlation).
    snr_min : float
        Sources with an aperture S/N above this are fitted (all of them).
    max_shift_fwhm : float
        A fit whose centre ends farther than this (in FWHM) from the aperture position is
        flagged ``PSF_SHIFTED``: it fitted a neighbour or noise, not the source.

    Returns
    -------
    ApertureResult
        ``result`` with ``psf_table`` (plus ``ap_index``, the row of the aperture table, and
        ``shift``, the distance of the fit from the aperture position; the flags also carry
        the aperture row's MASKED, SATURATED and CROWDED bits), ``psf_stars``, ``epsf_image``, ``epsf_oversampling`` and ``residual`` set;
        unchanged (PSF fields None) if the ePSF cannot be built (too few stars), which is
        logged.
    """
    bad = (np.asarray(mask) & UNUSABLE) > 0
    error = np.sqrt(np.clip(variance, 0, None))
    table = result.table
    rows = select_psf_stars(table, result.fwhm)
    xy_all = np.column_stack([np.asarray(table["x"], float), np.asarray(table["y"], float)])
    try:
        epsf, stars = build_epsf(data, error, bad, xy_all[rows], result.fwhm)
    except ValueError as exc:
        log.warning("no PSF photometry: %s", exc)
        return result
    stars["ap_index"] = rows[np.asarray(stars["index"], int)]
    stars.remove_column("index")
    snr = np.asarray(table["snr"], float)
    fit_rows = np.flatnonzero(snr > snr_min)
    psf_table, residual = psf_photometry(data, error, bad, epsf, xy_all[fit_rows], result.fwhm,
                                         flux_init=np.asarray(table["flux"], float)[fit_rows], wcs=wcs,
                                         noise_correlation=result.noise_correlation)
    psf_table["ap_index"] = fit_rows
    psf_table["shift"] = np.hypot(np.asarray(psf_table["x"]) - xy_all[fit_rows, 0],
                                  np.asarray(psf_table["y"]) - xy_all[fit_rows, 1])
    inherited = np.asarray(table["flags"], int)[fit_rows] & int(SourceFlag.MASKED | SourceFlag.SATURATED
                                                                  | SourceFlag.CROWDED)
    moved = ~(np.asarray(psf_table["shift"]) <= max_shift_fwhm * result.fwhm)
    psf_table["flags"] = (np.asarray(psf_table["flags"], int) | inherited
                          | np.where(moved, int(SourceFlag.PSF_SHIFTED), 0))
    result.psf_table = psf_table
    result.psf_stars = stars
    result.epsf_image = np.asarray(epsf.data, np.float32)
    result.epsf_oversampling = int(stars.meta["OVERSAMP"])
    result.residual = residual
    return result
