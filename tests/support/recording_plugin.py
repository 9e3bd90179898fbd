"""A caller-registered plugin that records every hook call (hook, process id, parameters)
into a file and lets the default run (returns None); it also adds a stage with its own
parameter model. Used by tests/core/test_pipeline_contract.py through
``PluginManager(extra_plugins=[Recorder(path)])``: worker processes get the recorder by value
(pickled), so it writes to the same file in every process."""

from __future__ import annotations

import json
import os

from pydantic import Field

from potpyri_core.api import Stage, StepParams, hookimpl


def _record(path: str, hook: str, params: object = None) -> None:
    values = params.model_dump() if hasattr(params, "model_dump") else None
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"hook": hook, "pid": os.getpid(), "params": values}) + "\n")


class CheckParams(StepParams):
    """Parameters of the recording stage."""

    level: int = Field(default=1, ge=0)


def run_check(pipeline) -> None:
    """The recording stage: note its parameters and that it ran after ``frames``."""
    recorder = next(p for p in pipeline.plugins.extra_plugins if isinstance(p, Recorder))
    _record(recorder.path, "stage:check", pipeline.params.step("check"))
    pipeline.record("check", True, 0.0, f"level {pipeline.params.step('check').level}")


class Recorder:
    """The recording plugin, writing to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = str(path)

    @hookimpl
    def potpyri_stages(self):
        return [Stage("check", run_check, "night", (), "red/workspace", "nothing", after="frames",
                      params=("check", CheckParams))]

    @hookimpl(tryfirst=True)
    def potpyri_read_header(self, instrument, path):
        _record(self.path, "potpyri_read_header")

    @hookimpl(tryfirst=True)
    def potpyri_classify(self, instrument, header, path):
        _record(self.path, "potpyri_classify")

    @hookimpl(tryfirst=True)
    def potpyri_assemble(self, instrument, hdul, path):
        _record(self.path, "potpyri_assemble")

    @hookimpl(tryfirst=True)
    def potpyri_build_calibration(self, instrument, kind, frames, group, params):
        _record(self.path, "potpyri_build_calibration", params)

    @hookimpl(tryfirst=True)
    def potpyri_apply_calibrations(self, instrument, frame, masters, params):
        _record(self.path, "potpyri_apply_calibrations", params)

    @hookimpl(tryfirst=True)
    def potpyri_mask_cosmic_rays(self, instrument, frame, params):
        _record(self.path, "potpyri_mask_cosmic_rays", params)

    @hookimpl(tryfirst=True)
    def potpyri_subtract_sky(self, instrument, frames, params):
        _record(self.path, "potpyri_subtract_sky", params)

    @hookimpl(tryfirst=True)
    def potpyri_mask_satellites(self, instrument, frame, params):
        _record(self.path, "potpyri_mask_satellites", params)

    @hookimpl(tryfirst=True)
    def potpyri_solve_wcs(self, instrument, frame, reference, params):
        _record(self.path, "potpyri_solve_wcs", params)

    @hookimpl(tryfirst=True)
    def potpyri_resample(self, instrument, frame, grid, shape, params):
        _record(self.path, "potpyri_resample", params)

    @hookimpl(tryfirst=True)
    def potpyri_stack(self, instrument, frames, params):
        _record(self.path, "potpyri_stack", params)

    @hookimpl(tryfirst=True)
    def potpyri_photometry(self, instrument, stack, params):
        _record(self.path, "potpyri_photometry", params)

    @hookimpl(tryfirst=True)
    def potpyri_zeropoint(self, instrument, band, sources, reference, params):
        _record(self.path, "potpyri_zeropoint", params)
