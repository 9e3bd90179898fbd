"""Fringe correction: a fringe frame from the night's dithered frames, scaled and subtracted.

Fringes are an additive pattern fixed on the detector whose strength follows the night-sky
lines, so each calibrated frame is ``sky + s F + sources`` with ``F`` the fringe frame and
``s`` its strength in that frame. The fringe frame is built from the dithered science frames
of the band (sources move between them, the fringes do not): each frame minus its
large-scale background, divided by its sky level, combined pixel by pixel with clipping; the
combination loses its own large-scale background and is smoothed a little (its noise). The
strength of each frame is then a least-squares fit of ``F`` (with a plane) to the frame's
source-masked pixels, and ``s F`` is subtracted; what the background removal took out of the
fringes is smooth and goes with the sky.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from astropy.stats import SigmaClip
from photutils.background import Background2D, MeanBackground
from scipy.ndimage import gaussian_filter

from potpyri_core.frames import Frame
from potpyri_core.maskbits import UNUSABLE
from potpyri_core.params import FringeParams, SkyParams
from potpyri_core.stages.sky import source_pixels


@dataclass(frozen=True)
class FringeFrame:
    """A fringe frame: the pattern per unit of sky and the variance of its pixels.

    Attributes
    ----------
    data : ndarray
        Fringe per unit sky (float32, large-scale background removed; 0 where unknown).
    variance : ndarray
        Variance of ``data`` (float32, per unit sky squared).
    n_frames : int
        Frames it was built from (0 for a supplied frame).
    self_weight : ndarray
        Weight of one input frame's own pixel in ``data`` (the smoothing kernel's centre over
        the frames combined there; 0 for a supplied frame): subtracting the fringe frame from
        one of its inputs also takes out this fraction of that frame's own noise.
    """

    data: np.ndarray
    variance: np.ndarray
    n_frames: int
    self_weight: np.ndarray


@dataclass(frozen=True)
class FringeFit:
    """Strength of the fringe frame in one frame.

    Attributes
    ----------
    scale : float
        Electrons per unit of the fringe frame.
    error : float
        Standard error of ``scale``.
    n_pixels : int
        Pixels the fit used.
    """

    scale: float
    error: float
    n_pixels: int


def large_scale(image: np.ndarray, hide: np.ndarray, box: int) -> np.ndarray:
    """Background of ``image`` on scales above ``box`` px (3-sigma clipped mean per mesh, hidden
    pixels left out); the mesh is cut to the image where it is smaller.

    A clipped mean, not a mode estimate: the values of a fringe pattern have a two-peaked
    (arcsine-like) distribution whose mode estimate is biased by a good part of its
    amplitude, while its mean over a mesh larger than the fringe spacing is its level."""
    ny, nx = image.shape
    size = (min(box, ny), min(box, nx))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # meshes with every pixel hidden are filled in
        bkg = Background2D(np.where(hide, 0.0, image), size, mask=hide, filter_size=3,
                           sigma_clip=SigmaClip(sigma=3.0, maxiters=5), bkg_estimator=MeanBackground(),
                           exclude_percentile=80.0)
    return bkg.background.astype(np.float32)


def normalised(frame: Frame, hide: np.ndarray, box: int) -> tuple[np.ndarray, float, float]:
    """A frame minus its large-scale background, divided by its sky level.

    Returns
    -------
    image : ndarray
        ``(data - background) / level``, NaN where ``hide``.
    level : float
        Median background (e-).
    noise : float
        Typical pixel noise divided by the level (from the variance).
    """
    background = large_scale(frame.data, hide, box)
    level = float(np.median(background[~hide]))
    if not level > 0:
        raise ValueError(f"sky level {level:.1f} e-: a fringe frame needs frames with sky")
    image = np.where(hide, np.nan, (frame.data - background) / level).astype(np.float32)
    noise = float(np.sqrt(np.median(frame.variance[~hide]))) / level
    return image, level, noise


def combine(images: list[np.ndarray], noise: list[float], clip: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clipped combination of normalised frames: values within ``clip`` times their frame's
    noise of the pixel's median are averaged (a mean has 2/pi of the variance of a median).

    Returns
    -------
    mean : ndarray
        Combined image (NaN where every frame is hidden).
    variance : ndarray
        Variance of the mean from the frames' noise and the number of values kept.
    count : ndarray
        Values kept per pixel.
    """
    cube = np.stack(images)
    sigma = np.asarray(noise, np.float32)[:, None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pixels hidden in every frame
        median = np.nanmedian(cube, axis=0)
        kept = np.where(np.abs(cube - median) <= clip * sigma, cube, np.nan)
        mean = np.nanmean(kept, axis=0)
        count = np.sum(np.isfinite(kept), axis=0)
        variance = np.nansum(np.where(np.isfinite(kept), sigma**2, np.nan), axis=0) / np.maximum(count, 1) ** 2
    return mean.astype(np.float32), np.where(count > 0, variance, np.inf).astype(np.float32), count


def smoothed(image: np.ndarray, variance: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian smoothing (``sigma`` px) that ignores unknown (non-finite) pixels, and the
    variance of the smoothed pixels (independent input pixels)."""
    known = np.isfinite(image) & np.isfinite(variance)
    if sigma <= 0:
        return np.where(known, image, 0).astype(np.float32), np.where(known, variance, 0).astype(np.float32)
    weight = gaussian_filter(known.astype(np.float64), sigma, mode="nearest")
    total = gaussian_filter(np.where(known, image, 0.0), sigma, mode="nearest")
    weight = np.maximum(weight, 1e-12)
    out = np.where(weight > 0.2, total / weight, 0.0)
    # a normalised 2-D Gaussian's squared weights sum to 1 / (4 pi sigma^2): the variance of the
    # smoothed pixel is the local mean variance / (4 pi sigma^2 x the known fraction)
    local = gaussian_filter(np.where(known, variance, 0.0), sigma, mode="nearest") / weight
    var = np.where(weight > 0.2, local / (4 * np.pi * sigma**2 * weight), 0.0)
    return out.astype(np.float32), var.astype(np.float32)


def build_fringe_frame(frames: list[Frame], params: FringeParams, sky: SkyParams) -> FringeFrame:
    """The fringe frame of dithered frames of one band, in two passes.

    Pass 1 combines the normalised frames with only bad pixels hidden (sources move with the
    dither and are clipped). Pass 2 finds the sources in each frame minus its background and
    its pass-1 fringes (the fringes would otherwise be found as sources), hides them and
    combines again. The result loses its large-scale background (``params.box``) and is
    smoothed by ``params.smooth``.

    Parameters
    ----------
    frames : list of Frame
        Calibrated (flat-fielded, not sky-subtracted) frames of one band, same grid.
    params : FringeParams
        Clipping, background mesh and smoothing.
    sky : SkyParams
        Source detection (threshold, size, dilation), as the sky step masks them.

    Returns
    -------
    FringeFrame
    """
    if len(frames) < params.min_frames:
        raise ValueError(f"{len(frames)} frames: a fringe frame needs at least {params.min_frames}"
                         " dithered frames (fringe.min_frames), or pass one with -p fringe.frame=PATH")
    bad = [(f.mask & UNUSABLE) > 0 for f in frames]
    first = [normalised(f, b, params.box) for f, b in zip(frames, bad, strict=True)]
    pattern, _, _ = combine([im for im, _, _ in first], [n for _, _, n in first], params.clip)
    pattern = np.nan_to_num(pattern)
    hide = []
    for f, b, (image, level, _) in zip(frames, bad, first, strict=True):
        residual = np.where(b, 0.0, np.nan_to_num(image) - pattern) * level
        hide.append(b | source_pixels(residual, b, sky))
    second = [normalised(f, h, params.box) for f, h in zip(frames, hide, strict=True)]
    mean, variance, count = combine([im for im, _, _ in second], [n for _, _, n in second], params.clip)
    known = np.isfinite(mean)
    mean = np.where(known, mean - large_scale(np.nan_to_num(mean), ~known, params.box), np.nan)
    data, var = smoothed(mean, variance, params.smooth)
    centre = _kernel_centre(params.smooth)
    self_weight = np.where(count > 0, centre / np.maximum(count, 1), 0.0).astype(np.float32)
    return FringeFrame(data, var, len(frames), self_weight)


def _kernel_centre(sigma: float) -> float:
    """Central weight of the normalised Gaussian smoothing kernel (1 without smoothing)."""
    if sigma <= 0:
        return 1.0
    delta = np.zeros((41, 41))
    delta[20, 20] = 1.0
    return float(gaussian_filter(delta, sigma)[20, 20])


def supplied_fringe_frame(data: np.ndarray, params: FringeParams) -> FringeFrame:
    """A supplied fringe frame with its large-scale background removed (no variance known)."""
    image = np.asarray(data, np.float32)
    known = np.isfinite(image)
    image = np.where(known, image - large_scale(np.nan_to_num(image), ~known, params.box), 0.0)
    zeros = np.zeros(image.shape, np.float32)
    return FringeFrame(image.astype(np.float32), zeros, 0, zeros)


def fit_scale(data: np.ndarray, fringe: np.ndarray, hide: np.ndarray, clip: float = 4.0,
              iterations: int = 4) -> FringeFit:
    """Least-squares strength of ``fringe`` in ``data``: ``data = a + b x + c y + s fringe``.

    A plane is fitted with the fringe so that a sky level and gradient do not leak into
    ``s``; pixels further than ``clip`` robust sigma from the model are left out and the fit
    repeated.

    Parameters
    ----------
    data : ndarray
        Image (any units).
    fringe : ndarray
        Fringe frame on the same grid.
    hide : ndarray of bool
        Pixels left out (bad, sources).
    clip : float
        Rejection threshold (robust sigma of the residuals).
    iterations : int
        Fits with rejection.

    Returns
    -------
    FringeFit
        ``scale`` in units of ``data`` per unit of ``fringe``; ``error`` from the residual scatter.
    """
    ny, nx = data.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    keep = (~hide & np.isfinite(data) & np.isfinite(fringe)).ravel()
    design = np.stack([np.ones(ny * nx), xx.ravel() / nx - 0.5, yy.ravel() / ny - 0.5, fringe.ravel()], axis=1)
    values = data.ravel().astype(np.float64)
    if keep.sum() < 100:
        raise ValueError(f"{int(keep.sum())} usable pixels: too few to fit the fringe strength")
    coef = np.zeros(4)
    for _ in range(iterations):
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        resid = values - design @ coef
        sigma = 1.4826 * float(np.median(np.abs(resid[keep])))
        new = keep & (np.abs(resid) < clip * sigma)
        if new.sum() == keep.sum():
            break
        keep = new
    resid = values[keep] - design[keep] @ coef
    dof = max(int(keep.sum()) - 4, 1)
    cov = np.linalg.inv(design[keep].T @ design[keep]) * float(resid @ resid) / dof
    return FringeFit(float(coef[3]), float(np.sqrt(cov[3, 3])), int(keep.sum()))


def subtract_fringe(frame: Frame, fringe: FringeFrame, params: FringeParams, sky: SkyParams,
                    included: bool = False) -> FringeFit:
    """Fit and subtract the fringe frame from one frame (in place), updating its variance.

    The strength is fitted twice: on the bad-pixel-masked frame, then with the sources found
    in the frame minus that first fringe estimate hidden as well. The variance gains the
    fringe frame's (``scale**2 * fringe.variance``); for a frame the fringe frame was built
    from (``included``) the subtraction also takes out a fraction ``a = scale / level *
    fringe.self_weight`` of the frame's own noise, so its variance is multiplied by
    ``1 - 2 a`` (the ``a**2`` term is part of the fringe frame's variance).
    """
    if fringe.data.shape != frame.data.shape:
        raise ValueError(f"fringe frame {fringe.data.shape} and frame {frame.data.shape} differ in shape")
    bad = (frame.mask & UNUSABLE) > 0
    background = large_scale(frame.data, bad, params.box)
    flat = frame.data - background
    first = fit_scale(flat, fringe.data, bad)
    hide = bad | source_pixels(np.where(bad, 0.0, flat - first.scale * fringe.data), bad, sky)
    fit = fit_scale(flat, fringe.data, hide)
    frame.data = np.where(bad & (frame.data == 0), 0, frame.data - fit.scale * fringe.data).astype(np.float32)
    own = fit.scale / float(np.median(background[~bad])) * fringe.self_weight if included else 0.0
    frame.variance = (frame.variance * (1 - 2 * own) + fit.scale**2 * fringe.variance).astype(np.float32)
    return fit


__all__ = ["FringeFit", "FringeFrame", "build_fringe_frame", "combine", "fit_scale", "large_scale", "normalised",
           "smoothed", "subtract_fringe", "supplied_fringe_frame"]
