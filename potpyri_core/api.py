"""The public surface for plugin authors: import from here, never from core internals.

Everything a plugin needs to describe an instrument, override a step or add a stage, and
test it against the simulator, is re-exported here and documented in ``docs/plugins.md``.
Names here keep their meaning across minor versions of potpyri-core.
"""

from __future__ import annotations

from potpyri_core import hookimpl
from potpyri_core.callib import CalibrationLibrary
from potpyri_core.frames import NO_AMP, AmpFacts, Classification, Frame
from potpyri_core.maskbits import MASK_BITS, UNUSABLE, Bit
from potpyri_core.options import RunOptions
from potpyri_core.params import (
    AstrometryParams,
    CalibrationParams,
    CosmicRayParams,
    Parameters,
    PhotometryParams,
    ResampleParams,
    SatelliteParams,
    SkyParams,
    StackParams,
    StepParams,
)
from potpyri_core.pipeline import Pipeline, RunSummary
from potpyri_core.plugins import PluginManager, instruments_hook
from potpyri_core.products import atomic_write
from potpyri_core.settings import InstrumentSettings, settings_from_package
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from potpyri_core.simulate.truthcheck import TruthCheck
from potpyri_core.stageinput import LostInputError, input_frame, input_header
from potpyri_core.stagelist import Stage
from potpyri_core.stages.calibrate import MissingCalibrationError

__all__ = [
    "MASK_BITS", "NO_AMP", "UNUSABLE", "AmpFacts", "AstrometryParams", "Bit", "CalibrationLibrary",
    "CalibrationParams", "Classification", "CosmicRayParams", "Frame", "InstrumentSettings",
    "LostInputError", "MissingCalibrationError", "Parameters", "PhotometryParams", "Pipeline", "PluginManager", "ResampleParams",
    "RunOptions", "RunSummary", "SatelliteParams", "SkyParams", "StackParams", "Stage", "StepParams", "TruthCheck",
    "atomic_write", "hookimpl", "input_frame", "input_header", "instruments_hook", "settings_from_package", "simulate_instrument_night",
]
