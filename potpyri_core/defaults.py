"""The core's default implementations of the *do* hooks (registered with ``trylast``).

Each hook imports its step module when it first runs, so that loading the plugins (e.g.
``potpyri instruments``) does not import photutils, astroscrappy and scipy.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits
from astropy.table import Table

from potpyri_core import hookimpl
from potpyri_core.frames import Classification, Frame
from potpyri_core.params import (
    AstrometryParams,
    CalibrationParams,
    CosmicRayParams,
    PhotometryParams,
    ResampleParams,
    SatelliteParams,
    SkyParams,
    StackParams,
)
from potpyri_core.settings import InstrumentSettings

if TYPE_CHECKING:
    from potpyri_core.stages.astrometry import Solution
    from potpyri_core.stages.photometry import ApertureResult


@hookimpl(trylast=True)
def potpyri_read_header(instrument: InstrumentSettings, path: Path) -> fits.Header:
    """Default: main header merged with the instrument's ``merge_ext``."""
    from potpyri_core.stages import classify
    return classify.read_header(instrument, path)


@hookimpl(trylast=True)
def potpyri_classify(instrument: InstrumentSettings, header: fits.Header, path: Path) -> Classification:
    """Default: the instrument's frame-typing rules and keyword map."""
    from potpyri_core.stages import classify
    return classify.classify(instrument, header, path)


@hookimpl(trylast=True)
def potpyri_assemble(instrument: InstrumentSettings, hdul: fits.HDUList, path: Path) -> Frame:
    """Default: overscan, trim, gain and mosaic from the amplifier settings and sections; a
    celestial starting WCS from the header keywords when the raw WCS is not one."""
    from potpyri_core.stages import classify, header_wcs, rawformat
    merged = classify.merged_header(instrument, hdul)
    frame = rawformat.assemble(instrument, hdul, path, merged)
    header_wcs.apply_starting_wcs(frame.header, merged, instrument, frame.data.shape)
    return frame


@hookimpl(trylast=True)
def potpyri_build_calibration(instrument: InstrumentSettings, kind: str, frames: list[Frame], group: str,
                              params: CalibrationParams) -> Frame:
    """Default: sigma-clipped mean; flats normalised, bad pixels from bias and flat; sky flats
    from the science frames with their sources masked (two passes)."""
    from potpyri_core.stages import calibrate, skyflat
    if kind == "skyflat":
        return skyflat.build_sky_flat(frames, instrument.calibrations.min_frames, group, params)
    return calibrate.build_master(kind, frames, instrument.calibrations.min_frames, group, params)


@hookimpl(trylast=True)
def potpyri_apply_calibrations(instrument: InstrumentSettings, frame: Frame, masters: dict[str, Frame],
                               params: CalibrationParams) -> Frame:
    """Default: bias, dark, flat and the error map."""
    from potpyri_core.stages import calibrate
    return calibrate.apply_calibrations(frame, masters, float(frame.meta["exptime"]))


@hookimpl(trylast=True)
def potpyri_mask_cosmic_rays(instrument: InstrumentSettings, frame: Frame, params: CosmicRayParams) -> np.ndarray:
    """Default: astroscrappy on the gap-filled, mirror-padded frame."""
    from potpyri_core.stages import mask
    return mask.cosmic_ray_mask(frame, params)


@hookimpl(trylast=True)
def potpyri_subtract_sky(instrument: InstrumentSettings, frames: list[Frame], params: SkyParams) -> list[Frame]:
    """Default: a 2-D background per frame (optical) or the sky from the dithers (NIR)."""
    from potpyri_core.stages import sky
    if params.method == "dither":
        return sky.subtract_dither_sky(frames, params)
    return [sky.subtract_sky(f, params) for f in frames]


@hookimpl(trylast=True)
def potpyri_mask_satellites(instrument: InstrumentSettings, frame: Frame, params: SatelliteParams) -> np.ndarray:
    """Default: long straight segments of the S/N image."""
    from potpyri_core.stages import mask
    return mask.satellite_mask(frame.data, np.sqrt(frame.variance), frame.mask, params)


@hookimpl(trylast=True)
def potpyri_solve_wcs(instrument: InstrumentSettings, frame: Frame, reference: Table, params: AstrometryParams
                      ) -> Solution:
    """Default: blind solution (triangle matching to the catalog, then astrometry.net), refined
    on the instrument's known distortion with as many terms as the matched stars allow."""
    from potpyri_core.stages import astrometry
    return astrometry.solve_frame(frame, reference, instrument, params)


@hookimpl(trylast=True)
def potpyri_resample(instrument: InstrumentSettings, frame: Frame, grid: fits.Header, shape: tuple[int, int],
                     params: ResampleParams) -> Frame:
    """Default: bilinear resampling with the variance propagated with the squared weights, or
    the ``reproject`` package (``params.backend``)."""
    from astropy.wcs import WCS

    from potpyri_core.stages import ccdwcs, resample, resample_reproject
    exptime = float(frame.header["EXPTIME"])
    ccd_maps = ccdwcs.maps_from_header(frame.header)
    if params.backend == "bilinear":
        data, var, bits = resample.resample(frame.data / exptime, frame.variance / exptime**2, frame.mask, frame.wcs,
                                            WCS(grid), shape, step=params.grid_step, ccd_maps=ccd_maps)
    elif ccd_maps is not None:
        raise ValueError(f"{frame.name}: resample.backend={params.backend} cannot apply the per-CCD pixel maps of"
                         " this frame (astrometry_per_ccd); use resample.backend=bilinear")
    else:
        data, var, bits = resample_reproject.resample(frame.data / exptime, frame.variance / exptime**2, frame.mask,
                                                      frame.wcs, WCS(grid), shape, backend=params.backend)
    return Frame(data=data, variance=var, mask=bits, header=grid.copy(), name=frame.name)


@hookimpl(trylast=True)
def potpyri_stack(instrument: InstrumentSettings, frames: list[Frame], params: StackParams) -> Frame:
    """Default: per-frame inverse-variance weights (``meta['weight']`` when the resampling
    stage measured it), clipped mean, or a median, in row blocks."""
    from potpyri_core.stages import stack as stacking
    weights = [f.meta["weight"] if "weight" in f.meta else stacking.frame_weight(f.variance, f.mask) for f in frames]
    data, var, bits, nframes = stacking.combine([f.data for f in frames], [f.variance for f in frames],
                                                [f.mask for f in frames], weights, sigma=params.sigma,
                                                snoise=params.snoise, method=params.method)
    out = Frame(data=data, variance=var, mask=bits, header=frames[0].header.copy(), name="stack")
    out.meta["nframes"] = nframes
    out.meta["weights"] = weights
    return out


@hookimpl(trylast=True)
def potpyri_photometry(instrument: InstrumentSettings, stack: Frame, params: PhotometryParams
                       ) -> ApertureResult:
    """Default: aperture photometry with an aperture correction and empty-aperture depth (where
    all frames contribute, from ``stack.meta["nframes"]`` when the stack has it), then
    PSF photometry with an ePSF built from the stack's stars (skipped, with a warning, when
    too few stars qualify)."""
    from potpyri_core.stages import photometry, psfphot
    result = photometry.aperture_photometry_stack(stack.data, stack.variance, stack.mask, stack.wcs, params,
                                                  nframes=stack.meta.get("nframes"))
    return psfphot.psf_photometry_stack(stack.data, stack.variance, stack.mask, stack.wcs, result,
                                        max_shift_fwhm=params.psf_max_shift_fwhm)


@hookimpl(trylast=True)
def potpyri_zeropoint(instrument: InstrumentSettings, band: str, sources: Table, reference: Table,
                      params: PhotometryParams, apcor_mag_err: float) -> dict[str, Any]:
    """Default: clipped weighted mean of the reference minus instrumental magnitudes, the
    reference put into the filter's system with the colour term the settings give
    (published, fixed or fitted); the term's header cards are returned as (value, comment)."""
    from potpyri_core.stages import colourterms, photometry
    source = instrument.zeropoint.source_for(band, colourterms.field_dec(reference))
    term = colourterms.colour_term(sources, reference, band, source, params)
    filter_reference = colourterms.in_filter_system(reference, band, term)
    zp = photometry.zero_point(sources, filter_reference, band, params.sn_min, params.sn_max, params.match_arcsec,
                               apcor_mag_err)
    return {**zp, **term.cards()}


@hookimpl(trylast=True)
def potpyri_pack_raw(instrument: InstrumentSettings, exposure: Any, binning: int) -> fits.HDUList:
    """Default: amplifiers cut from the focal-plane grid as the settings describe (NIR arrays:
    coadds, reference pixels and output channels, :mod:`potpyri_core.simulate.nir`)."""
    from potpyri_core.simulate import nir
    from potpyri_core.stages import rawformat
    seed = zlib.crc32(f"{exposure.kind}-{exposure.index}-{exposure.config.seed}".encode())
    rng = np.random.default_rng(seed)
    if instrument.band == "nir":
        return nir.pack_coadds(instrument, exposure, binning, rng)
    return rawformat.pack(instrument, exposure, binning, rng)
