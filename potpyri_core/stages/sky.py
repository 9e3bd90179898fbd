"""2-D sky (background) subtraction with sources masked."""

from __future__ import annotations

import numpy as np
from astropy.stats import SigmaClip
from photutils.background import Background2D, SExtractorBackground
from photutils.segmentation import detect_sources

from potpyri_core.frames import Frame
from potpyri_core.maskbits import UNUSABLE


def sky_model(data: np.ndarray, mask: np.ndarray, box: int = 128) -> tuple[np.ndarray, float]:
    """Fit a smooth 2-D background with the sources masked.

    A first pass finds the sources (3 sigma, 7 connected pixels) which are masked with a
    generous dilation before the final fit, so star wings do not raise the sky.

    Parameters
    ----------
    data : ndarray
        Image with its sky.
    mask : ndarray of bool
        Pixels to ignore.
    box : int
        Background mesh size in pixels.

    Returns
    -------
    background : ndarray
        The sky model.
    rms : float
        Median sky noise per pixel.
    """
    clip = SigmaClip(sigma=3.0, maxiters=5)
    first = Background2D(data, box, mask=mask, filter_size=3, sigma_clip=clip, bkg_estimator=SExtractorBackground(), exclude_percentile=60.0)
    residual = data - first.background
    noise = float(np.median(first.background_rms_mesh))
    segments = detect_sources(np.where(mask, 0, residual), 3.0 * noise, n_pixels=7)
    source_mask = mask.copy()
    if segments is not None:
        source_mask |= segments.make_source_mask(size=11)
    final = Background2D(data, box, mask=source_mask, filter_size=3, sigma_clip=clip,
                         bkg_estimator=SExtractorBackground(), exclude_percentile=60.0)
    return final.background.astype(np.float32), float(np.median(final.background_rms_mesh))


def subtract_sky(frame: Frame, box: int = 128) -> Frame:
    """Subtract the 2-D sky from a frame; record SKYLEVEL and SKYSIG (e-) in its header."""
    bad = (frame.mask & UNUSABLE) > 0
    sky, rms = sky_model(frame.data, bad, box)
    frame.header["SKYLEVEL"] = (float(np.median(sky[~bad])), "median sky subtracted (e-)")
    frame.header["SKYSIG"] = (rms, "sky noise (e-)")
    frame.data = np.where(bad & (frame.data == 0), 0, frame.data - sky).astype(np.float32)
    return frame
