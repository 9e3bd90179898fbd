"""Every extension point of potpyri, in one place.

Two kinds of hooks:

- *provide* hooks (``potpyri_instruments``, ``potpyri_catalog_sources``): every plugin may
  answer and the results are collected.
- *do* hooks (``firstresult=True``): the first implementation that returns something other
  than ``None`` wins. The core's defaults are registered as a built-in plugin with
  ``trylast=True``; an instrument plugin implements a *do* hook only where its instrument
  differs, and returns ``None`` for every instrument that is not its own.

Every *do* hook receives ``instrument``, the validated
:class:`~potpyri_core.settings.InstrumentSettings` of the instrument being reduced.
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
    from potpyri_core.settings import InstrumentSettings
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

    Subtract each amplifier's overscan, trim to its data section, multiply by its gain,
    place it in the mosaic (inserting chip gaps), flag saturated pixels (in raw ADU),
    compute the read-noise map and set an initial WCS from the header.
    """


# ---------------------------------------------------------------- do hooks: calibration
@hookspec(firstresult=True)
def potpyri_build_calibration(
    instrument: InstrumentSettings, kind: str, frames: list[Frame], options: Any
) -> Frame | None:
    """Combine assembled frames of one kind (``bias``, ``dark``, ``flat``) into a master."""


@hookspec(firstresult=True)
def potpyri_apply_calibrations(
    instrument: InstrumentSettings, frame: Frame, masters: dict[str, Frame], options: Any
) -> Frame | None:
    """Subtract bias/dark, divide by the flat and build the error map of one frame."""


@hookspec(firstresult=True)
def potpyri_mask(instrument: InstrumentSettings, frame: Frame, options: Any) -> np.ndarray | None:
    """Return the data-quality bits (``uint16``) to OR into the frame's mask.

    The default flags cosmic rays (astroscrappy on native pixels) and satellite trails.
    """


@hookspec(firstresult=True)
def potpyri_subtract_sky(
    instrument: InstrumentSettings, frames: list[Frame], options: Any
) -> list[Frame] | None:
    """Subtract the sky from the frames of one target (2-D model, or from dithers in the NIR)."""


# ---------------------------------------------------------------- do hooks: astrometry
@hookspec(firstresult=True)
def potpyri_solve_wcs(
    instrument: InstrumentSettings, frame: Frame, reference: Table, options: Any
) -> Solution | None:
    """Solve and refine the WCS of a calibrated frame against a reference catalog.

    ``reference`` is in the canonical catalog columns with positions already at the epoch
    of the frame. Returns a :class:`~potpyri_core.stages.astrometry.Solution` (TAN-SIP WCS,
    matched stars, RMS residuals); raise on failure.
    """


# ---------------------------------------------------------------- do hooks: stacking
@hookspec(firstresult=True)
def potpyri_stack(instrument: InstrumentSettings, frames: list[Frame], options: Any) -> Frame | None:
    """Combine frames already resampled to the common grid (e-/s) into a stack.

    The returned frame's ``meta['nframes']`` holds the number of frames used per pixel.
    """


# ---------------------------------------------------------------- do hooks: photometry
@hookspec(firstresult=True)
def potpyri_photometry(instrument: InstrumentSettings, stack: Frame, options: Any) -> ApertureResult | None:
    """Measure the sources of a stack: source table, FWHM, aperture correction, depth.

    The optional PSF fields of the result (``psf_table``, ``psf_stars``, ``epsf_image``,
    ``epsf_oversampling``, ``residual``) become the stack's PSFPHOT, PSFSTARS, PSF and
    RESIDUAL extensions; left None, the stack gets no PSF products.
    """


@hookspec(firstresult=True)
def potpyri_zeropoint(
    instrument: InstrumentSettings, band: str, sources: Table, reference: Table, options: Any
) -> dict[str, Any] | None:
    """Fit the zero point of a stack's sources against a reference catalog in ``band`` (AB).

    Returns ``ZPTMAG``, ``ZPTMUCER``, ``ZPTNSTAR`` (and optionally more header cards).
    """


# ---------------------------------------------------------------- do hooks: simulation
@hookspec(firstresult=True)
def potpyri_pack_raw(instrument: InstrumentSettings, exposure: Any, binning: int) -> fits.HDUList | None:
    """Pack a simulated exposure (electrons on the focal-plane grid) into the raw format.

    The inverse of :func:`potpyri_assemble`: cut into amplifiers, divide by the gains, add
    bias level, overscan and read noise, clip at the ADU limit, write real keywords.
    """
