"""Run options of a reduction (what the ``potpyri reduce`` options set), validated."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

STAGES = ("sort", "calibrations", "frames", "astrometry", "stack", "photometry")
"""The stages of a reduction, in order."""


class RunOptions(BaseModel):
    """Options of one reduction run; the defaults are POTPyRI's where it has them."""

    model_config = ConfigDict(extra="forbid")

    target: str | None = None
    proc: int = Field(default=2, ge=1)
    include_bad: bool = False
    redo_sort: bool = True
    file_list_name: str = "file_list.txt"
    phot_sn_min: float = Field(default=10.0, gt=0)
    phot_sn_max: float = Field(default=500.0, gt=0)
    fwhm_init: float = Field(default=5.0, gt=0)
    """First guess of the FWHM in (binned) pixels."""
    skip_skysub: bool = False
    skip_flatten: bool = False
    skip_cr: bool = False
    skip_gaia: bool = False
    """Skip the astrometric refinement against Gaia (keep the header WCS)."""
    fieldcenter: tuple[float, float] | None = None
    out_size: int | None = Field(default=None, gt=0)
    stages: tuple[str, ...] = STAGES
    catalogs: tuple[Path, ...] = ()
    """Saved catalog files used instead of online queries."""
