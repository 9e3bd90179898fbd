"""Every extension point of potpyri, in one place.

Two kinds of hooks:

- *provide* hooks (``potpyri_instruments``, ``potpyri_catalog_sources``, ``potpyri_stages``):
  every plugin may answer and the results are collected.
- *do* hooks (``firstresult=True``): the first implementation that returns something other
  than ``None`` wins. The core's defaults are registered as a built-in plugin with
  ``trylast=True``, so any plugin's implementation runs first.

The core calls a *do* hook only with the plugins that concern the instrument being reduced
(:meth:`potpyri_core.plugins.PluginManager.for_instrument`): its own distribution, its
``hooks`` module, plugins that provide no instruments, and the core defaults. A plugin never
tests which instrument it is called for.

Every *do* hook receives ``instrument``, the validated
:class:`~potpyri_core.settings.InstrumentSettings` of the instrument being reduced, and
(where the step has numbers to choose) ``params``, the resolved parameters of its own step
(:mod:`potpyri_core.params`). Run options (``--skip-*``) are applied by the pipeline's
stage list (:mod:`potpyri_core.stagelist`): a skipped step's hook is not called at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    from astropy.io import fits
    from astropy.table import Table

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
    from potpyri_core.stagelist import Stage
    from potpyri_core.stages.astrometry import Solution
    from potpyri_core.stages.photometry import ApertureResult

hookspec = pluggy.HookspecMarker("potpyri")


# ---------------------------------------------------------------- provide hooks
@hookspec
def potpyri_instruments() -> list[dict[str, Any]]:
    """Provide the raw settings of the instruments this plugin supports.

    Returns
    -------
    list of dict
        Raw settings mappings (usually read from TOML with
        :func:`potpyri_core.settings.settings_from_package`); the core validates them
        against :class:`~potpyri_core.settings.InstrumentSettings`.
    """


@hookspec
def potpyri_catalog_sources() -> list[Any]:
    """Provide catalog sources: objects with ``name`` (str), ``bands`` (list of str) and
    ``query(center, radius_arcmin, band=None) -> Table`` returning the canonical columns of
    :mod:`potpyri_core.catalogs.columns` (the ``potpyri-catalogs`` plugin's ``VizierSource``).

    Optional: ``description`` (one line for ``potpyri catalogs list``), ``band_dependent``
    (False when the answer is the same for every band: one cached answer serves all) and
    ``cache_token`` (changes when the source's definition does). The core caches answers in
    HEALPix tiles (:mod:`potpyri_core.catalogs.cache`). A name two plugins provide is a
    problem line; the plugin registered first keeps it.
    """


@hookspec
def potpyri_stages() -> list[Stage]:
    """Provide extra pipeline stages (:class:`potpyri_core.stagelist.Stage`), each placed
    after a named stage, with its own parameter model (e.g. a fringe correction between
    ``frames`` and ``sky``)."""


# ---------------------------------------------------------------- do hooks: reading
@hookspec(firstresult=True)
def potpyri_read_header(instrument: InstrumentSettings, path: Path) -> fits.Header | None:
    """Read the header used to classify ``path`` (main header merged with ``merge_ext``)."""


@hookspec(firstresult=True)
def potpyri_classify(
    instrument: InstrumentSettings, header: fits.Header, path: Path
) -> Classification | None:
    """Classify a file: frame type, target, filter, exposure, binning, amplifiers, time."""


@hookspec(firstresult=True)
def potpyri_assemble(instrument: InstrumentSettings, hdul: fits.HDUList, path: Path) -> Frame | None:
    """Turn a raw file into one frame in electrons.

    Subtract each amplifier's overscan (or reference-pixel level), trim to its data section,
    multiply by its gain, place it in the mosaic (inserting chip gaps), flag SATURATED,
    NONLINEAR, NEIGHBOUR, NO_DATA and VIGNETTED pixels, resolve each amplifier's gain, read
    noise and saturation once onto the frame (``Frame.amps`` / ``Frame.amp_map``) and set an
    initial WCS from the header.
    """


# ---------------------------------------------------------------- do hooks: calibration
@hookspec(firstresult=True)
def potpyri_build_calibration(
    instrument: InstrumentSettings, kind: str, frames: list[Frame], group: str, params: CalibrationParams
) -> Frame | None:
    """Combine assembled frames of one calibration group (``bias``, ``dark``, ``flat``, or
    ``skyflat``: a flat from the night's science frames of one filter, whose sources must be
    masked) into a master. Flat and dark frames arrive bias-subtracted (flats also dark-subtracted) when
    those masters exist; ``group`` names the group in messages. Raise
    :class:`~potpyri_core.stages.calibrate.MissingCalibrationError` when there are too few."""


@hookspec(firstresult=True)
def potpyri_apply_calibrations(
    instrument: InstrumentSettings, frame: Frame, masters: dict[str, Frame], params: CalibrationParams
) -> Frame | None:
    """Subtract bias/dark, divide by the flat and build the error map (variance, e-^2) of one
    assembled frame. ``masters`` holds the matched masters by kind (``--skip-flatten``
    leaves ``flat`` out); a dark master is in e-/s."""


@hookspec(firstresult=True)
def potpyri_mask_cosmic_rays(instrument: InstrumentSettings, frame: Frame, params: CosmicRayParams
                             ) -> np.ndarray | None:
    """Return the cosmic-ray pixels (bool) of a calibrated frame, sky not yet subtracted.
    Not called with ``--skip-cr``."""


@hookspec(firstresult=True)
def potpyri_subtract_sky(instrument: InstrumentSettings, frames: list[Frame], params: SkyParams
                         ) -> list[Frame] | None:
    """Subtract the sky from frames that share one sky model: a single frame for
    ``params.method == "2d"``, all frames of one target (one filter, in time order) for
    ``"dither"``. Return the frames in the same order. Not called with ``--skip-skysub``."""


@hookspec(firstresult=True)
def potpyri_mask_satellites(instrument: InstrumentSettings, frame: Frame, params: SatelliteParams
                            ) -> np.ndarray | None:
    """Return the satellite- and aircraft-trail pixels (bool) of a sky-subtracted frame."""


# ---------------------------------------------------------------- do hooks: astrometry
@hookspec(firstresult=True)
def potpyri_solve_wcs(
    instrument: InstrumentSettings, frame: Frame, reference: Table, params: AstrometryParams
) -> Solution | None:
    """Solve and refine the WCS of a calibrated frame against a reference catalog.

    ``reference`` is in the canonical catalog columns with positions already at the epoch
    of the frame. Returns a :class:`~potpyri_core.stages.astrometry.Solution` (TAN-SIP WCS,
    matched stars, RMS residuals); raise on failure. Not called with ``--skip-gaia``.
    """


# ---------------------------------------------------------------- do hooks: stacking
@hookspec(firstresult=True)
def potpyri_resample(instrument: InstrumentSettings, frame: Frame, grid: fits.Header, shape: tuple[int, int],
                     params: ResampleParams) -> Frame | None:
    """Resample a solved frame (e-) onto the stack grid ``grid``/``shape`` in e-/s, with its
    variance propagated and its mask bits carried."""


@hookspec(firstresult=True)
def potpyri_stack(instrument: InstrumentSettings, frames: list[Frame], params: StackParams) -> Frame | None:
    """Combine frames already resampled to the common grid (e-/s) into a stack.

    The returned frame's ``meta['nframes']`` holds the number of frames used per pixel.
    """


# ---------------------------------------------------------------- do hooks: photometry
@hookspec(firstresult=True)
def potpyri_photometry(instrument: InstrumentSettings, stack: Frame, params: PhotometryParams
                       ) -> ApertureResult | None:
    """Measure the sources of a stack: source table, FWHM, aperture correction, depth.

    The optional PSF fields of the result (``psf_table``, ``psf_stars``, ``epsf_image``,
    ``epsf_oversampling``, ``residual``) become the stack's PSFPHOT, PSFSTARS, PSF and
    RESIDUAL extensions; left None, the stack gets no PSF products.
    """


@hookspec(firstresult=True)
def potpyri_zeropoint(
    instrument: InstrumentSettings, band: str, sources: Table, reference: Table, params: PhotometryParams,
    apcor_mag_err: float,
) -> dict[str, Any] | None:
    """Fit the zero point of a stack's sources against a reference catalog in ``band`` (AB).

    ``apcor_mag_err`` is the magnitude error of the aperture correction, common to every
    source, to be included in ``ZPTMUCER``. Returns ``ZPTMAG``, ``ZPTMUCER``, ``ZPTNSTAR``
    (and optionally ``ZPTSTAT``, ``ZPTAPCER``, the statistical and aperture-correction parts
    of ``ZPTMUCER``); entries whose value is a ``(value, comment)`` tuple are written to the
    stack header as they are (the core's default adds the colour term's ZPTBAND, ZPTCOLOR,
    ZPTCTERM, ZPTCZERO, ZPTCSRC).
    """


# ---------------------------------------------------------------- do hooks: simulation
@hookspec(firstresult=True)
def potpyri_pack_raw(instrument: InstrumentSettings, exposure: Any, binning: int) -> fits.HDUList | None:
    """Pack a simulated exposure (electrons on the focal-plane grid) into the raw format.

    The inverse of :func:`potpyri_assemble`: cut into amplifiers, divide by the gains, add
    bias level, overscan and read noise, clip at the ADU limit, write real keywords.
    """
