"""2-D sky (background) subtraction with sources masked."""

from __future__ import annotations

import warnings

import numpy as np
from astropy.stats import SigmaClip
from photutils.background import Background2D, SExtractorBackground
from photutils.segmentation import detect_sources

from potpyri_core.frames import Frame
from potpyri_core.maskbits import UNUSABLE
from potpyri_core.params import SkyParams


def sky_model(data: np.ndarray, mask: np.ndarray, params: SkyParams = SkyParams()) -> tuple[np.ndarray, float]:
    """Fit a smooth 2-D background with the sources masked.

    A first pass finds the sources (3 sigma, 7 connected pixels) which are masked with a
    generous dilation before the final fit, so star wings do not raise the sky.

    Parameters
    ----------
    data : ndarray
        Image with its sky.
    mask : ndarray of bool
        Pixels to ignore.
    params : SkyParams
        Mesh size, filter size and source masking.

    Returns
    -------
    background : ndarray
        The sky model.
    rms : float
        Median sky noise per pixel.
    """
    source_mask = source_pixels(data, mask, params) | mask
    final = _background(data, source_mask, params)
    return final.background.astype(np.float32), float(np.median(final.background_rms_mesh))


def _background(data: np.ndarray, mask: np.ndarray, params: SkyParams) -> Background2D:
    return Background2D(data, params.box, mask=mask, filter_size=params.filter_size,
                        sigma_clip=SigmaClip(sigma=3.0, maxiters=5), bkg_estimator=SExtractorBackground(),
                        exclude_percentile=60.0)


def source_pixels(data: np.ndarray, mask: np.ndarray, params: SkyParams = SkyParams()) -> np.ndarray:
    """Pixels of sources above ``params.source_sigma`` over a first background, dilated."""
    first = _background(data, mask, params)
    residual = data - first.background
    noise = float(np.median(first.background_rms_mesh))
    segments = detect_sources(np.where(mask, 0, residual), params.source_sigma * noise, n_pixels=params.source_npix)
    if segments is None:
        return np.zeros(data.shape, bool)
    return segments.make_source_mask(size=params.source_dilate)


def subtract_sky(frame: Frame, params: SkyParams = SkyParams()) -> Frame:
    """Subtract the 2-D sky from a frame; record SKYLEVEL and SKYSIG (e-) in its header."""
    bad = (frame.mask & UNUSABLE) > 0
    sky, rms = sky_model(frame.data, bad, params)
    frame.header["SKYLEVEL"] = (float(np.median(sky[~bad])), "median sky subtracted (e-)")
    frame.header["SKYSIG"] = (rms, "sky noise (e-)")
    frame.data = np.where(bad & (frame.data == 0), 0, frame.data - sky).astype(np.float32)
    return frame


def running_sky(frames: list[np.ndarray], hide: list[np.ndarray], times: np.ndarray, n_nearest: int,
                fallback: list[np.ndarray] | None = None, noise: list[float] | None = None,
                clip: float = 3.0) -> list[np.ndarray]:
    """Sky of each frame from the ``n_nearest`` other frames nearest in time.

    Each other frame is divided by its own level and gradient (:func:`plane` through its
    unhidden pixels), the normalised frames are median-combined with the hidden pixels left
    out, and the result is multiplied by the frame's own plane. Dividing by a plane and not
    by a single level matters: the pixel-wise median of frames whose gradients differ is a
    surface creased where the gradients cross (hundreds of e- on a 4% gradient), which no
    plane fitted afterwards removes.

    Parameters
    ----------
    frames : list of ndarray
        Images of one target, sky included.
    hide : list of ndarray of bool
        Pixels of each frame left out (bad pixels, sources).
    times : ndarray
        Time of each frame (any unit).
    n_nearest : int
        Frames that make each sky.
    fallback : list of ndarray, optional
        Sky used where a pixel is hidden in every one of the other frames; default the
        frame's plane.
    noise : list of float, optional
        Typical pixel noise of each frame (its units). Given: the values within ``clip``
        times their frame's noise (relative to its level) of the median are averaged
        instead of taking the median (2/pi of its variance).
    clip : float
        Rejection threshold with ``noise``.

    Returns
    -------
    list of ndarray
        The sky (float32) of each frame.
    """
    levels = [plane(f, h) for f, h in zip(frames, hide, strict=True)]
    normalised = [np.where(h, np.nan, f / level).astype(np.float32)
                  for f, h, level in zip(frames, hide, levels, strict=True)]
    out = []
    for i in range(len(frames)):
        others = [j for j in np.argsort(np.abs(times - times[i]), kind="stable") if j != i][:n_nearest]
        cube = np.stack([normalised[j] for j in others])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pixels hidden in every frame
            sky = np.nanmedian(cube, axis=0)
            if noise is not None:
                sigma = np.array([noise[j] / float(np.median(levels[j])) for j in others], np.float32)
                cube = np.where(np.abs(cube - sky) <= clip * sigma[:, None, None], cube, np.nan)
                sky = np.nanmean(cube, axis=0)
        sky = sky * levels[i]
        filler = fallback[i] if fallback is not None else levels[i]
        out.append(np.where(np.isfinite(sky), sky, filler).astype(np.float32))
    return out


def plane(image: np.ndarray, hide: np.ndarray, clip: float = 3.0) -> np.ndarray:
    """Least-squares plane through the unhidden pixels (clipped twice): the part of a sky
    gradient that changes from frame to frame, which a median of other frames cannot have.

    A plane, not a mesh, so that it holds to the frame's edges.
    """
    ny, nx = image.shape
    yy, xx = np.mgrid[0:ny:4, 0:nx:4]
    values, keep = image[::4, ::4], ~hide[::4, ::4]
    design = np.stack([np.ones(xx.size), xx.ravel() / nx - 0.5, yy.ravel() / ny - 0.5], axis=1)
    keep = keep.ravel() & np.isfinite(values.ravel())
    coef = np.zeros(3)
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(design[keep], values.ravel()[keep], rcond=None)
        resid = values.ravel() - design @ coef
        keep &= np.abs(resid) < clip * 1.4826 * np.median(np.abs(resid[keep]))
    y, x = np.mgrid[0:ny, 0:nx]
    return (coef[0] + coef[1] * (x / nx - 0.5) + coef[2] * (y / ny - 0.5)).astype(np.float32)


def subtract_dither_sky(frames: list[Frame], params: SkyParams = SkyParams()) -> list[Frame]:
    """Sky of dithered frames of one target from each other (NIR), in two passes.

    Pass 1: for each frame, the median of the ``params.n_nearest`` other frames nearest in
    time (MJD-OBS), each divided by its own level and gradient (sources move with the dither
    and are rejected by the median), times the frame's level and gradient. Pass 2: the
    sources are found in each frame minus its pass-1 sky (where a sky fixed on the detector,
    such as a pattern or gradient, is gone and cannot be taken for sources), masked, and the
    running sky is made again from the masked frames as a mean clipped at ``params.clip``
    sigma; pixels masked in every other frame keep the pass-1 sky. The plane of what is left
    (a gradient that changes from frame to frame) and a 2-D residual background are
    subtracted last; the variance of the sky (a mean of the other frames) is added to each
    frame's. A target with a single frame gets the 2-D background alone.
    """
    if len(frames) < 2:
        return [subtract_sky(f, params) for f in frames]
    times = np.array([float(f.header.get("MJD-OBS", i)) for i, f in enumerate(frames)])
    bad = [(f.mask & UNUSABLE) > 0 for f in frames]
    images = [f.data for f in frames]
    first = running_sky(images, bad, times, params.n_nearest)
    hide = [b | source_pixels(image - sky, b, params) for image, sky, b in zip(images, first, bad, strict=True)]
    noise = [float(np.sqrt(np.median(f.variance[~h]))) for f, h in zip(frames, hide, strict=True)]
    second = running_sky(images, hide, times, params.n_nearest, fallback=first, noise=noise, clip=params.clip)
    nsky = min(params.n_nearest, len(frames) - 1)
    out = []
    for f, sky, b, h in zip(frames, second, bad, hide, strict=True):
        f.header["SKYLEVEL"] = (float(np.median(sky[~b])), "median sky subtracted (e-), from the dithers")
        f.header["SKYNFRM"] = (nsky, "frames that made the sky of this frame")
        f.header["SKYMASKF"] = (round(float(h[~b].mean()), 4), "fraction of pixels masked as sources")
        f.data = np.where(b, f.data, f.data - sky - plane(f.data - sky, h)).astype(np.float32)
        # the sky is a mean of nsky frames with about this frame's noise: its variance
        f.variance = (f.variance + float(np.median(f.variance[~h])) / nsky).astype(np.float32)
        residual, rms = sky_model(f.data, b, params)
        f.data = np.where(b, f.data, f.data - residual).astype(np.float32)
        f.header["SKYSIG"] = (rms, "sky noise (e-)")
        out.append(f)
    return out
