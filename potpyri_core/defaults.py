"""The core's default implementations of the *do* hooks (registered with ``trylast``)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table

from potpyri_core import hookimpl
from potpyri_core.frames import Classification, Frame
from potpyri_core.maskbits import Bit
from potpyri_core.settings import InstrumentSettings
from potpyri_core.stages import (
    astrometry,
    calibrate,
    classify,
    header_wcs,
    mask,
    photometry,
    psfphot,
    rawformat,
    sky,
    stack,
)


@hookimpl(trylast=True)
def potpyri_read_header(instrument: InstrumentSettings, path: Path) -> fits.Header:
    """Default: main header merged with the instrument's ``merge_ext``."""
    return classify.read_header(instrument, path)


@hookimpl(trylast=True)
def potpyri_classify(instrument: InstrumentSettings, header: fits.Header, path: Path) -> Classification:
    """Default: the instrument's frame-typing rules and keyword map."""
    return classify.classify(instrument, header, path)


@hookimpl(trylast=True)
def potpyri_assemble(instrument: InstrumentSettings, hdul: fits.HDUList, path: Path) -> Frame:
    """Default: overscan, trim, gain and mosaic from the amplifier settings and sections; a
    celestial starting WCS from the header keywords when the raw WCS is not one."""
    merged = classify.merged_header(instrument, hdul)
    frame = rawformat.assemble(instrument, hdul, path, merged)
    header_wcs.apply_starting_wcs(frame.header, merged, instrument, frame.data.shape)
    return frame


@hookimpl(trylast=True)
def potpyri_build_calibration(instrument: InstrumentSettings, kind: str, frames: list[Frame], options: Any) -> Frame:
    """Default: sigma-clipped mean; flats normalised, bad pixels from bias and flat."""
    group = options.get("group", kind) if isinstance(options, dict) else kind
    return calibrate.build_master(kind, frames, instrument.calibrations.min_frames, group)


@hookimpl(trylast=True)
def potpyri_apply_calibrations(instrument: InstrumentSettings, frame: Frame, masters: dict[str, Frame],
                               options: Any) -> Frame:
    """Default: bias, dark, flat and the error map."""
    return calibrate.apply_calibrations(frame, masters, float(frame.meta["exptime"]))


@hookimpl(trylast=True)
def potpyri_mask(instrument: InstrumentSettings, frame: Frame, options: Any) -> np.ndarray:
    """Default: cosmic rays (unless skipped) and a grown halo around saturated pixels."""
    bits = mask.grow(frame.mask, Bit.SATURATED, 2).astype(np.uint16) * np.uint16(Bit.NEIGHBOUR)
    if not options.skip_cr:
        sat_e = instrument.detector.saturation_adu * min(a.gain for a in instrument.detector.amplifiers)
        crs = mask.cosmic_ray_mask(frame, saturation_e=sat_e)
        bits |= crs.astype(np.uint16) * np.uint16(Bit.COSMIC_RAY)
        frame.header["NCRPIX"] = (int(crs.sum()), "pixels flagged as cosmic rays")
    return bits


@hookimpl(trylast=True)
def potpyri_subtract_sky(instrument: InstrumentSettings, frames: list[Frame], options: Any) -> list[Frame]:
    """Default: a 2-D background per frame (optical)."""
    return [sky.subtract_sky(f) for f in frames]


@hookimpl(trylast=True)
def potpyri_solve_wcs(instrument: InstrumentSettings, frame: Frame, reference: Table, options: Any
                      ) -> astrometry.Solution:
    """Default: blind solution (triangle matching to the catalog, then astrometry.net), refined
    on the instrument's known distortion with as many terms as the matched stars allow."""
    params = astrometry.AstrometryParams(fwhm_init=options.fwhm_init)
    return astrometry.solve_frame(frame, reference, instrument, params)


@hookimpl(trylast=True)
def potpyri_stack(instrument: InstrumentSettings, frames: list[Frame], options: Any) -> Frame:
    """Default: per-frame inverse-variance weights, clipped mean (``stacking.sigma``), or a
    median when the instrument's ``stacking.method`` says so."""
    weights = [stack.frame_weight(f.variance, f.mask) for f in frames]
    data, var, mask, nframes = stack.combine([f.data for f in frames], [f.variance for f in frames],
                                             [f.mask for f in frames], weights, sigma=instrument.stacking.sigma,
                                             method=instrument.stacking.method)
    out = Frame(data=data, variance=var, mask=mask, header=frames[0].header.copy(), name="stack")
    out.meta["nframes"] = nframes
    out.meta["weights"] = weights
    return out


@hookimpl(trylast=True)
def potpyri_photometry(instrument: InstrumentSettings, stack: Frame, options: Any) -> photometry.ApertureResult:
    """Default: aperture photometry with an aperture correction and empty-aperture depth, then
    PSF photometry with an ePSF built from the stack's stars (skipped, with a warning, when
    too few stars qualify)."""
    result = photometry.aperture_photometry_stack(stack.data, stack.variance, stack.mask, stack.wcs,
                                                  options.fwhm_init)
    return psfphot.psf_photometry_stack(stack.data, stack.variance, stack.mask, stack.wcs, result)


@hookimpl(trylast=True)
def potpyri_zeropoint(instrument: InstrumentSettings, band: str, sources: Table, reference: Table,
                      options: Any) -> dict[str, Any]:
    """Default: clipped weighted mean of catalog minus instrumental magnitudes."""
    return photometry.zero_point(sources, reference, band, options.phot_sn_min, options.phot_sn_max)


@hookimpl(trylast=True)
def potpyri_pack_raw(instrument: InstrumentSettings, exposure: Any, binning: int) -> fits.HDUList:
    """Default: amplifiers cut from the focal-plane grid as the settings describe."""
    seed = zlib.crc32(f"{exposure.kind}-{exposure.index}-{exposure.config.seed}".encode())
    rng = np.random.default_rng(seed)
    return rawformat.pack(instrument, exposure, binning, rng)

