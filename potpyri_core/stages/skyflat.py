"""Flat fields from the night's dithered science frames (NIR sky flats).

The sky seen by dithered frames is the same pattern times the flat, while the sources move
from frame to frame; an object-masked median of the frames, each normalised to its level,
is the flat. Two passes: the first (unmasked) median divides each frame so that its
sources can be found on a flat background, the second combines the frames with those
sources masked.
"""

from __future__ import annotations

import numpy as np

from potpyri_core.frames import Frame
from potpyri_core.maskbits import UNUSABLE
from potpyri_core.params import CalibrationParams, SkyParams
from potpyri_core.stages.calibrate import build_master
from potpyri_core.stages.sky import source_pixels


def build_sky_flat(frames: list[Frame], min_frames: int, group: str,
                   params: CalibrationParams = CalibrationParams()) -> Frame:
    """Combine dark-subtracted science frames of one filter into a master flat.

    Parameters
    ----------
    frames : list of Frame
        Assembled (and dark-subtracted) science frames of one flat group.
    min_frames : int
        Fewest frames accepted.
    group : str
        Flat group name, for messages.
    params : CalibrationParams
        Clipping and bad-pixel thresholds of the combination; ``sky_flat_source_sigma``
        for the source mask.

    Returns
    -------
    Frame
        The master flat (median 1 over illuminated pixels) with ``SKYFLAT``/``SFMASKF``
        cards: built from science frames, and the fraction of pixels masked as sources.
    """
    first = build_master("flat", frames, min_frames, group, params)
    detect = SkyParams(source_sigma=params.sky_flat_source_sigma)
    masked, fractions = [], []
    for f in frames:
        bad = ((f.mask | first.mask) & UNUSABLE) > 0
        level = float(np.median(f.data[~bad]))
        flattened = np.where(bad, level, f.data / first.data)
        sources = source_pixels(flattened, bad, detect)
        fractions.append(float(sources[~bad].mean()))
        masked.append(Frame(np.where(sources, np.nan, f.data).astype(np.float32), f.variance, f.mask, f.header,
                            name=f.name, meta=dict(f.meta)))
    master = build_master("flat", masked, min_frames, group, params)
    # the scatter between frames is mostly the sky's shape changing, not noise: the
    # variance of the flat is that of a mean of Poisson-noise-limited normalised frames
    levels = np.array([float(np.nanmedian(f.data)) for f in masked])
    master.variance = (master.data * float(np.mean(1.0 / levels)) / len(masked)).astype(np.float32)
    master.header["SKYFLAT"] = (True, "flat from the dithered science frames, sources masked")
    master.header["SFMASKF"] = (round(float(np.mean(fractions)), 4), "mean fraction of pixels masked as sources")
    return master
