"""Run options of a reduction (what the ``potpyri reduce`` options set), validated.

These are the only defaults: the command line shows them and passes only what a user set.
Algorithm numbers are step parameters (:mod:`potpyri_core.params`), not run options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

STAGES = ("sort", "calibrations", "frames", "fringe", "sky", "astrometry", "stack", "photometry")
"""The core stages of a reduction, in order (plugins may add more)."""


class RunOptions(BaseModel):
    """Options of one reduction run; the defaults are POTPyRI's where it has them."""

    model_config = ConfigDict(extra="forbid")

    target: str | None = None
    """Reduce only this target (calibrations are always used)."""
    workers: int = Field(default=2, ge=1, validation_alias=AliasChoices("workers", "proc"))
    """Local worker processes (the frame is the unit of parallelism); ``proc`` is POTPyRI's name."""
    scheduler: str | None = None
    """Address of a dask.distributed scheduler (``tcp://HOST:PORT``): per-frame jobs go to its
    workers instead of local processes."""
    threads: int | None = Field(default=None, ge=1)
    """OpenMP/BLAS threads per job (None: the cores divided by the workers, 1 on a dask cluster)."""
    include_bad: bool = False
    """Also reduce frames classified BAD or SPEC."""
    redo_sort: bool = True
    """False reuses file_list.txt as it is (keeps a person's edits)."""
    file_list_name: str = "file_list.txt"
    skip_skysub: bool = False
    """Do not subtract the sky."""
    skip_fringe: bool = False
    """Do not subtract fringes (the fringe stage)."""
    skip_flatten: bool = False
    """Do not divide by a flat."""
    skip_cr: bool = False
    """Do not flag cosmic rays."""
    skip_gaia: bool = False
    """Skip the astrometric solution against Gaia (keep the header WCS)."""
    fieldcenter: tuple[float, float] | None = None
    """RA DEC (deg) of the stack centre."""
    out_size: int | None = Field(default=None, gt=0)
    """Side of the stack in unbinned pixels (default: the instrument's)."""
    stages: tuple[str, ...] | None = None
    """Run only these stages (None: every stage, plugins' included)."""
    catalogs: tuple[Path, ...] = ()
    """Saved catalog files used instead of online queries."""
    force: bool = False
    """Redo every product, even those whose inputs, parameters and code are unchanged."""
    params: dict[str, dict[str, Any]] = {}
    """Step parameter overrides (``-p step.name=value``), over the instrument's."""
