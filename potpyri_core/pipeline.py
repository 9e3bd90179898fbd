"""The reduction pipeline: named, ordered stages over a sorted night.

Stages (``--stages`` selects a subset, always run in this order):

``sort``          classify the raw files, write ``file_list.txt``
``calibrations``  master bias / dark / flat per calibration group (``red/cals/``)
``frames``        per science frame: assemble, calibrate, error map, masks, sky (``red/workspace/``)
``astrometry``    per science frame: solve and refine the WCS against the reference catalog
``stack``         resample to a common north-up grid and combine (``red/*.stk.fits``)
``photometry``    aperture and PSF photometry, zero point, limiting magnitudes (into the stack)

Each stage reads the previous stage's files, so a stage can be re-run alone. The frame is
the unit of parallelism (``--proc`` processes). One failing frame or target is logged and
reported in the summary; the others go on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import traceback
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import astropy
import numpy as np
import photutils
import scipy
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from astropy.wcs import WCS

from potpyri_core import __version__
from potpyri_core.catalogs.cache import CatalogCache, CatalogUnavailableError, catalog_cache_dir
from potpyri_core.catalogs.columns import at_epoch
from potpyri_core.catalogs.local import LocalCatalog
from potpyri_core.catalogs.online import FieldCatalogs
from potpyri_core.filelist import select, sort_night
from potpyri_core.frames import Frame
from potpyri_core.maskbits import Bit
from potpyri_core.options import STAGES, RunOptions
from potpyri_core.plugins import PluginManager, process_plugins
from potpyri_core.settings import InstrumentSettings
from potpyri_core.stages import align, astrometry, photometry, psfphot, resample
from potpyri_core.stages.calibrate import MissingCalibrationError
from potpyri_core.stages.header_wcs import WCS_KEY_PREFIXES
from potpyri_core.stages.mask import satellite_mask

log = logging.getLogger("potpyri")

PHOTOMETRY_EXTENSIONS = ("APPPHOT", "PSFPHOT", "PSFSTARS", "PSF", "RESIDUAL")
"""Stack extensions written by the photometry stage (replaced, not kept, on a re-run)."""

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


@dataclass
class RunSummary:
    """Everything that happened in a run, printed as a table at the end."""

    results: list[StageResult] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stacks: list[Path] = field(default_factory=list)

    @property
    def failures(self) -> list[StageResult]:
        """The units of work that failed."""
        return [r for r in self.results if not r.ok]

    def table(self) -> str:
        """Human-readable summary."""
        lines = [f"{'stage':<13}{'item':<44}{'status':<8}{'seconds':>8}  message"]
        for r in self.results:
            status = "ok" if r.ok else "FAILED"
            lines.append(f"{r.stage:<13}{r.item[:43]:<44}{status:<8}{r.seconds:8.1f}  {r.message}")
        lines.append("stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.stage_seconds.items()))
        return "\n".join(lines)


def atomic_write(hdul: fits.HDUList, path: Path) -> None:
    """Write FITS to a temporary name and rename, so a good file is never half-replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    hdul.writeto(tmp, overwrite=True)
    os.replace(tmp, path)


def md5sum(path: Path) -> str:
    """MD5 checksum of a file (provenance)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- workers
def load_raw(instrument: InstrumentSettings, path: Path, exptime: float) -> Frame:
    """Assemble a raw file (through the plugins' ``potpyri_assemble``)."""
    with fits.open(path, memmap=False) as hdul:
        frame = process_plugins().hook.potpyri_assemble(instrument=instrument, hdul=hdul, path=path)
    frame.meta["exptime"] = exptime
    return frame


def _frame_job(args: tuple) -> tuple[str, bool, float, str]:
    instrument, raw_path, exptime, master_paths, out_path, options = args
    start = time.perf_counter()
    try:
        hook = process_plugins().hook
        frame = load_raw(instrument, raw_path, exptime)
        masters = {k: Frame.from_file(p) for k, p in master_paths.items()}
        frame = hook.potpyri_apply_calibrations(instrument=instrument, frame=frame, masters=masters, options=options)
        frame.mask |= hook.potpyri_mask(instrument=instrument, frame=frame, options=options)
        if not options.skip_skysub:
            frame = hook.potpyri_subtract_sky(instrument=instrument, frames=[frame], options=options)[0]
        trail = satellite_mask(frame.data, np.sqrt(frame.variance), frame.mask)
        frame.mask |= trail.astype(np.uint16) * np.uint16(Bit.SATELLITE)
        frame.header["NSATPIX"] = (int(trail.sum()), "pixels flagged as satellite trail")
        frame.header["RAWMD5"] = (md5sum(raw_path), "checksum of the raw file")
        ny, nx = frame.data.shape
        centre = frame.wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
        frame.header["PNTRA"] = (float(centre.ra.deg), "frame centre from the raw header WCS (deg)")
        frame.header["PNTDEC"] = (float(centre.dec.deg), "frame centre from the raw header WCS (deg)")
        atomic_write(frame.to_hdul(), out_path)
        return raw_path.name, True, time.perf_counter() - start, ""
    except Exception as exc:
        log.debug(traceback.format_exc())
        return raw_path.name, False, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"


def _astrometry_job(args: tuple) -> tuple[str, bool, float, str]:
    instrument, path, reference, options = args
    start = time.perf_counter()
    try:
        frame = Frame.from_file(path)
        mjd = float(frame.header.get("MJD-OBS", 51544.5))
        at_obs = reference.copy(copy_data=False)
        at_obs["ra"], at_obs["dec"] = at_epoch(reference, Time(mjd, format="mjd").jyear)
        try:
            solution = process_plugins().hook.potpyri_solve_wcs(instrument=instrument, frame=frame,
                                                                reference=at_obs, options=options)
        except Exception as exc:  # the frame is marked as failed (left out of the stack)
            frame.header.update(astrometry.failure_header(f"{type(exc).__name__}: {exc}"))
            atomic_write(frame.to_hdul(), path)
            raise
        header = frame.header
        for key in list(header.keys()):
            if key.startswith(WCS_KEY_PREFIXES):
                del header[key]
        header.update(astrometry.solution_header(solution))
        extra = [align.stars_hdu(solution.stars)] if solution.stars is not None else []
        atomic_write(frame.to_hdul(extra), path)
        return path.name, True, time.perf_counter() - start, (
            f"{solution.n_matched} stars ({solution.backend}, {solution.model}), rms"
            f" {solution.rms_ra:.3f}/{solution.rms_dec:.3f}\"")
    except Exception as exc:
        return path.name, False, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"


def _resample_job(args: tuple) -> tuple[str, Any]:
    path, out_header, shape = args
    frame = Frame.from_file(path)
    exptime = float(frame.header["EXPTIME"])
    data, var, mask = resample.resample(frame.data / exptime, frame.variance / exptime**2, frame.mask, frame.wcs,
                                        WCS(out_header), shape)
    return path.name, (data, var, mask)


# ----------------------------------------------------------------------------- pipeline
class Pipeline:
    """Reduce one night of one instrument.

    Parameters
    ----------
    instrument : InstrumentSettings
        Validated settings of the instrument.
    data_path : Path
        Folder with the raw files (never modified); products go to ``data_path/red``.
    options : RunOptions
        The run options.
    plugins : PluginManager, optional
        Plugin manager to use (a new one by default).
    """

    def __init__(self, instrument: InstrumentSettings, data_path: Path, options: RunOptions,
                 plugins: PluginManager | None = None) -> None:
        self.instrument = instrument
        self.data_path = Path(data_path)
        self.options = options
        self.plugins = plugins or PluginManager()
        self.red = self.data_path / "red"
        self.cals = self.red / "cals"
        self.work = self.red / "workspace"
        self.summary = RunSummary()
        self.table: Table | None = None
        unknown = [s for s in options.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")

    # -------------------------------------------------------------- helpers
    def _record(self, stage: str, item: str, ok: bool, seconds: float, message: str = "") -> None:
        self.summary.results.append(StageResult(stage, item, ok, seconds, message))
        (log.info if ok else log.error)("%s %s: %s %s", stage, item, "ok" if ok else "FAILED", message)

    def _map(self, func: Any, jobs: list, what: str = "") -> list:
        """Run ``func`` on every job (in ``--proc`` processes), logging progress as jobs end;
        results come back in the order of the jobs."""
        results: list = [None] * len(jobs)
        if self.options.proc <= 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                results[i] = func(job)
                if what:
                    log.info("%s %d/%d done", what, i + 1, len(jobs))
            return results
        with ProcessPoolExecutor(max_workers=min(self.options.proc, len(jobs))) as pool:
            futures = {pool.submit(func, job): i for i, job in enumerate(jobs)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if what:
                    log.info("%s %d/%d done", what, done, len(jobs))
        return results

    def _rows(self, kind: str) -> Table:
        assert self.table is not None
        return self.table[self.table["Type"] == kind]

    def _science_groups(self) -> dict[str, Table]:
        sci = self._rows("SCIENCE")
        groups = {}
        for tt in sorted(set(sci["TargType"])):
            groups[tt] = sci[sci["TargType"] == tt]
        return groups

    def master_path(self, kind: str, group: str) -> Path:
        """Path of a master calibration file (POTPyRI layout ``red/cals/m<kind>_<group>.fits``)."""
        return self.cals / f"m{kind}_{group}.fits"

    def _cal_group(self, kind: str, row: Any) -> str:
        if kind == "bias":
            return f"{row['Amp']}_{row['Binning']}"
        if kind == "dark":
            return f"{row['Exp']:g}_{row['Amp']}_{row['Binning']}"
        return f"{row['Filter']}_{row['Amp']}_{row['Binning']}"

    def stack_path(self, group: Table) -> Path:
        """Stack file name: ``red/<target>.<filter>.ut<yymmdd>.<amp>.<binning>.stk.fits``."""
        row = group[0]
        date = Time(float(np.nanmin(group["Time"])), format="mjd").strftime("%y%m%d") if np.isfinite(
            np.nanmin(group["Time"])) else "unknown"
        return self.red / f"{row['Target']}.{row['Filter']}.ut{date}.{row['Amp']}.{row['Binning']}.stk.fits"

    # -------------------------------------------------------------- stages
    def run(self) -> RunSummary:
        """Run the selected stages in order and return the summary."""
        self.red.mkdir(parents=True, exist_ok=True)
        for stage in STAGES:
            if stage not in self.options.stages and not (stage == "sort" and self.table is None):
                continue
            start = time.perf_counter()
            getattr(self, f"stage_{stage}")()
            self.summary.stage_seconds[stage] = time.perf_counter() - start
            if stage == "sort" and not np.any(self.table["Type"] == "SCIENCE"):
                break  # reported by the sort stage; nothing else can run
        return self.summary

    def stage_sort(self) -> None:
        """Classify the raw files (or reuse ``file_list.txt`` with ``--no-redo-sort``)."""
        redo = self.options.redo_sort and "sort" in self.options.stages
        start = time.perf_counter()
        table = sort_night(self.instrument, self.data_path, self.options.file_list_name, redo=redo,
                           workers=self.options.proc)
        self.table = select(table, self.options.include_bad, self.options.target)
        counts = ", ".join(f"{t} {int(np.sum(table['Type'] == t))}" for t in sorted(set(table["Type"])))
        science = int(np.sum(self.table["Type"] == "SCIENCE"))
        if science == 0:
            wanted = f" of target {self.options.target}" if self.options.target else ""
            self._record("sort", self.options.file_list_name, False, time.perf_counter() - start,
                         f"no SCIENCE frames{wanted} of {self.instrument.name} in {self.data_path} ({counts});"
                         f" see the Type and Reason columns of {self.options.file_list_name}")
            return
        self._record("sort", self.options.file_list_name, True, time.perf_counter() - start, counts)

    def _needed_groups(self, kind: str) -> dict[str, list[Any]]:
        """Calibration groups of ``kind`` needed by the science frames, with their rows."""
        groups: dict[str, list[Any]] = defaultdict(list)
        cal_rows = self._rows(kind.upper())
        for row in cal_rows:
            groups[self._cal_group(kind, row)].append(row)
        needed = {self._cal_group(kind, row) for row in self._rows("SCIENCE")}
        if kind == "dark":
            needed = set(groups)  # darks are scaled by exposure time: every group is useful
        return {g: groups.get(g, []) for g in needed}

    def stage_calibrations(self) -> None:
        """Build every master calibration the science frames need."""
        needed = list(self.instrument.calibrations.needed)
        if self.options.skip_flatten and "flat" in needed:
            needed.remove("flat")
        for kind in needed:
            for group, rows in self._needed_groups(kind).items():
                start = time.perf_counter()
                try:
                    frames = []
                    for row in rows:
                        frame = load_raw(self.instrument, self.data_path / row["File"], float(row["Exp"]))
                        if kind != "bias":
                            frame = self._precalibrate(frame, row, kind)
                        # combining uses the pixels and the mask only: free the rest now
                        frame.variance = np.empty(0, np.float32)
                        frame.readnoise = None
                        frames.append(frame)
                    master = self.plugins.hook.potpyri_build_calibration(
                        instrument=self.instrument, kind=kind, frames=frames, options={"group": group})
                    for i, row in enumerate(rows):
                        master.header[f"IMCMD{i + 1:03d}"] = (md5sum(self.data_path / row["File"])[:16], "md5 (16)")
                    atomic_write(master.to_hdul(), self.master_path(kind, group))
                    self._record("calibrations", f"m{kind}_{group}", True, time.perf_counter() - start,
                                 f"{len(frames)} frames")
                except (MissingCalibrationError, Exception) as exc:
                    self._record("calibrations", f"m{kind}_{group}", False, time.perf_counter() - start, str(exc))

    def _precalibrate(self, frame: Frame, row: Any, kind: str) -> Frame:
        """Bias (and dark, for flats) subtraction of a calibration frame."""
        masters = {}
        bias = self.master_path("bias", self._cal_group("bias", row))
        if "bias" in self.instrument.calibrations.needed and bias.exists():
            masters["bias"] = Frame.from_file(bias)
        if kind == "flat":
            for dark in sorted(self.cals.glob(f"mdark_*_{row['Amp']}_{row['Binning']}.fits")):
                masters["dark"] = Frame.from_file(dark)
                break
        return self.plugins.hook.potpyri_apply_calibrations(
            instrument=self.instrument, frame=frame, masters=masters, options=self.options)

    def _masters_for(self, row: Any) -> dict[str, Path]:
        masters = {}
        for kind in self.instrument.calibrations.needed:
            if kind == "flat" and self.options.skip_flatten:
                continue
            if kind == "dark":
                darks = sorted(self.cals.glob(f"mdark_*_{row['Amp']}_{row['Binning']}.fits"))
                if darks:
                    masters["dark"] = darks[0]
                continue
            path = self.master_path(kind, self._cal_group(kind, row))
            if not path.exists():
                raise MissingCalibrationError(
                    f"{row['File']}: no master {kind} {path.name}; the night has no usable {kind} frames for"
                    f" {self._cal_group(kind, row)} (run the calibrations stage or add {kind} frames)")
            masters[kind] = path
        return masters

    def workspace_path(self, raw_name: str) -> Path:
        """Per-frame product in ``red/workspace``."""
        stem = raw_name.split(".fits")[0].split(".fit")[0]
        return self.work / f"{stem}_red.fits"

    def stage_frames(self) -> None:
        """Calibrate, mask and sky-subtract every science frame (in parallel)."""
        jobs = []
        for row in self._rows("SCIENCE"):
            try:
                masters = self._masters_for(row)
            except MissingCalibrationError as exc:
                self._record("frames", row["File"], False, 0.0, str(exc))
                continue
            jobs.append((self.instrument, self.data_path / row["File"], float(row["Exp"]), masters,
                         self.workspace_path(row["File"]), self.options))
        for name, ok, seconds, message in self._map(_frame_job, jobs, "frames"):
            self._record("frames", name, ok, seconds, message)

    def reference_catalog(self) -> LocalCatalog | FieldCatalogs | None:
        """Saved catalogs given with ``--catalog``, else the online sources around the field
        (cached in ``red/catalogs``); None when no calibrated frame tells where the field is."""
        if self.options.catalogs:
            return LocalCatalog(list(self.options.catalogs))
        paths = [self.workspace_path(r["File"]) for r in self._rows("SCIENCE")]
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
        cache = CatalogCache(catalog_cache_dir(self.data_path))
        return FieldCatalogs(self.plugins.catalog_sources(), cache, center, radius, self.instrument.zeropoint)

    def stage_astrometry(self) -> None:
        """Solve the WCS of every calibrated science frame against the reference catalog."""
        if self.options.skip_gaia:
            self._record("astrometry", "all frames", True, 0.0, "skipped (--skip-gaia): header WCS kept")
            return
        catalog = self.reference_catalog()
        if catalog is None:
            self._record("astrometry", "all frames", False, 0.0, "no calibrated science frames")
            return
        try:
            reference = catalog.astrometric()
        except CatalogUnavailableError as exc:
            self._record("astrometry", "all frames", False, 0.0, f"{exc}; header WCS kept")
            return
        jobs = [(self.instrument, self.workspace_path(r["File"]), reference, self.options)
                for r in self._rows("SCIENCE") if self.workspace_path(r["File"]).exists()]
        for name, ok, seconds, message in self._map(_astrometry_job, jobs, "astrometry"):
            self._record("astrometry", name, ok, seconds, message)
        # frame-to-frame alignment of each target's frames with all their detected sources
        params = astrometry.AstrometryParams(fwhm_init=self.options.fwhm_init)
        for group in self._science_groups().values() if params.align_frames else []:
            paths = [self.workspace_path(r["File"]) for r in group if self.workspace_path(r["File"]).exists()]
            start = time.perf_counter()
            for name, ok, message in align.align_workspace(paths, self.instrument, params, atomic_write):
                self._record("align", name, ok, time.perf_counter() - start, message)

    def output_grid(self, paths: list[Path]) -> tuple[fits.Header, tuple[int, int], float]:
        """North-up output grid: centre from ``--fieldcenter`` or the frames, side ``out_size``."""
        frames_wcs = []
        for p in paths:
            header = fits.getheader(p)
            frames_wcs.append((WCS(header, relax=True),
                               header["NAXIS2"], header["NAXIS1"]))
        binning = int(str(fits.getheader(paths[0]).get("BINNING", "1x1")).split("x")[0])
        scale = self.instrument.pixel_scale * binning
        if self.options.fieldcenter is not None:
            center = SkyCoord(*self.options.fieldcenter, unit="deg")
        else:
            centers = [w.pixel_to_world((nx - 1) / 2, (ny - 1) / 2) for w, ny, nx in frames_wcs]
            center = SkyCoord(np.median([c.ra.deg for c in centers]), np.median([c.dec.deg for c in centers]),
                              unit="deg")
        side = (self.options.out_size or self.instrument.out_size) // binning
        wcs = resample.output_grid(center, (side, side), scale)
        return wcs.to_header(), (side, side), scale

    def stage_stack(self) -> None:
        """Resample and combine the frames of each target/filter group."""
        for targtype, group in self._science_groups().items():
            start = time.perf_counter()
            try:
                paths = [self.workspace_path(r["File"]) for r in group if self.workspace_path(r["File"]).exists()]
                if not paths:
                    raise RuntimeError("no calibrated frames (frames stage failed or not run)")
                # frames whose astrometry failed its checks are left out (and named)
                failed = {p: fits.getheader(p).get("ASTREASN", "") for p in paths
                          if fits.getheader(p).get("ASTSTAT") == "FAIL"}
                for p, reason in failed.items():
                    self._record("stack", p.name, False, 0.0, f"left out of the stack: astrometry failed ({reason})")
                paths = [p for p in paths if p not in failed]
                group = group[np.array([self.workspace_path(r["File"]) in paths for r in group], bool)]
                if not paths:
                    raise RuntimeError("every frame failed its astrometry")
                out_header, shape, _ = self.output_grid(paths)
                results = self._map(_resample_job, [(p, out_header, shape) for p in paths], "resampling")
                resampled = [Frame(data=d, variance=v, mask=m, header=out_header.copy(), name=name)
                             for name, (d, v, m) in results]
                out = self.plugins.hook.potpyri_stack(instrument=self.instrument, frames=resampled,
                                                      options=self.options)
                del resampled, results
                out.header = self._stack_header(out_header, paths, group)
                out.header["NDROPPED"] = (len(failed), "frames left out: astrometry failed")
                out.name = targtype
                nframes = out.meta["nframes"]
                path = self.stack_path(group)
                prov = self._provenance(paths, group)
                atomic_write(out.to_hdul([prov, fits.ImageHDU(nframes, name="NFRAMES")]), path)
                self.summary.stacks.append(path)
                self._record("stack", path.name, True, time.perf_counter() - start, f"{len(paths)} frames")
            except Exception as exc:
                log.debug(traceback.format_exc())
                self._record("stack", targtype, False, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")

    def _stack_header(self, out_header: fits.Header, paths: list[Path], group: Table) -> fits.Header:
        first = fits.getheader(paths[0])
        header = fits.Header()
        for key in ("INSTRUME", "OBJECT", "TELESCOP", "OBSERVAT"):
            if key in first:
                header[key] = first[key]
        header["FILTER"] = (str(group[0]["Filter"]), "band")
        header.update(out_header)
        header["BUNIT"] = ("electron/s", "stack unit")
        header["EXPTIME"] = (1.0, "stack is in e-/s; total exposure in TEXPTIME")
        header["TEXPTIME"] = (float(np.sum(group["Exp"])), "total exposure time of the inputs (s)")
        header["NCOMBINE"] = (len(paths), "frames combined")
        header["MJD-OBS"] = (float(np.nanmin(group["Time"])), "start of the first exposure")
        for key in ("RADISP", "DEDISP"):
            values = [fits.getheader(p).get(key) for p in paths]
            values = [v for v in values if v is not None]
            if values:
                header[key] = (float(np.sqrt(np.mean(np.square(values)))), "RMS of per-frame astrometric residuals (\")")
        header["POTPYRI"] = (__version__, "potpyri-core version")
        header["PIPEINST"] = (self.instrument.name, "instrument settings used")
        return header

    def _provenance(self, paths: list[Path], group: Table) -> fits.BinTableHDU:
        rows = []
        for p, row in zip(paths, group, strict=False):
            h = fits.getheader(p)
            cals = ";".join(str(h.get(k, "")) for k in ("BIASCOR", "DARKCOR", "FLATCOR") if k in h)
            rows.append((row["File"], h.get("RAWMD5", ""), cals))
        table = Table(rows=rows, names=["file", "md5", "calibrations"], dtype=[str, str, str])
        table.meta["SETTINGS"] = json.dumps(self.instrument.model_dump(mode="json"))[:60000]
        table.meta["OPTIONS"] = self.options.model_dump_json()
        hdu = fits.table_to_hdu(table)
        hdu.name = "PROVENANCE"
        hdu.header["V_POTPYR"] = __version__
        hdu.header["V_ASTROP"] = astropy.__version__
        hdu.header["V_NUMPY"] = np.__version__
        hdu.header["V_SCIPY"] = scipy.__version__
        hdu.header["V_PHOTUT"] = photutils.__version__
        return hdu

    def stage_photometry(self) -> None:
        """Photometry, zero point and limits of every stack."""
        catalog = self.reference_catalog()
        for targtype, group in self._science_groups().items():
            path = self.stack_path(group)
            start = time.perf_counter()
            if not path.exists():
                self._record("photometry", targtype, False, 0.0, "no stack (stack stage failed or not run)")
                continue
            try:
                message = self._photometry_one(path, str(group[0]["Filter"]), catalog)
                self._record("photometry", path.name, True, time.perf_counter() - start, message)
            except Exception as exc:
                log.debug(traceback.format_exc())
                self._record("photometry", path.name, False, time.perf_counter() - start,
                             f"{type(exc).__name__}: {exc}")

    def _photometry_one(self, path: Path, band: str, catalog: LocalCatalog | FieldCatalogs | None) -> str:
        frame = Frame.from_file(path)
        with fits.open(path) as hdul:
            extras = [h.copy() for h in hdul[3:] if h.name not in PHOTOMETRY_EXTENSIONS]
        scale = float(np.sqrt(abs(np.linalg.det(frame.wcs.pixel_scale_matrix)))) * 3600.0
        hook = self.plugins.hook
        result = hook.potpyri_photometry(instrument=self.instrument, stack=frame, options=self.options)
        h = frame.header
        h["FWHM"] = (result.fwhm, "median stellar FWHM (pixels)")
        h["SEEING"] = (result.fwhm * scale, "median stellar FWHM (arcsec)")
        h["APRAD"] = (result.radius, "photometry aperture radius (pixels)")
        h["APCOR"] = (result.apcor, f"aperture correction to {photometry.APCOR_RADIUS_FWHM:g} FWHM")
        h["NOISECOR"] = (result.noise_correlation, "empty-aperture var / summed pixel var")
        h["SKYSIG"] = (float(np.median(np.sqrt(frame.variance[(frame.mask & 0xFF) == 0]))), "median ERROR (e-/s)")
        message = f"{len(result.table)} sources, FWHM {result.fwhm * scale:.2f}\""
        problem = ""
        try:
            reference = (catalog.photometric(band, self.instrument.zeropoint.vega_to_ab)
                         if catalog is not None else None)
        except (CatalogUnavailableError, ValueError) as exc:
            reference, problem = None, str(exc)
        if reference is None and not problem:
            problem = (f"no {band}-band reference catalog for this instrument and field: no zero point"
                       f" (pass --catalog FILE with {band} magnitudes)")
        if reference is not None:
            zp = hook.potpyri_zeropoint(instrument=self.instrument, band=band, sources=result.table,
                                        reference=reference, options=self.options)
            h["ZPTMAG"] = (zp["ZPTMAG"], "m = -2.5 log10(e-/s) + ZPTMAG (AB)")
            h["ZPTMUCER"] = (zp["ZPTMUCER"], "zero point uncertainty (mag)")
            h["ZPTNSTAR"] = (zp["ZPTNSTAR"], "stars used for the zero point")
            h["ZPTCAT"] = (Path(str(reference.meta.get("source", "?"))).name[:60], "zero point catalog")
            for key, value in photometry.limiting_magnitudes(zp["ZPTMAG"], result.empty_sigma, result.apcor).items():
                h[key] = (value, f"{key[1:-5]}-sigma point-source limit (AB)")
            result.table["mag"] = result.table["mag_inst"] + zp["ZPTMAG"]
            if getattr(result, "psf_table", None) is not None:
                result.psf_table["mag"] = result.psf_table["mag_inst"] + zp["ZPTMAG"]
            message += f", ZP {zp['ZPTMAG']:.3f}±{zp['ZPTMUCER']:.3f} ({zp['ZPTNSTAR']} stars), m5 {h['M5SIGMA']:.2f}"
        table_hdu = fits.table_to_hdu(result.table)
        table_hdu.name = "APPPHOT"
        psf_hdus = self._psf_hdus(result, h)
        if psf_hdus:
            message += f", PSF {len(result.psf_table)} sources ({len(result.psf_stars)} ePSF stars)"
        else:
            message += ", no PSF photometry"
        atomic_write(frame.to_hdul([*extras, table_hdu, *psf_hdus]), path)
        if problem:
            raise RuntimeError(f"{message}; {problem}")
        return message


    @staticmethod
    def _psf_hdus(result: photometry.ApertureResult, header: fits.Header) -> list[fits.hdu.base.ExtensionHDU]:
        """PSFPHOT, PSFSTARS, PSF and RESIDUAL extensions of a photometry result (none without
        PSF photometry); the PSF header cards go into ``header`` too."""
        psf_table = getattr(result, "psf_table", None)
        if psf_table is None:
            log.warning("no PSF photometry for this stack: no PSFPHOT, PSFSTARS, PSF, RESIDUAL")
            for key in ("PSFFWHM", "NPSFSTAR"):
                header.remove(key, ignore_missing=True)
            return []
        oversampling = int(result.epsf_oversampling)
        fwhm = psfphot.epsf_fwhm(result.epsf_image, oversampling)
        header["PSFFWHM"] = (fwhm, "FWHM of the ePSF (pixels)")
        header["NPSFSTAR"] = (len(result.psf_stars), "stars that built the ePSF")
        phot_hdu = fits.table_to_hdu(psf_table)
        phot_hdu.name = "PSFPHOT"
        stars_hdu = fits.table_to_hdu(result.psf_stars)
        stars_hdu.name = "PSFSTARS"
        psf_hdu = fits.ImageHDU(np.asarray(result.epsf_image, np.float32), name="PSF")
        psf_hdu.header["OVERSAMP"] = (oversampling, "ePSF oversampling relative to the stack pixels")
        psf_hdu.header["PSFFWHM"] = (fwhm, "FWHM of the ePSF (stack pixels)")
        psf_hdu.header["PSFNORM"] = (float(np.sum(result.epsf_image)) / oversampling**2,
                                     "fraction of the total flux inside this image")
        psf_hdu.header["NPSFSTAR"] = (len(result.psf_stars), "stars that built the ePSF")
        residual_hdu = fits.ImageHDU(np.asarray(result.residual, np.float32), name="RESIDUAL")
        residual_hdu.header["BUNIT"] = (header.get("BUNIT", "electron/s"), "SCI minus the fitted PSF models")
        return [phot_hdu, stars_hdu, psf_hdu, residual_hdu]


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
    file_handler = logging.FileHandler(path)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    file_handler.setLevel(logging.DEBUG)
    stream = logging.StreamHandler()
    stream.setLevel(logging.INFO)
    stream.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(file_handler)
    logger.addHandler(stream)
    return path


__all__ = ["Pipeline", "RunSummary", "setup_logging"]
