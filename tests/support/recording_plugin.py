"""A caller-registered plugin that records every hook call (hook, process id, parameters)
into the file named by ``POTPYRI_TEST_RECORD`` and lets the default run (returns None); it
also adds a stage with its own parameter model. Used by tests/core/test_pipeline_contract.py
through ``PluginManager(extra_plugins=[recording_plugin])``, so worker processes rebuild it
by module name."""

from __future__ import annotations

import json
import os

from pydantic import Field

from potpyri_core.api import Stage, StepParams, hookimpl


def _record(hook: str, params: object = None) -> None:
    path = os.environ.get("POTPYRI_TEST_RECORD")
    if not path:
        return
    values = params.model_dump() if hasattr(params, "model_dump") else None
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"hook": hook, "pid": os.getpid(), "params": values}) + "\n")


class CheckParams(StepParams):
    """Parameters of the recording stage."""

    level: int = Field(default=1, ge=0)


def run_check(pipeline) -> None:
    """The recording stage: note its parameters and that it ran after ``frames``."""
    _record("stage:check", pipeline.params.step("check"))
    pipeline.record("check", True, 0.0, f"level {pipeline.params.step('check').level}")


@hookimpl
def potpyri_stages():
    return [Stage("check", run_check, "night", (), "red/workspace", "nothing", after="frames",
                  params=("check", CheckParams))]


@hookimpl(tryfirst=True)
def potpyri_read_header(instrument, path):
    _record("potpyri_read_header")


@hookimpl(tryfirst=True)
def potpyri_classify(instrument, header, path):
    _record("potpyri_classify")


@hookimpl(tryfirst=True)
def potpyri_assemble(instrument, hdul, path):
    _record("potpyri_assemble")


@hookimpl(tryfirst=True)
def potpyri_build_calibration(instrument, kind, frames, group, params):
    _record("potpyri_build_calibration", params)


@hookimpl(tryfirst=True)
def potpyri_apply_calibrations(instrument, frame, masters, params):
    _record("potpyri_apply_calibrations", params)


@hookimpl(tryfirst=True)
def potpyri_mask_cosmic_rays(instrument, frame, params):
    _record("potpyri_mask_cosmic_rays", params)


@hookimpl(tryfirst=True)
def potpyri_subtract_sky(instrument, frames, params):
    _record("potpyri_subtract_sky", params)


@hookimpl(tryfirst=True)
def potpyri_mask_satellites(instrument, frame, params):
    _record("potpyri_mask_satellites", params)


@hookimpl(tryfirst=True)
def potpyri_solve_wcs(instrument, frame, reference, params):
    _record("potpyri_solve_wcs", params)


@hookimpl(tryfirst=True)
def potpyri_resample(instrument, frame, grid, shape, params):
    _record("potpyri_resample", params)


@hookimpl(tryfirst=True)
def potpyri_stack(instrument, frames, params):
    _record("potpyri_stack", params)


@hookimpl(tryfirst=True)
def potpyri_photometry(instrument, stack, params):
    _record("potpyri_photometry", params)


@hookimpl(tryfirst=True)
def potpyri_zeropoint(instrument, band, sources, reference, params):
    _record("potpyri_zeropoint", params)
