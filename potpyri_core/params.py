"""Typed algorithm parameters, one pydantic model per step.

Every number an algorithm uses lives here with the core's default. An instrument overrides
them in its TOML (``[params.cosmic_rays]``), a user on the command line
(``-p cosmic_rays.sigclip=4.5``); the resolved set is validated once and recorded in the
stack's PROVENANCE. Hooks receive the model of their own step, never an untyped bag.

A plugin that adds a stage (see :mod:`potpyri_core.stagelist`) declares its own model, which
becomes one more section of :class:`Parameters` for that run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError

# the astrometry step's parameters are defined next to the step (same frozen, extra-forbidding model)
from potpyri_core.stages.astrometry import AstrometryParams


class StepParams(BaseModel):
    """Base of every step's parameters: unknown names are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CalibrationParams(StepParams):
    """Combining master bias / dark / flat frames."""

    clip_sigma: float = Field(default=3.0, gt=0)
    """Rejection threshold around the per-pixel median (sigma)."""
    clip_iterations: int = Field(default=2, ge=1)
    flat_dead_low: float = Field(default=0.5, gt=0, lt=1)
    """Flat pixels below this fraction of the local level are BAD."""
    flat_dead_high: float = Field(default=1.5, gt=1)
    """Flat pixels above this multiple of the local level are BAD."""
    flat_unlit: float = Field(default=0.2, gt=0, lt=1)
    """Flat level (relative to the median) below which pixels are VIGNETTED."""
    flat_smooth_block: int = Field(default=16, ge=4)
    """Cell size (px) of the large-scale flat model used to find dead pixels."""
    bias_hot_sigma: float = Field(default=15.0, gt=0)
    """Master-bias pixels further than this many robust sigma from the level are BAD."""
    bias_hot_floor_e: float = Field(default=20.0, ge=0)
    """... and further than this many electrons."""
    sky_flat_source_sigma: float = Field(default=3.0, gt=0)
    """Sky flats: pixels of sources above this S/N in a frame divided by the first-pass flat
    are left out of the second pass."""


class CosmicRayParams(StepParams):
    """astroscrappy (L.A.Cosmic) on native, flat-fielded pixels."""

    sigclip: float = Field(default=4.0, gt=0)
    """Laplacian detection threshold (sigma); 4.0 flags 96-99% of > 5 sigma hits on GMOS."""
    sigfrac: float = Field(default=0.3, gt=0)
    objlim: float = Field(default=4.0, gt=0)
    niter: int = Field(default=2, ge=1)
    """Iterations; 2 finds as many as 3 with fewer false positives."""
    grow: int = Field(default=1, ge=0)
    """Pixels by which flagged hits are grown (their faint edges)."""
    edge_pad: int = Field(default=8, ge=0)
    """Mirrored border (px) added before detection (the Laplacian misses edge hits)."""


class SkyParams(StepParams):
    """Sky (background) subtraction."""

    method: Literal["2d", "dither"] = "2d"
    """``2d``: a smooth 2-D background per frame with the sources masked (the sky hook is
    called with one frame at a time). ``dither``: the sky of each frame is made from the
    ``n_nearest`` frames of the same target nearest in time (a median, then a clipped mean
    with the sources masked), scaled to the frame's level and gradient, then a 2-D residual
    background (the hook is called with all frames of a target)."""
    n_nearest: int = Field(default=6, ge=2)
    """Frames that make each frame's sky (``dither``)."""
    clip: float = Field(default=3.0, gt=0)
    """Second pass of ``dither``: values further than this many sigma (each frame's own
    noise) from the median of the frames are rejected and the rest averaged; a mean has
    2/pi of the variance of a median, and the sky's noise enters every frame."""
    box: int = Field(default=128, ge=8)
    """Background mesh size (px)."""
    filter_size: int = Field(default=3, ge=1)
    source_sigma: float = Field(default=3.0, gt=0)
    """Sources above this S/N are masked before the final fit."""
    source_npix: int = Field(default=7, ge=1)
    source_dilate: int = Field(default=11, ge=1)
    """Size (px) of the dilation of the source mask."""


class FringeParams(StepParams):
    """Fringe frame and its subtraction (bands in the instrument's ``fringe_bands``)."""

    frame: Path | None = None
    """A fringe frame to use (FITS, first image HDU, on the grid of the calibrated frames)
    instead of one built from the night's science frames of the band."""
    min_frames: int = Field(default=3, ge=2)
    """Fewest dithered frames of a band that build a fringe frame."""
    clip: float = Field(default=3.0, gt=0)
    """Values further than this many sigma (each frame's own noise) from the median of the
    normalised frames are left out; the rest are averaged."""
    box: int = Field(default=128, ge=8)
    """Mesh (px) of the large-scale background removed from the frames and the fringe frame;
    larger than the fringe spacing."""
    smooth: float = Field(default=0.0, ge=0)
    """Gaussian sigma (px) by which the fringe frame is smoothed (0: none). Smoothing lowers
    the fringe frame's noise but also the amplitude of closely spaced fringes (8% at a 15 px
    spacing for 1 px), which then stay in the frames; unsmoothed, the fringe frame's noise
    costs a stack of the dithered frames nothing (each frame's own noise is part of what is
    subtracted from it)."""


class SatelliteParams(StepParams):
    """Satellite and aircraft trails in sky-subtracted frames."""

    min_length: float = Field(default=300.0, gt=0)
    """Shortest trail (px along its axis)."""
    max_width: float = Field(default=12.0, gt=0)
    """Widest trail core (px)."""
    snr: float = Field(default=2.0, gt=0)
    """Threshold of the 3x3-smoothed S/N image."""
    grow: int = Field(default=4, ge=0)


class ResampleParams(StepParams):
    """Resampling frames onto the common north-up grid."""

    grid_step: int = Field(default=16, ge=1)
    """Pixel map evaluated on this grid (px) and interpolated (error << 1 mpx)."""
    backend: Literal["bilinear", "reproject_interp", "reproject_adaptive"] = "bilinear"
    """``bilinear``: the core's (variance with the squared weights, every mask bit carried);
    ``reproject_*``: the reproject package (optional; its variance is not the true noise)."""


class StackParams(StepParams):
    """Combining resampled frames."""

    method: Literal["sigclip_mean", "median"] = "sigclip_mean"
    sigma: float = Field(default=3.0, gt=0)
    """Rejection threshold (sigma of each value's own error)."""
    snoise: float = Field(default=0.1, ge=0)
    """Sensitivity noise (fraction of the median) added in quadrature, as IRAF's ccdclip."""


class PhotometryParams(StepParams):
    """Aperture and PSF photometry, zero point and limits of a stack."""

    fwhm_init: float = Field(default=5.0, gt=0)
    """First guess of the FWHM (stack pixels)."""
    detect_snr: float = Field(default=5.0, gt=0)
    """Detection threshold of the source list: PSF-filter significance and aperture S/N, both
    with the correlated-noise correction (NOISECOR)."""
    max_sources: int | None = Field(default=None, ge=1)
    """Keep at most this many sources (the brightest; the number dropped is the stack's
    DETCAPPD card and a warning). None: every source above the threshold."""
    psf_max_shift_fwhm: float = Field(default=0.3, gt=0)
    """PSF fits whose centre moved more than this (in FWHM) from the aperture position are
    flagged PSF_SHIFTED and get no ``mag``."""
    injection_stars: int = Field(default=40, ge=0)
    """Artificial stars injected per magnitude step for the injection-recovery limits
    (M5INJ, MC50INJ; 12 steps); 0 turns them off."""
    injection_seed: int = 0
    """Seed of the injected stars' positions (the limits are reproducible)."""
    sn_min: float = Field(default=10.0, gt=0)
    """Lowest S/N of zero-point stars."""
    sn_max: float = Field(default=500.0, gt=0)
    """Highest S/N of zero-point stars."""
    match_arcsec: float = Field(default=1.0, gt=0)
    """Catalog cross-match radius (arcsec)."""


CORE_STEPS: dict[str, type[StepParams]] = {
    "calibration": CalibrationParams,
    "cosmic_rays": CosmicRayParams,
    "fringe": FringeParams,
    "sky": SkyParams,
    "satellites": SatelliteParams,
    "astrometry": AstrometryParams,
    "resample": ResampleParams,
    "stack": StackParams,
    "photometry": PhotometryParams,
}
"""The core's steps and their parameter models."""


class Parameters(BaseModel):
    """The resolved parameters of every step of a run (attribute per step)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calibration: CalibrationParams = CalibrationParams()
    cosmic_rays: CosmicRayParams = CosmicRayParams()
    fringe: FringeParams = FringeParams()
    sky: SkyParams = SkyParams()
    satellites: SatelliteParams = SatelliteParams()
    astrometry: AstrometryParams = AstrometryParams()
    resample: ResampleParams = ResampleParams()
    stack: StackParams = StackParams()
    photometry: PhotometryParams = PhotometryParams()
    plugin_steps: dict[str, SerializeAsAny[StepParams]] = {}
    """Parameters of the steps that plugin stages add, by step name."""

    def step(self, name: str) -> StepParams:
        """The parameters of one step (core or plugin stage) by name."""
        if name in self.plugin_steps:
            return self.plugin_steps[name]
        if name in CORE_STEPS:
            return getattr(self, name)
        raise KeyError(f"no step {name!r}; steps are {', '.join([*CORE_STEPS, *self.plugin_steps])}")

    def to_json(self) -> str:
        """The resolved values of every step as JSON (provenance)."""
        values = self.model_dump(mode="json", exclude={"plugin_steps"})
        values.update({name: model.model_dump(mode="json") for name, model in self.plugin_steps.items()})
        return json.dumps(values, sort_keys=True)


class ParameterError(ValueError):
    """A parameter override names an unknown step or parameter, or has an invalid value."""


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split ``step.name=value``; the value is read as JSON when it parses, else kept as text.

    Raises
    ------
    ParameterError
        When the text is not of the form ``step.name=value``.
    """
    key, sep, raw = text.partition("=")
    step, dot, name = key.strip().partition(".")
    if not sep or not dot or not step or not name:
        raise ParameterError(f"-p {text!r}: expected STEP.NAME=VALUE, e.g. cosmic_rays.sigclip=4.5")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw.strip()
    return step.strip(), name.strip(), value


def resolve(layers: list[tuple[str, dict[str, dict[str, Any]]]],
            extra_steps: dict[str, type[StepParams]] | None = None) -> Parameters:
    """Merge parameter layers (later wins) over the core defaults and validate them.

    Parameters
    ----------
    layers : list of (str, dict)
        ``(where, {step: {name: value}})`` pairs, e.g. the instrument's TOML then the
        command line; ``where`` names the layer in error messages.
    extra_steps : dict, optional
        Parameter models of plugin stages.

    Raises
    ------
    ParameterError
        One line naming the layer, the step and the parameter.
    """
    extra_steps = extra_steps or {}
    clash = sorted(set(extra_steps) & set(CORE_STEPS))
    if clash:
        raise ParameterError(f"plugin stage parameters reuse core step names: {', '.join(clash)}")
    steps = {**CORE_STEPS, **extra_steps}
    merged: dict[str, dict[str, Any]] = {}
    for where, layer in layers:
        for step, values in layer.items():
            if step not in steps:
                raise ParameterError(f"{where}: unknown step {step!r}; steps are {', '.join(sorted(steps))}")
            known = steps[step].model_fields
            for name, value in values.items():
                if name not in known:
                    raise ParameterError(f"{where}: step {step} has no parameter {name!r};"
                                         f" its parameters are {', '.join(known)}")
                merged.setdefault(step, {})[name] = value
                try:
                    steps[step].model_validate(merged[step])
                except ValidationError as exc:
                    msg = exc.errors()[0]["msg"]
                    raise ParameterError(f"{where}: {step}.{name}={value!r}: {msg}") from None
    core = {step: values for step, values in merged.items() if step in CORE_STEPS}
    plugin = {step: model.model_validate(merged.get(step, {})) for step, model in extra_steps.items()}
    return Parameters.model_validate({**core, "plugin_steps": plugin})


def overrides_from_cli(texts: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``-p step.name=value`` options as a parameter layer."""
    layer: dict[str, dict[str, Any]] = {}
    for text in texts:
        step, name, value = parse_override(text)
        layer.setdefault(step, {})[name] = value
    return layer
