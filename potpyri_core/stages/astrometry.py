"""Astrometry of one frame: a blind solution from the header pointing, then a fit with only the
freedom the matched stars can constrain.

Backends are tried in the order of :attr:`AstrometryParams.backends`:

``catalog``
    detected stars matched to the reference catalog cone around the header pointing by
    similarity-invariant triangles (:mod:`~potpyri_core.stages.patternmatch`): any rotation
    and parity, pointing errors up to ``max_offset_arcmin``, scale known to
    ``scale_tolerance``; no index files.
``astrometry.net``
    ``solve-field`` on the frame's own detected star list, hinted by pointing and scale
    (:mod:`~potpyri_core.stages.astrometry_net`), with index files built for the field.

The blind solution is then refined against the reference catalog (positions at the epoch of
the frame) by :func:`~potpyri_core.stages.wcsfit.fit_wcs` on top of the instrument's known
distortion, and checked: enough matched stars, beyond chance, a small RMS and the expected
pixel scale.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from photutils.segmentation import SegmentationImage, SourceCatalog, deblend_sources, detect_sources
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage
from scipy.stats import poisson

from potpyri_core.frames import Frame
from potpyri_core.maskbits import UNUSABLE, Bit
from potpyri_core.settings import InstrumentSettings
from potpyri_core.stages import astrometry_net
from potpyri_core.stages.centroids import refine_centroids
from potpyri_core.stages.header_wcs import is_celestial, radial_sip, reference_pixel
from potpyri_core.stages.patternmatch import NoMatchError, match_points
from potpyri_core.stages.wcsfit import FitError, FitResult, fit_wcs, focal_offsets, from_tangent_plane, tangent_plane


class AstrometryError(RuntimeError):
    """The WCS could not be solved or failed its checks (the message says why)."""


class AstrometryParams(BaseModel):
    """Parameters of the astrometry step (core defaults; instruments and users override)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backends: tuple[Literal["catalog", "astrometry.net"], ...] = ("catalog", "astrometry.net")
    """Blind solvers tried in order until one passes."""
    max_offset_arcmin: float = Field(default=10.0, gt=0)
    """Largest pointing error searched (arcmin)."""
    max_rotation_deg: float | Literal["any"] = "any"
    """Largest position-angle error searched (deg), or any rotation."""
    allow_flip: bool = True
    """Also try a mirrored detector (wrong parity in the header)."""
    scale_tolerance: float = Field(default=0.05, gt=0, lt=0.5)
    """Fractional uncertainty of the pixel scale."""
    min_matched: int = Field(default=5, ge=3)
    """Fewest matched catalog stars for a solution."""
    affine_min_stars: int = Field(default=12, ge=4)
    """Fewer matched stars than this fit only shift, rotation and scale on the known distortion."""
    sip_min_stars: dict[int, int] = {2: 40, 3: 80}
    """SIP order -> fewest matched stars to free the terms of that order (on the known distortion)."""
    match_radius_arcsec: float = Field(default=1.5, gt=0)
    """Pairing radius of the pattern verification and of the first refinement pass."""
    min_match_radius_arcsec: float = Field(default=0.25, gt=0)
    """Smallest pairing radius the refinement tightens to."""
    clip_sigma: float = Field(default=3.0, gt=0)
    """Residuals beyond this many robust sigmas are rejected."""
    iterations: int = Field(default=5, ge=1)
    """Match-and-fit passes of the refinement."""
    false_alarm: float = Field(default=1e-3, gt=0, lt=1)
    """Largest probability that the matches of a solution arise by chance."""
    max_rms_arcsec: float = Field(default=0.3, gt=0)
    """Largest RMS residual of a passing solution."""
    pattern_sources: int = Field(default=40, ge=5)
    """Most detections (brightest first) used to form triangles."""
    pattern_neighbours: int = Field(default=7, ge=2)
    """Nearest neighbours each star forms triangles with."""
    invariant_tolerance: float = Field(default=0.012, gt=0)
    """Tolerance on the triangle side ratios."""
    fwhm_init: float = Field(default=5.0, gt=0)
    """Stellar FWHM (px) for detection and centroids."""
    detect_snr: float = Field(default=10.0, gt=0)
    """Detection threshold (S/N of a star)."""
    max_detections: int = Field(default=600, ge=10)
    """Most detections kept (brightest first)."""
    index_dir: str | None = None
    """Folder of astrometry.net index files (``potpyri index build``); None: that backend is skipped."""
    solve_field_timeout: float = Field(default=60.0, gt=0)
    """Seconds before ``solve-field`` is stopped."""
    align_frames: bool = True
    """Refine the frames of one target against each other with all detected sources."""
    align_match_radius_arcsec: float = Field(default=1.0, gt=0)
    """First pairing radius of the frame-to-frame alignment."""
    align_min_matched: int = Field(default=10, ge=4)
    """Fewest sources matched to the reference frame for an alignment."""


@dataclass
class Solution:
    """A solved WCS and its quality figures."""

    wcs: WCS
    n_matched: int
    rms_ra: float
    """RMS residual in RA (arcsec)."""
    rms_dec: float
    """RMS residual in Dec (arcsec)."""
    backend: str = "catalog"
    """Blind solver that found the first solution."""
    model: str = "similarity"
    """Model fitted in the refinement (``similarity``, ``affine``, ``sip<n>``)."""
    false_alarm: float = 0.0
    """Probability that the matches arise by chance."""
    stars: Table | None = None
    """The detections used (``x``, ``y``, ``flux``), for frame-to-frame alignment."""


DEBLEND_AREA_FWHM2 = 4.0
"""Segments larger than this many FWHM² (a single star's segment above a 5σ threshold covers
about 1-3 FWHM²) are deblended; smaller ones cannot hold two resolved stars."""
DEBLEND_CONTRAST = 0.005
"""Smallest fraction of a segment's flux a deblended component must hold (Source Extractor's
``DEBLEND_MINCONT`` default)."""


def deblend_large(smooth: np.ndarray, segments: SegmentationImage, fwhm_pix: float) -> SegmentationImage:
    """Split segments big enough to hold more than one star (multi-threshold deblending).

    Two stars a few FWHM apart share one segment above the detection threshold; their common
    centroid matches neither catalog star, which in a field of 6-12 catalog stars can lose the
    solution. Only segments larger than :data:`DEBLEND_AREA_FWHM2` FWHM² are deblended, so the
    cost stays that of the few blends.

    Parameters
    ----------
    smooth : ndarray
        The smoothed image the segments were detected on.
    segments : photutils.segmentation.SegmentationImage
        Detected segments.
    fwhm_pix : float
        Seeing FWHM (pixels).

    Returns
    -------
    photutils.segmentation.SegmentationImage
    """
    large = segments.labels[segments.areas > DEBLEND_AREA_FWHM2 * max(fwhm_pix, 1.0) ** 2]
    if len(large) == 0:
        return segments
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        return deblend_sources(smooth, segments, n_pixels=5, labels=large, n_levels=32,
                               contrast=DEBLEND_CONTRAST, progress_bar=False)


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
    segments = deblend_large(np.where(bad, 0.0, smooth), segments, fwhm_pix)
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


def reference_columns(reference: Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ra, dec, mag)`` of a canonical reference catalog (missing magnitudes sort last)."""
    mag = next((reference[c] for c in reference.colnames if c.startswith("mag_")), None)
    mag = np.zeros(len(reference)) if mag is None else np.nan_to_num(np.asarray(mag, float), nan=99.0)
    return np.asarray(reference["ra"], float), np.asarray(reference["dec"], float), mag


def frame_binning(header: fits.Header) -> int:
    """On-chip binning of an assembled frame (``BINNING = '2x2'``)."""
    return int(str(header.get("BINNING", "1x1")).lower().split("x")[0])


def centred_wcs(wcs: WCS, instrument: InstrumentSettings, shape: tuple[int, int], binning: int) -> WCS:
    """A WCS equal to ``wcs`` near the reference pixel, re-expressed about the instrument's
    reference pixel (optical axis) with the instrument's known distortion.

    The linear part is ``wcs``'s local Jacobian at that pixel, so a header WCS with its own
    CRPIX (per-chip) or without distortion becomes the starting point of the refinement.
    """
    settings = instrument.header_wcs
    crpix = np.array(reference_pixel(settings, shape, binning, {}), float)
    centre = crpix - 1.0
    step = 10.0
    pts = np.array([centre, centre + [step, 0.0], centre + [0.0, step]])
    sky = wcs.all_pix2world(pts, 0)
    plane = tangent_plane(sky[:, 0], sky[:, 1], sky[0, 0], sky[0, 1])
    cd = np.column_stack([(plane[1] - plane[0]) / step, (plane[2] - plane[0]) / step]) / 3600.0
    out = WCS(naxis=2)
    out.wcs.crpix = list(crpix)
    out.wcs.crval = [float(sky[0, 0]), float(sky[0, 1])]
    out.wcs.cd = cd
    out.wcs.radesys = "ICRS"
    out.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    if settings.distortion_k3:
        out.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        out.sip = radial_sip(settings.distortion_k3 * binning**2, tuple(crpix), max(shape) / 2.0)
    out.pixel_shape = (shape[1], shape[0])
    out.wcs.set()
    return out


def pixel_scale(wcs: WCS) -> float:
    """Mean pixel scale (arcsec/px) of the linear part of ``wcs``."""
    cd = wcs.wcs.cd if wcs.wcs.has_cd() else np.diag(wcs.wcs.cdelt) @ wcs.wcs.get_pc()
    return float(np.sqrt(abs(np.linalg.det(cd)))) * 3600.0


def catalog_areas(plane: np.ndarray, radius: float) -> list[float]:
    """Areas (arcsec²) over which the catalog's star density may be counted, likeliest first.

    The cone searched around the pointing is the first guess; a catalog that covers less than
    half of it (a file cut to the field) adds the area of its bounding box, tried only when the
    cone's density finds no match, so catalogs that do fill the cone are matched as before.

    Parameters
    ----------
    plane : ndarray, shape (n, 2)
        Catalog stars within the cone, tangent-plane offsets (arcsec) from the pointing.
    radius : float
        Cone radius (arcsec).

    Returns
    -------
    list of float
    """
    cone_area = float(np.pi * radius**2)
    if len(plane) < 3:
        return [cone_area]
    box = float(np.prod(np.ptp(plane, axis=0)))
    return [cone_area, box] if 0 < box < 0.5 * cone_area else [cone_area]


def catalog_blind(xy: np.ndarray, flux: np.ndarray, ra: np.ndarray, dec: np.ndarray, mag: np.ndarray,
                  start: WCS, shape: tuple[int, int], params: AstrometryParams) -> tuple[WCS, float]:
    """Blind solution from the catalog cone around the starting pointing (no index files).

    The catalog is cut to about as many stars per frame area as the brightest detections
    used; its density is first counted over the whole cone, then, when that finds no match
    and the catalog covers less than half the cone (a file cut to the field), over the area
    it covers (:func:`catalog_areas`). Each depth is tried with the ``pattern_sources``
    brightest detections and again with twice as many and more neighbours.

    Parameters
    ----------
    xy, flux : ndarray
        Detections (0-based pixels) and their fluxes.
    ra, dec, mag : ndarray
        Reference catalog.
    start : astropy.wcs.WCS
        Starting WCS about the reference pixel (see :func:`centred_wcs`): pointing, scale and
        orientation guesses plus the known distortion.
    shape : tuple of int
        Frame shape.
    params : AstrometryParams
        Search ranges.

    Returns
    -------
    wcs : astropy.wcs.WCS
        The starting WCS moved, rotated, flipped and scaled onto the catalog.
    false_alarm : float
        Probability that the pattern match is chance.
    """
    ny, nx = shape
    scale = pixel_scale(start)
    ra0, dec0 = (float(c) for c in start.wcs.crval)
    origin = np.array(start.wcs.crpix, float) - 1.0
    max_offset = params.max_offset_arcmin * 60.0
    reach = float(np.hypot(*np.maximum(origin, [nx - 1 - origin[0], ny - 1 - origin[1]]))) * scale
    plane = tangent_plane(ra, dec, ra0, dec0)
    radius = reach + max_offset
    cone = np.flatnonzero(np.hypot(*plane.T) < radius)
    cone = cone[np.argsort(mag[cone], kind="stable")]
    frame_area = nx * ny * scale**2
    cd = start.wcs.cd * 3600.0
    max_rotation = None if params.max_rotation_deg == "any" else float(params.max_rotation_deg)
    brightest = np.argsort(-np.nan_to_num(flux, nan=-np.inf), kind="stable")
    match = None
    error: NoMatchError | None = None
    tried: set[tuple[int, int, int]] = set()
    for cone_area in catalog_areas(plane[cone], radius):
        expected_in_frame = len(cone) * frame_area / cone_area
        # a second, larger attempt (twice the stars, more neighbours) when the brightest stars of
        # the two lists differ too much (saturated or blended stars, a wrong FWHM guess)
        for sources, neighbours in [(params.pattern_sources, params.pattern_neighbours),
                                    (2 * params.pattern_sources, params.pattern_neighbours + 3)]:
            n_source = int(np.clip(round(1.5 * min(expected_in_frame, sources)), 8, sources))
            use = cone[: int(1.2 * sources * cone_area / frame_area)] if expected_in_frame > sources else cone
            key = (min(n_source, len(xy)), len(use), neighbours)
            if key in tried:
                continue
            tried.add(key)
            source = focal_offsets(start, xy[brightest[:n_source]]) @ cd.T
            try:
                match = match_points(source, plane[use], scale=1.0, scale_tolerance=params.scale_tolerance,
                                     max_offset=max_offset, match_radius=params.match_radius_arcsec,
                                     allow_flip=params.allow_flip, max_rotation=max_rotation,
                                     neighbours=neighbours, invariant_tolerance=params.invariant_tolerance,
                                     false_alarm=params.false_alarm, min_matched=params.min_matched)
                break
            except NoMatchError as exc:
                error = error or exc
        if match is not None:
            break
    if match is None:
        assert error is not None
        raise error
    transform = match.transform
    wcs = start.deepcopy()
    wcs.wcs.cd = transform.matrix @ start.wcs.cd
    tangent_ra, tangent_dec = from_tangent_plane(transform.offset[None, :], ra0, dec0)
    wcs.wcs.crval = [float(tangent_ra[0]), float(tangent_dec[0])]
    wcs.wcs.set()
    return wcs, match.false_alarm



def start_wcs(frame: Frame, instrument: InstrumentSettings) -> WCS:
    """The frame's starting WCS about the instrument's reference pixel.

    Raises
    ------
    AstrometryError
        When the frame header has no celestial WCS (a detector WCS such as ``PANE_X``).
    """
    if not is_celestial(frame.header):
        ctype = frame.header.get("CTYPE1", "none")
        raise AstrometryError(f"no celestial starting WCS in the frame header (CTYPE1 = {ctype}); the"
                              f" instrument's header_wcs settings must name the pointing keywords")
    return centred_wcs(WCS(frame.header, relax=True), instrument, frame.data.shape, frame_binning(frame.header))


def chance_probability(n_matched: int, n_sources: int, n_reference: int, area_arcsec2: float,
                       radius_arcsec: float) -> float:
    """Poisson probability of at least ``n_matched`` chance pairs within ``radius_arcsec``."""
    expected = n_sources * n_reference / max(area_arcsec2, 1e-9) * np.pi * radius_arcsec**2
    return float(poisson.sf(n_matched - 1, expected))


def check_fit(fit: FitResult, nominal_scale: float, n_sources: int, n_reference: int, area: float,
              params: AstrometryParams) -> float:
    """Raise :class:`AstrometryError` when a refined solution fails its checks; return its
    chance probability."""
    n = len(fit.source_index)
    if n < params.min_matched:
        raise AstrometryError(f"only {n} matched stars (need {params.min_matched})")
    if not fit.rms <= params.max_rms_arcsec:
        raise AstrometryError(f"RMS {fit.rms:.3f}\" of {n} stars exceeds {params.max_rms_arcsec}\"")
    scale = pixel_scale(fit.wcs)
    if abs(scale / nominal_scale - 1.0) > params.scale_tolerance:
        raise AstrometryError(f"pixel scale {scale:.4f}\" is not within {params.scale_tolerance:.0%} of"
                              f" {nominal_scale:.4f}\"")
    radius = max(3.0 * fit.rms, params.min_match_radius_arcsec)
    chance = chance_probability(n, n_sources, n_reference, area, radius)
    if chance > params.false_alarm:
        raise AstrometryError(f"{n} matches could be chance (probability {chance:.2g})")
    return chance


def away_from_border(stars: Table, shape: tuple[int, int], margin: float) -> Table:
    """Detections at least ``margin`` pixels inside the frame (a star cut by the border has a
    biased centroid)."""
    ny, nx = shape
    x, y = np.asarray(stars["x"], float), np.asarray(stars["y"], float)
    return stars[(x >= margin) & (x <= nx - 1 - margin) & (y >= margin) & (y <= ny - 1 - margin)]


def solve_frame(frame: Frame, reference: Table, instrument: InstrumentSettings, params: AstrometryParams,
                stars: Table | None = None) -> Solution:
    """Solve, refine and check the WCS of a calibrated frame.

    Parameters
    ----------
    frame : Frame
        Calibrated, sky-subtracted frame with a celestial starting WCS in its header
        (:func:`~potpyri_core.stages.header_wcs.apply_starting_wcs`).
    reference : astropy.table.Table
        Canonical reference catalog (``ra``, ``dec``, ``mag_*``) at the epoch of the frame.
    instrument : InstrumentSettings
        Pixel scale, reference pixel and known distortion.
    params : AstrometryParams
        Step parameters.
    stars : astropy.table.Table, optional
        Detections (``x``, ``y``, ``flux``); detected from the frame when not given.

    Returns
    -------
    Solution

    Raises
    ------
    AstrometryError
        With every backend's reason when no backend gives a passing solution.
    """
    shape = frame.data.shape
    start = start_wcs(frame, instrument)
    if stars is None:
        stars = detect_stars(frame.data, np.sqrt(frame.variance), frame.mask, params.fwhm_init,
                             nmax=params.max_detections, snr=params.detect_snr)
    stars = away_from_border(stars, shape, params.fwhm_init)
    xy = np.column_stack([np.asarray(stars["x"], float), np.asarray(stars["y"], float)])
    flux = np.asarray(stars["flux"], float)
    ra, dec, mag = reference_columns(reference)
    nominal = pixel_scale(start)
    if len(xy) < params.min_matched:
        raise AstrometryError(f"only {len(xy)} stars detected (need {params.min_matched})")
    reasons = []
    for backend in params.backends:
        try:
            if backend == "catalog":
                blind, false_alarm = catalog_blind(xy, flux, ra, dec, mag, start, shape, params)
            else:
                blind = astrometry_net.solve(xy, flux, shape, start, params.index_dir, params.scale_tolerance,
                                             params.max_offset_arcmin, params.solve_field_timeout)
                blind = centred_wcs(blind, instrument, shape, frame_binning(frame.header))
                false_alarm = 0.0
            fit = fit_wcs(blind, xy, ra, dec, shape, params.match_radius_arcsec, params.min_matched,
                          params.affine_min_stars, params.sip_min_stars, params.clip_sigma,
                          params.min_match_radius_arcsec, params.iterations)
            ny, nx = shape
            in_frame = _inside(fit.wcs, ra, dec, shape)
            chance = check_fit(fit, nominal, len(xy), int(in_frame.sum()), nx * ny * nominal**2, params)
            return Solution(wcs=fit.wcs, n_matched=len(fit.source_index), rms_ra=float(np.std(fit.residuals[:, 0])),
                            rms_dec=float(np.std(fit.residuals[:, 1])), backend=backend, model=fit.model,
                            false_alarm=max(false_alarm, chance), stars=stars)
        except (NoMatchError, FitError, AstrometryError, astrometry_net.SolveFieldError) as exc:
            reasons.append(f"{backend}: {exc}")
    raise AstrometryError("; ".join(reasons) or "no astrometry backend configured")


def _inside(wcs: WCS, ra: np.ndarray, dec: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Reference stars that fall on the frame."""
    ny, nx = shape
    with np.errstate(invalid="ignore"):
        x, y = wcs.all_world2pix(ra, dec, 0, quiet=True)
    return (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)


def solution_header(solution: Solution) -> fits.Header:
    """Header cards of a passing solution: the WCS and the quality cards (``ASTSTAT = 'PASS'``)."""
    header = solution.wcs.to_header(relax=True)
    header["ASTSTAT"] = ("PASS", "astrometric solution passed its checks")
    header["ASTREASN"] = ("", "why the astrometry failed")
    header["ASTBACK"] = (solution.backend, "blind solver of the first solution")
    header["ASTMODEL"] = (solution.model, "model fitted on the known distortion")
    header["ASTNMAT"] = (solution.n_matched, "stars matched to the reference catalog")
    header["ASTCHANC"] = (float(solution.false_alarm), "probability that the matches are chance")
    header["RADISP"] = (solution.rms_ra, "astrometric RMS in RA (arcsec)")
    header["DEDISP"] = (solution.rms_dec, "astrometric RMS in Dec (arcsec)")
    return header


def failure_header(reason: str) -> fits.Header:
    """Header cards of a frame whose astrometry failed (``ASTSTAT = 'FAIL'`` and the reason)."""
    header = fits.Header()
    header["ASTSTAT"] = ("FAIL", "astrometric solution failed: frame not stacked")
    header["ASTREASN"] = (reason, "why the astrometry failed")
    return header
