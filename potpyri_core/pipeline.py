"""The reduction pipeline: runs the stage list (:mod:`potpyri_core.stagelist`) over a night.

The core stages (:data:`potpyri_core.corestages.CORE_STAGES`), in order, plus any stage a
plugin adds with ``potpyri_stages``:

``sort``          classify the raw files, write ``file_list.txt``
``calibrations``  master bias / dark / flat per calibration group (``red/cals/``)
``frames``        per science frame: assemble, calibrate, error map, cosmic rays (``red/workspace/``)
``sky``           sky subtraction (per frame, or per target from the dithers) and satellite trails
``astrometry``    per science frame: solve and refine the WCS against the reference catalog
``stack``         resample to a common north-up grid and combine (``red/*.stk.fits``)
``photometry``    aperture and PSF photometry, zero point, limiting magnitudes (into the stack)

Each stage reads the previous stage's files, so a stage can be re-run alone. The frame is
the unit of parallelism (``--workers`` local processes, or the workers of a dask cluster
with ``--scheduler``, each rebuilding the same plugin set; see
:mod:`potpyri_core.executors`). One failing frame or target (or a worker that died under
it) is logged and reported in the summary; the others go on.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from potpyri_core import products
from potpyri_core.callib import CalibrationLibrary
from potpyri_core.catalogs.cache import reduction_cache
from potpyri_core.catalogs.given import catalogs_for_run
from potpyri_core.catalogs.local import LocalCatalog
from potpyri_core.catalogs.online import FieldCatalogs
from potpyri_core.corestages import CORE_STAGES, JobContext
from potpyri_core.executors import JobRunner
from potpyri_core.options import RunOptions
from potpyri_core.params import Parameters, resolve
from potpyri_core.plugins import InstrumentHooks, PluginManager
from potpyri_core.progress import progress
from potpyri_core.runlock import RunLock, remove_stale_temporaries
from potpyri_core.settings import InstrumentSettings
from potpyri_core.stagelist import Stage, ordered

log = logging.getLogger("potpyri")

CATALOG_CENTRE_GRID_DEG = 0.005
"""Catalog queries are centred on a grid of this step (deg), so re-runs hit the cache."""


@dataclass
class StageResult:
    """Outcome of one unit of work (a frame, a calibration, a target)."""

    stage: str
    item: str
    ok: bool
    seconds: float
    message: str = ""
    status: str = ""
    """What the summary shows: ``ok``, ``FAILED``, or e.g. ``BAD`` for a frame set aside."""

    def __post_init__(self) -> None:
        self.status = self.status or ("ok" if self.ok else "FAILED")


@dataclass
class RunSummary:
    """Everything that happened in a run, printed as a table at the end."""

    results: list[StageResult] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stacks: list[Path] = field(default_factory=list)
    products: list[Path] = field(default_factory=list)
    """Other products written (masters, the QA report), named in the closing lines."""
    wall_seconds: float = 0.0
    main_cpu: float = 0.0
    """CPU seconds of the main process (its threads, and the jobs it ran itself)."""
    worker_cpu: float = 0.0
    """CPU seconds of the worker processes (see :class:`~potpyri_core.executors.JobRunner`)."""
    cores: int = 1
    """Cores the run could use (this machine's, or the dask cluster's worker threads)."""

    def cpu_line(self) -> str:
        """CPU seconds of the whole run against wall time x cores."""
        cpu = self.main_cpu + self.worker_cpu
        share = cpu / (self.wall_seconds * self.cores) if self.wall_seconds > 0 else 0.0
        return (f"cpu seconds: {cpu:.1f} (main {self.main_cpu:.1f}, workers {self.worker_cpu:.1f}) in"
                f" {self.wall_seconds:.1f} s wall on {self.cores} cores: {share:.2f} of wall x cores")

    @property
    def failures(self) -> list[StageResult]:
        """The units of work that failed."""
        return [r for r in self.results if not r.ok]

    def table(self) -> str:
        """Human-readable summary."""
        lines = [f"{'stage':<13}{'item':<44}{'status':<8}{'seconds':>8}  message"]
        for r in self.results:
            lines.append(f"{r.stage:<13}{r.item[:43]:<44}{r.status:<8}{r.seconds:8.1f}  {r.message}")
        lines.append("stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.stage_seconds.items()))
        lines.append(self.cpu_line())
        return "\n".join([*lines, *self.closing()])

    @property
    def set_aside(self) -> list[StageResult]:
        """The units of work that failed or were set aside (e.g. BAD frames)."""
        return [r for r in self.results if not r.ok or r.status != "ok"]

    def closing(self) -> list[str]:
        """Closing lines: every BAD or failed item with its reason, then the products written."""
        aside = self.set_aside
        lines = [f"not reduced or failed ({len(aside)}):" if aside else "nothing failed or set aside"]
        lines += [f"  {r.stage} {r.item}: {r.status} {r.message}" for r in aside]
        written = [*self.products, *self.stacks]
        lines.append(f"products ({len(written)}):" if written else "no products written")
        lines += [f"  {path}" for path in written]
        return lines


def stage_list(hooks: InstrumentHooks) -> list[Stage]:
    """The core stages with the stages of the instrument's plugins inserted where they ask."""
    extra = [stage for result in hooks.potpyri_stages() for stage in (result or [])]
    return ordered(CORE_STAGES, extra)


class ProductsNotWritableError(OSError):
    """``DATA_PATH/red`` cannot be created or written."""


class Pipeline:
    """Reduce one night of one instrument.

    Parameters
    ----------
    instrument : InstrumentSettings
        Validated settings of the instrument.
    data_path : Path
        Folder with the raw files (never modified); products go to ``data_path/red``.
    options : RunOptions
        The run options (``options.params`` holds the user's ``-p`` overrides).
    plugins : PluginManager, optional
        Plugin manager to use (a new one by default); the same plugin set, including
        plugins the caller registered, is used in every worker process.

    Raises
    ------
    ValueError
        For an unknown stage name; :class:`~potpyri_core.params.ParameterError` for an
        invalid parameter override.
    """

    def __init__(self, instrument: InstrumentSettings, data_path: Path, options: RunOptions,
                 plugins: PluginManager | None = None) -> None:
        self.instrument = instrument
        self.data_path = Path(data_path)
        self.options = options
        self.plugins = plugins or PluginManager()
        self.hooks = self.plugins.for_instrument(instrument.name)
        self.stages = stage_list(self.hooks)
        names = [s.name for s in self.stages]
        unknown = [s for s in options.stages or () if s not in names]
        if unknown:
            raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(names)}")
        self.selected: tuple[str, ...] = tuple(options.stages) if options.stages else tuple(names)
        extra_steps = dict(s.params for s in self.stages if s.params is not None)
        self.params: Parameters = resolve([(f"{instrument.name} settings [params]", instrument.params),
                                           ("-p", options.params)], extra_steps)
        self.red = self.data_path / "red"
        self.cals = self.red / "cals"
        self.work = self.red / "workspace"
        self.summary = RunSummary()
        self.table: Table | None = None
        self.stage: Stage = self.stages[0]
        self.made: set[Path] = set()
        """Masters written by this run (others come from an earlier run: named in the summary)."""
        self.runner = JobRunner(options.workers, options.scheduler, options.threads)

    # -------------------------------------------------------------- what stages use
    @property
    def library(self) -> CalibrationLibrary:
        """The night's calibration library (needs the sorted table)."""
        assert self.table is not None
        return CalibrationLibrary(self.instrument, self.table, self.cals)

    def job_context(self) -> JobContext:
        """Picklable context for jobs of the current stage (hooks its skips turn off)."""
        return JobContext(self.instrument, self.params, self.plugins.spec,
                          frozenset(self.stage.skipped_hooks(self.options)))

    def record(self, item: str, ok: bool, seconds: float, message: str = "", status: str = "") -> None:
        """Record the outcome of one unit of work of the current stage (``status`` other than
        ok/FAILED, e.g. ``BAD``, is logged as a warning)."""
        result = StageResult(self.stage.name, item, ok, seconds, message, status)
        self.summary.results.append(result)
        level = logging.ERROR if not ok else logging.WARNING if result.status != "ok" else logging.INFO
        log.log(level, "%s %s: %s %s", self.stage.name, item, result.status, message)

    def map(self, func: Any, jobs: list, what: str = "") -> list:
        """Run ``func`` on every job (in ``--workers`` processes or on the dask cluster),
        logging progress as jobs end; results come back in the order of the jobs.

        A job that raises (or whose worker died) gets ``func.failure(job, exc)`` as its result
        when ``func`` has that method (the other jobs go on); otherwise the exception is raised.
        """
        with progress(len(jobs), what or self.stage.name) as bar:
            count = iter(range(1, len(jobs) + 1))

            def done(_: int) -> None:
                bar.update()
                if what:
                    log.info("%s %d/%d done", what, next(count), len(jobs))

            outcomes = self.runner.map(func, jobs, done)
        failure = getattr(func, "failure", None)
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome.error is not None and failure is None:
                raise outcome.error
            if outcome.error is not None:
                log.debug("job failed", exc_info=outcome.error)
                outcome.value = failure(job, outcome.error)
        return [outcome.value for outcome in outcomes]

    def rows(self, kind: str) -> Table:
        """Rows of the file table of one type (``SCIENCE``, ``BIAS``, ...)."""
        assert self.table is not None
        return self.table[self.table["Type"] == kind]

    def detector_groups(self) -> dict[str, Table]:
        """Science rows by ``TargType`` (target, filter, amplifiers or chip, binning): the
        frames that share a detector, for a dithered sky and frame-to-frame alignment."""
        sci = self.rows("SCIENCE")
        return {tt: sci[sci["TargType"] == tt] for tt in sorted(set(sci["TargType"]))}

    def science_groups(self) -> dict[str, Table]:
        """Science rows by stack group: ``TargType``, or with ``astrometry_per_ccd`` target,
        filter and binning (every chip file of a chip-per-file camera in one mosaic)."""
        if not self.instrument.astrometry_per_ccd:
            return self.detector_groups()
        sci = self.rows("SCIENCE")
        keys = np.array([f"{r['Target']}_{r['Filter']}_{r['Binning']}" for r in sci], dtype=object)
        return {k: sci[keys == k] for k in sorted(set(keys))}

    def workspace_path(self, raw_name: str) -> Path:
        """Per-frame product in ``red/workspace``."""
        return products.workspace_path(self.red, raw_name)

    def stack_path(self, group: Table) -> Path:
        """Stack of one group (see :func:`potpyri_core.products.stack_path`)."""
        return products.stack_path(self.red, group)

    def reference_catalog(self) -> LocalCatalog | FieldCatalogs | None:
        """Saved catalogs given with ``--catalog`` (or remembered for a ``--stages`` re-run), else
        the online sources around the field (cached in ``red/catalogs``); None when no
        calibrated frame tells where the field is."""
        saved = catalogs_for_run(self.data_path, self.options.catalogs, self.selected)
        if saved:
            return LocalCatalog(list(saved), self.instrument.zeropoint)
        paths = [self.workspace_path(r["File"]) for r in self.rows("SCIENCE")]
        paths = [p for p in paths if p.exists()]
        if not paths:
            return None
        header = fits.getheader(paths[0])
        wcs = WCS(header, relax=True)
        ny, nx = header["NAXIS2"], header["NAXIS1"]
        half_diagonal = wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2).separation(wcs.pixel_to_world(0, 0))
        # the centre comes from the raw header (stable when the WCS is re-solved) and is
        # snapped to a grid, so that every stage and every re-run asks the same question
        step = CATALOG_CENTRE_GRID_DEG
        ra = round(float(header["PNTRA"]) / step) * step
        dec = round(float(header["PNTDEC"]) / step) * step
        center = SkyCoord(ra, dec, unit="deg")
        radius = half_diagonal.arcmin * 1.2 + 0.5 + step * 60.0  # dithers, pointing errors, snapping
        cache = reduction_cache(self.data_path)
        return FieldCatalogs(self.plugins.catalog_sources(), cache, center, radius, self.instrument.zeropoint)

    # -------------------------------------------------------------- running
    def run(self) -> RunSummary:
        """Run the selected stages in order and return the summary.

        Raises
        ------
        ProductsNotWritableError
            When ``DATA_PATH/red`` cannot be created or written.
        DirectoryBusyError
            When another reduction holds the directory's lock.
        SchedulerUnreachableError
            When ``--scheduler`` names a dask scheduler that does not answer.
        """
        try:
            self.red.mkdir(parents=True, exist_ok=True)
            probe = self.red / f".write-test.{os.getpid()}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ProductsNotWritableError(
                f"{self.red}: cannot write the products ({exc.strerror or exc}); the raw files are only read,"
                f" so copy or link them into a writable folder and reduce that") from None
        wall, cpu = time.perf_counter(), time.process_time()
        with RunLock(self.red), self.runner:
            removed = remove_stale_temporaries(self.red)
            if removed:
                log.info("removed %d temporary file(s) left by an interrupted run", len(removed))
            self.summary.cores = self.runner.cores
            self._run_stages()
        self.summary.wall_seconds = time.perf_counter() - wall
        self.summary.main_cpu = time.process_time() - cpu
        self.summary.worker_cpu = self.runner.worker_cpu
        return self.summary

    def _run_stages(self) -> None:
        for stage in self.stages:
            if stage.name not in self.selected and not (stage.name == "sort" and self.table is None):
                continue
            self.stage = stage
            start = time.perf_counter()
            if "*" in stage.skipped_hooks(self.options):
                skipped = [o for o, h in stage.skips if h == "*"]
                self.record("all", True, 0.0, f"skipped (--{skipped[0].replace('_', '-')})")
            else:
                stage.run(self)
            self.summary.stage_seconds[stage.name] = time.perf_counter() - start
            if stage.name == "sort" and not np.any(self.table["Type"] == "SCIENCE"):
                break  # reported by the sort stage; nothing else can run


def setup_logging(red: Path, instrument: str) -> Path:
    """Log to ``red/log/<instrument>_<UTC start>.log`` and the terminal."""
    log_dir = red / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = log_dir / f"{instrument}_{stamp}.log"
    logger = logging.getLogger("potpyri")
    logger.setLevel(logging.DEBUG)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    file_handler = logging.FileHandler(path, delay=True)  # no empty log when nothing happens
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    file_handler.setLevel(logging.DEBUG)
    stream = logging.StreamHandler()
    stream.setLevel(logging.INFO)
    stream.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(file_handler)
    logger.addHandler(stream)
    return path


__all__ = ["Pipeline", "RunSummary", "setup_logging"]
