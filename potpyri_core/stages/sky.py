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


def subtract_dither_sky(frames: list[Frame], params: SkyParams = SkyParams()) -> list[Frame]:
    """Sky of dithered frames of one target from each other (NIR).

    For each frame, the ``params.n_nearest`` other frames nearest in time (MJD-OBS), with
    their sources masked and each scaled to its median level, are median-combined; the
    result, scaled to the frame's own level, is subtracted, then a 2-D residual background.
    A target with a single frame gets the 2-D background alone.
    """
    if len(frames) < 2:
        return [subtract_sky(f, params) for f in frames]
    times = np.array([float(f.header.get("MJD-OBS", i)) for i, f in enumerate(frames)])
    bad = [(f.mask & UNUSABLE) > 0 for f in frames]
    levels, normalised = [], []
    for f, b in zip(frames, bad, strict=True):
        hide = b | source_pixels(f.data, b, params)
        level = float(np.median(f.data[~hide]))
        levels.append(level)
        normalised.append(np.where(hide, np.nan, f.data / level).astype(np.float32))
    out = []
    for i, f in enumerate(frames):
        others = [j for j in np.argsort(np.abs(times - times[i]), kind="stable") if j != i][:params.n_nearest]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pixels masked in every frame
            sky = np.nanmedian(np.stack([normalised[j] for j in others]), axis=0)
        sky = np.where(np.isfinite(sky), sky, 1.0) * levels[i]
        f.data = np.where(bad[i], f.data, f.data - sky).astype(np.float32)
        f.header["SKYLEVEL"] = (levels[i], "median sky subtracted (e-), from the dithers")
        f.header["SKYNFRM"] = (len(others), "frames that made the sky of this frame")
        residual, rms = sky_model(f.data, bad[i], params)
        f.data = np.where(bad[i], f.data, f.data - residual).astype(np.float32)
        f.header["SKYSIG"] = (rms, "sky noise (e-)")
        out.append(f)
    return out
