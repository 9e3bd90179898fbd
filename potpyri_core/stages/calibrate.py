"""Master calibrations and their application to one frame."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from potpyri_core.frames import Frame
from potpyri_core.maskbits import Bit
from potpyri_core.params import CalibrationParams
from potpyri_core.stages.spill import BLOCK_BYTES, block_rows, read_rows


class MissingCalibrationError(RuntimeError):
    """A calibration the instrument needs is missing or has too few frames."""


def clipped_mean(planes: Sequence[np.ndarray], divisors: Sequence[float] | None = None, sigma: float = 3.0,
                 iterations: int = 2, block_bytes: int = BLOCK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Sigma-clipped mean of frames and the variance of that mean, in float32.

    Values further than ``sigma`` standard deviations from the per-pixel median are
    rejected (twice). Written with float32 numpy on blocks of rows whose cube of all frames
    takes ``block_bytes`` (read with :func:`~potpyri_core.stages.spill.read_rows`, so that
    frames spilled to disk are never all in memory), rather than ``astropy.stats.sigma_clip``
    on the whole cube, whose temporaries take several times the memory of a full-frame cube.

    Parameters
    ----------
    planes : sequence of ndarray
        The frames (2-D, one shape), in memory or memory-mapped.
    divisors : sequence of float, optional
        Each frame is divided by its value first (a flat's level, a dark's exposure time).

    Returns
    -------
    mean, variance_of_mean : ndarray
        float32 arrays; the variance is the clipped sample variance divided by the number
        of frames kept (zero for a single frame).
    """
    shape = planes[0].shape
    scale = None if divisors is None else np.asarray(divisors, np.float32)[:, None, None]
    mean = np.empty(shape, np.float32)
    var = np.zeros(shape, np.float32)
    rows = block_rows(len(planes), int(np.prod(shape[1:])), block_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-rejected pixels
        for start in range(0, shape[0], rows):
            block = np.stack([read_rows(plane, start, start + rows) for plane in planes])
            if scale is not None:
                block /= scale
            keep = np.ones(block.shape, bool)
            for _ in range(iterations):
                masked = np.where(keep, block, np.float32(np.nan))
                center = np.nanmedian(masked, axis=0)
                spread = np.nanstd(masked, axis=0)
                keep = np.abs(block - center) <= sigma * spread + 1e-6
            masked = np.where(keep, block, np.float32(np.nan))
            mean[start:start + rows] = np.nanmean(masked, axis=0)
            if len(planes) > 1:
                count = np.maximum(keep.sum(axis=0), 1)
                var[start:start + rows] = np.nan_to_num(np.nanvar(masked, axis=0, ddof=1) / count)
    return mean, var


def block_median(image: np.ndarray, good: np.ndarray, block: int = 16) -> np.ndarray:
    """Large-scale structure of an image: medians of ``block`` x ``block`` cells of good
    pixels, interpolated back to full size (fast stand-in for a wide median filter)."""
    ny, nx = image.shape
    py, px = -ny % block, -nx % block
    padded = np.pad(np.where(good, image, np.nan), ((0, py), (0, px)), constant_values=np.nan)
    cells = padded.reshape((ny + py) // block, block, (nx + px) // block, block)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (chip gaps)
        medians = np.nanmedian(cells, axis=(1, 3))
    medians = np.where(np.isfinite(medians), medians, np.nanmedian(medians))
    zoom = ((ny + py) / medians.shape[0], (nx + px) / medians.shape[1])
    full = ndimage.zoom(medians, zoom, order=1, mode="nearest", grid_mode=True)
    return full[:ny, :nx].astype(np.float32)


def build_master(kind: str, frames: list[Frame], min_frames: int, group: str,
                 params: CalibrationParams = CalibrationParams(), block_bytes: int = BLOCK_BYTES) -> Frame:
    """Combine assembled frames into a master bias, dark or flat.

    Parameters
    ----------
    kind : str
        ``bias``, ``dark`` or ``flat``. Flats must already be bias/dark-subtracted; each is
        scaled to median 1 before combining and the master is normalised to median 1 over
        illuminated pixels. Darks are combined as e-/s.
    frames : list of Frame
        Frames of one calibration group.
    min_frames : int
        Fewest frames accepted.
    group : str
        Calibration group name, for messages.
    params : CalibrationParams
        Clipping and bad-pixel thresholds.
    block_bytes : int
        Working memory of the combine (see :func:`clipped_mean`): frames spilled to disk
        (:mod:`potpyri_core.stages.spill`) are read a block of rows at a time.

    Raises
    ------
    MissingCalibrationError
        If there are fewer than ``min_frames`` frames.
    """
    if len(frames) < min_frames:
        raise MissingCalibrationError(
            f"master {kind} for {group}: {len(frames)} frame(s), at least {min_frames} needed;"
            f" add {kind} frames to the night or lower calibrations.min_frames"
        )
    ny = frames[0].data.shape[0]
    nodata = np.zeros(frames[0].mask.shape, np.uint16)
    for f in frames:  # one frame in memory at a time (frames may be spilled to disk)
        nodata |= read_rows(f.mask, 0, ny) & np.uint16(Bit.NO_DATA)
    divisors = None
    if kind == "flat":
        good = nodata == 0
        # NaN: pixels left out of a frame (sources of a sky flat)
        divisors = [np.nanmedian(read_rows(f.data, 0, ny)[good]) for f in frames]
    elif kind == "dark":
        divisors = [f.meta["exptime"] for f in frames]
    mean, var = clipped_mean([f.data for f in frames], divisors, params.clip_sigma, params.clip_iterations,
                             block_bytes)
    mask = nodata.astype(np.uint16)
    if kind == "flat":
        good = (nodata == 0) & np.isfinite(mean)
        norm = np.median(mean[good])
        mean, var = mean / norm, var / norm**2
        smooth = block_median(mean, good, block=params.flat_smooth_block)
        dead = good & ((mean < params.flat_dead_low * smooth) | (mean > params.flat_dead_high * smooth)
                       | (mean < params.flat_unlit))
        mask |= np.where(dead, int(Bit.BAD), 0).astype(np.uint16)
        unlit = good & (smooth < params.flat_unlit)
        mask |= np.where(unlit, int(Bit.VIGNETTED), 0).astype(np.uint16)
        mean = np.where(good & (mean > 0.05), mean, 1.0).astype(np.float32)
    elif kind == "bias":
        level = np.median(mean[nodata == 0])
        noise = 1.4826 * np.median(np.abs(mean[nodata == 0] - level))
        hot = (nodata == 0) & (np.abs(mean - level) > max(params.bias_hot_sigma * noise, params.bias_hot_floor_e))
        mask |= np.where(hot, int(Bit.BAD), 0).astype(np.uint16)
    header = frames[0].header.copy()
    header["NCOMBINE"] = (len(frames), "frames combined")
    header["CALTYPE"] = kind
    for i, f in enumerate(frames):
        header[f"IMCMB{i + 1:03d}"] = f.name
    return Frame(data=np.nan_to_num(mean), variance=np.nan_to_num(var), mask=mask, header=header, name=f"m{kind}_{group}")


def apply_calibrations(frame: Frame, masters: dict[str, Frame], exptime: float) -> Frame:
    """Subtract bias and dark, divide by the flat and build the error map.

    The variance is ``(max(signal, 0) + RN^2 + var_bias + t^2 var_dark) / flat^2 +
    signal^2 var_flat / flat^4`` in e-^2, where ``signal`` is the bias/dark-subtracted
    frame before flat division (it contains the sky).
    """
    data = frame.data.copy()
    var_extra = np.zeros_like(data)
    mask = frame.mask.copy()
    if "bias" in masters:
        data -= masters["bias"].data
        var_extra += masters["bias"].variance
        mask |= masters["bias"].mask
    if "dark" in masters:
        data -= masters["dark"].data * exptime
        var_extra += masters["dark"].variance * exptime**2
        mask |= masters["dark"].mask
    rn = frame.readnoise if frame.readnoise is not None else np.zeros_like(data)
    variance = np.clip(data, 0, None) + rn**2 + var_extra
    if "flat" in masters:
        flat = masters["flat"]
        variance = variance / flat.data**2 + data**2 * flat.variance / flat.data**4
        data = data / flat.data
        mask |= flat.mask
    header = frame.header.copy()
    for kind, master in masters.items():
        header[f"{kind.upper()}COR"] = (master.name, f"master {kind} applied")
    header["EXPTIME"] = exptime
    out = Frame(data=data.astype(np.float32), variance=variance.astype(np.float32), mask=mask, header=header,
                name=frame.name, amps=frame.amps, amp_map=frame.amp_map, meta=dict(frame.meta))
    return out
