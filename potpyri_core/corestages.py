"""The core's stages: what each does, through hooks, over its units of work.

Each stage is a function ``run(pipeline)``; per-unit work that runs in worker processes is
a module-level job function taking a picklable :class:`JobContext` (the instrument, the
resolved parameters, the plugin set and the hooks the run options turn off), so that every
process calls the same plugins.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from astropy.wcs import WCS

from potpyri_core import stageinput
from potpyri_core.catalogs.cache import CatalogUnavailableError
from potpyri_core.catalogs.columns import at_epoch
from potpyri_core.filelist import select, sort_night
from potpyri_core.frames import Frame
from potpyri_core.maskbits import Bit
from potpyri_core.params import Parameters
from potpyri_core.plugins import InstrumentHooks, PluginSpec, plugins_for
from potpyri_core.products import atomic_write, md5sum, provenance_hdu, stack_header
from potpyri_core.progress import progress
from potpyri_core.qa import run_qa
from potpyri_core.rawio import open_raw
from potpyri_core.safenames import ensure_inside, safe_component
from potpyri_core.settings import InstrumentSettings
from potpyri_core.stagelist import Stage
from potpyri_core.stages import (
    align,
    astrometry,
    ccdwcs,
    fringe,
    injection,
    photometry,
    psfphot,
    resample,
    sourcecat,
    spill,
    stack,
)
from potpyri_core.stages.calibrate import MissingCalibrationError
from potpyri_core.stages.header_wcs import WCS_KEY_PREFIXES
from potpyri_core.uptodate import card, is_current, signature, table_digest

if TYPE_CHECKING:
    from potpyri_core.pipeline import Pipeline

log = logging.getLogger("potpyri")

PHOTOMETRY_EXTENSIONS = ("APPPHOT", "PSFPHOT", "PSFSTARS", "PSF", "RESIDUAL")
"""Stack extensions written by the photometry stage (replaced, not kept, on a re-run)."""

STALE_PHOTOMETRY_CARDS = ("FWHM", "SEEING", "APRAD", "APCOR", "NOISECOR", "SKYSIG", "ZPTMAG", "ZPTMUCER", "ZPTNSTAR",
                          "ZPTSTAT", "ZPTAPCER", "ZPTCAT", "ZPTBAND", "ZPTCOLOR", "ZPTCTERM", "ZPTCZERO", "ZPTCSRC",
                          "M3SIGMA", "M5SIGMA", "M10SIGMA", "PHOTSTAT", "PHOKEY", "M5INJ", "MC50INJ", "NINJECT",
                          "INJSEED", "LIMDEFA", "LIMDEFI", "LIMDEFC", "DEPTHNFR", "DEPTHFRC")
"""Stack header cards the photometry stage writes: removed before it measures again."""

SKY_INPUT = ("FRMKEY", "FRGKEY")
"""Signature cards of the sky stage's input (the frames stage's product, fringe-corrected in
the bands that fringe)."""
ASTROMETRY_INPUT = ("FRMKEY", "FRGKEY", "SKYKEY")
"""Signature cards of the astrometry stage's input (the sky stage's product)."""
ALIGN_INPUT = ("FRMKEY", "FRGKEY", "SKYKEY", "ASTKEY", "ASTSTAT", "ASTREASN")
"""Signature cards of the alignment's input (the astrometry stage's product)."""


@dataclass(frozen=True)
class JobContext:
    """What a job needs in any process: picklable, the hooks rebuilt from the plugin spec."""

    instrument: InstrumentSettings
    params: Parameters
    plugins: PluginSpec
    skipped: frozenset[str] = frozenset()
    _hooks: list[InstrumentHooks] = field(default_factory=list, compare=False, repr=False)

    @property
    def hooks(self) -> InstrumentHooks:
        """The instrument's hooks in this process."""
        if not self._hooks:
            self._hooks.append(plugins_for(self.plugins).for_instrument(self.instrument.name))
        return self._hooks[0]

    def __getstate__(self) -> dict[str, Any]:
        return {"instrument": self.instrument, "params": self.params, "plugins": self.plugins,
                "skipped": self.skipped}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_hooks", [])


def load_raw(ctx: JobContext, path: Path, exptime: float) -> Frame:
    """Assemble a raw file through ``potpyri_assemble``."""
    with open_raw(path) as hdul:
        frame = ctx.hooks.potpyri_assemble(instrument=ctx.instrument, hdul=hdul, path=path)
    frame.meta["exptime"] = exptime
    return frame


@dataclass(frozen=True)
class _timed:
    """A picklable wrapper of a job: returns ``(name, ok, seconds, message)``; an exception
    becomes the message, so one bad frame never stops the others."""

    job: Any

    @staticmethod
    def unit_name(args: tuple) -> str:
        """The name of a job's unit (a frame, or the frames of a dithered target)."""
        unit = args[1]
        return ", ".join(Path(q).name for q in unit) if isinstance(unit, list) else Path(unit).name

    def failure(self, args: tuple, exc: BaseException) -> tuple[str, bool, float, str]:
        """The result of a job that never returned (its worker died, or the cluster went away)."""
        return self.unit_name(args), False, 0.0, f"worker lost: {type(exc).__name__}: {exc}"

    def __call__(self, args: tuple) -> tuple[str, bool, float, str]:
        start = time.perf_counter()
        name = self.unit_name(args)
        try:
            message = self.job(*args)
            return name, True, time.perf_counter() - start, message or ""
        except Exception as exc:
            log.debug(traceback.format_exc())
            return name, False, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------- sort
def run_sort(p: Pipeline) -> None:
    """Classify the raw files (or reuse ``file_list.txt`` with ``--no-redo-sort``)."""
    opts = p.options
    redo = opts.redo_sort and "sort" in p.selected
    start = time.perf_counter()
    table = sort_night(p.instrument, p.data_path, opts.file_list_name, redo=redo, workers=opts.workers,
                       plugins=p.plugins.spec)
    p.table = select(table, opts.include_bad, opts.target)
    counts = ", ".join(f"{t} {int(np.sum(table['Type'] == t))}" for t in sorted(set(table["Type"])))
    if not opts.include_bad:
        for row in table[table["Type"] == "BAD"]:
            p.record(str(row["File"]), True, 0.0, f"not reduced: {row['Reason']}", status="BAD")
    science = int(np.sum(p.table["Type"] == "SCIENCE"))
    if science == 0:
        wanted = f" of target {opts.target}" if opts.target else ""
        targets = sorted(set(table[table["Type"] == "SCIENCE"]["Target"]))
        present = f"; targets present: {', '.join(targets)}" if opts.target and targets else ""
        p.record(opts.file_list_name, False, time.perf_counter() - start,
                 f"no SCIENCE frames{wanted} of {p.instrument.name} in {p.data_path} ({counts}){present};"
                 f" see the Type and Reason columns of {opts.file_list_name}")
        return
    p.record(opts.file_list_name, True, time.perf_counter() - start, counts)


# ----------------------------------------------------------------------------- calibrations
def run_calibrations(p: Pipeline) -> None:
    """Build every master the night's frames are matched to, bias first, then dark, flat."""
    lib = p.library
    work = [(kind, group, rows) for kind in lib.kinds(skip_flat=p.options.skip_flatten)
            for group, rows in lib.needed_groups(kind).items()]
    with progress(len(work), "calibrations") as bar:
        for kind, group, rows in work:
            _calibration_one(p, lib, kind, group, rows)
            bar.update()


def _calibration_one(p: Pipeline, lib: Any, kind: str, group: str, rows: Any) -> None:
    """Build (or find up to date) one master."""
    start = time.perf_counter()
    item = f"m{kind}_{group}"
    path = lib.master_path(kind, group)
    try:
        earlier = [k for k in lib.kinds() if lib.kinds().index(k) < lib.kinds().index(kind)]
        key = signature("calibration", kind, [md5sum(p.data_path / r["File"]) for r in rows],
                        [card(m, "CALKEY") for r in rows[:1] for m in _available(lib, r, earlier).values()],
                        p.params.calibration.model_dump(), lib.rule(kind).model_dump(),
                        p.instrument.calibrations.min_frames)
        if rows and is_current(path, "CALKEY", key, p.options.force):
            p.record(item, True, time.perf_counter() - start, "up to date")
            return
        ctx = p.job_context()
        frames, notes, loaded = [], set(), {}
        spilled = p.work / f"combining_{item}"
        try:
            for i, row in enumerate(rows):
                frame = load_raw(ctx, p.data_path / row["File"], float(row["Exp"]))
                found = _available(lib, row, earlier)
                missing = sorted(set(earlier) - set(found))
                if missing:
                    notes.add(f"no master {', '.join(missing)} to subtract: combined without it")
                for master_path in set(found.values()) - set(loaded):  # each master read once per group
                    loaded[master_path] = Frame.from_file(master_path)
                masters = {k: loaded[master_path] for k, master_path in found.items()}
                if masters:
                    frame = ctx.hooks.potpyri_apply_calibrations(instrument=p.instrument, frame=frame,
                                                                 masters=masters, params=p.params.calibration)
                frame.variance = np.empty(0, np.float32)  # combining uses pixels and mask only
                # on disk until the combine reads it in row blocks: memory does not grow with frames
                frames.append(spill.spill(frame, spilled / f"{i:04d}").open())
                del frame
            sky_flat = kind == "flat" and lib.is_sky_flat(rows)
            master = ctx.hooks.potpyri_build_calibration(instrument=p.instrument,
                                                         kind="skyflat" if sky_flat else kind, frames=frames,
                                                         group=group, params=p.params.calibration)
        finally:
            del frames
            spill.remove(spilled)
        for i, row in enumerate(rows):
            master.header[f"IMCMD{i + 1:03d}"] = (md5sum(p.data_path / row["File"])[:16], "md5 (16)")
        master.header["DATE"] = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "UTC this master was made")
        master.header["CALKEY"] = (key, "signature of inputs, parameters, code (re-runs)")
        if kind == "flat":
            source = "sky" if sky_flat else p.instrument.calibrations.flat_source
            master.header["FLATSRC"] = (source, "what the flat frames are (sky: the science frames)")
        atomic_write(master.to_hdul(), path)
        p.made.add(path)
        p.summary.products.append(path)
        for note in sorted(notes):
            log.warning("calibrations %s: %s", item, note)
        p.record(item, True, time.perf_counter() - start, "; ".join([f"{len(rows)} frames", *sorted(notes)]))
    except Exception as exc:
        log.debug(traceback.format_exc())
        p.record(item, False, time.perf_counter() - start, str(exc))


def _available(lib: Any, row: Any, kinds: list[str]) -> dict[str, Path]:
    """Masters of ``kinds`` that match ``row`` (those that do not exist are left out)."""
    found = {}
    for kind in kinds:
        try:
            found[kind] = lib.match(kind, row)
        except MissingCalibrationError:
            continue
    return found


# ----------------------------------------------------------------------------- frames
def frame_job(ctx: JobContext, raw_path: Path, exptime: float, masters: dict[str, Path], out_path: Path,
              key: str) -> str:
    """Assemble, calibrate and flag cosmic rays in one science frame (signature ``key``)."""
    frame = load_raw(ctx, raw_path, exptime)
    loaded = {k: Frame.from_file(p) for k, p in masters.items()}
    frame = ctx.hooks.potpyri_apply_calibrations(instrument=ctx.instrument, frame=frame, masters=loaded,
                                                 params=ctx.params.calibration)
    if "potpyri_mask_cosmic_rays" not in ctx.skipped:
        crs = ctx.hooks.potpyri_mask_cosmic_rays(instrument=ctx.instrument, frame=frame, params=ctx.params.cosmic_rays)
        frame.mask |= crs.astype(np.uint16) * np.uint16(Bit.COSMIC_RAY)
        frame.header["NCRPIX"] = (int(crs.sum()), "pixels flagged as cosmic rays")
    frame.header["RAWMD5"] = (md5sum(raw_path), "checksum of the raw file")
    ny, nx = frame.data.shape
    centre = frame.wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
    frame.header["PNTRA"] = (float(centre.ra.deg), "frame centre from the raw header WCS (deg)")
    frame.header["PNTDEC"] = (float(centre.dec.deg), "frame centre from the raw header WCS (deg)")
    frame.header["FRMKEY"] = (key, "signature of inputs, parameters, code (re-runs)")
    atomic_write(frame.to_hdul(), out_path)
    return ""


def run_frames(p: Pipeline) -> None:
    """Calibrate and mask every science frame (in parallel)."""
    kinds = p.library.kinds(skip_flat=p.options.skip_flatten)
    ctx = p.job_context()
    jobs, notes = [], {}
    for row in p.rows("SCIENCE"):
        try:
            job = frame_plan(p, ctx, row, kinds)
        except MissingCalibrationError as exc:
            p.record(row["File"], False, 0.0, str(exc))
            continue
        _, raw, _, masters, out, key = job
        if is_current(out, "FRMKEY", key, p.options.force):
            p.record(raw.name, True, 0.0, "up to date")
            continue
        notes[raw.name] = "; ".join(earlier_master_note(p, path) for path in masters.values() if path not in p.made)
        jobs.append(job)
    for name, ok, seconds, message in p.map(_timed(frame_job), jobs, "frames"):
        p.record(name, ok, seconds, "; ".join(m for m in (message, notes.get(name, "")) if m))


def frame_plan(p: Pipeline, ctx: JobContext, row: Any, kinds: list[str]) -> tuple:
    """Arguments of :func:`frame_job` for one science row: its masters and signature.

    Raises
    ------
    MissingCalibrationError
        When a master it needs does not exist.
    """
    masters = p.library.masters_for(row, kinds)
    raw, out = p.data_path / row["File"], p.workspace_path(row["File"])
    key = signature("frames", md5sum(raw), float(row["Exp"]), {k: card(m, "CALKEY") for k, m in masters.items()},
                    p.params.calibration.model_dump(), p.params.cosmic_rays.model_dump(),
                    sorted(ctx.skipped))
    return ctx, raw, float(row["Exp"]), masters, out, key


def earlier_master_note(p: Pipeline, path: Path) -> str:
    """Say that a master comes from an earlier run, and whether its input frames changed since."""
    header = fits.getheader(path)
    made = header.get("DATE", "?")
    used = {header[k] for k in header if k.startswith("IMCMD")}
    now = {md5sum(p.data_path / name)[:16] for name in (header[k] for k in header if k.startswith("IMCMB"))
           if (p.data_path / name).exists()}
    stale = " STALE: its input frames changed or are gone since" if used != now else ""
    message = f"{path.name} from an earlier run ({made}){stale}"
    if stale:
        log.warning("frames: %s", message)
    return message


# ----------------------------------------------------------------------------- fringe
def fringe_groups(p: Pipeline) -> dict[str, list[Any]]:
    """Science rows of the bands the instrument's settings mark as fringing
    (``fringe_bands``), by filter, amplifier and binning (the fringe frame's group)."""
    bands = set(p.instrument.fringe_bands)
    groups: dict[str, list[Any]] = {}
    for row in p.rows("SCIENCE"):
        if str(row["Filter"]) in bands:
            name = "_".join(safe_component(row[c]) for c in ("Filter", "Amp", "Binning"))
            groups.setdefault(name, []).append(row)
    return groups


def fringe_master_job(ctx: JobContext, paths: list[Path], out: Path, key: str) -> str:
    """Build (or take from ``fringe.frame``) one fringe frame and write it to ``out``."""
    params = ctx.params.fringe
    header = fits.Header()
    if params.frame is not None:
        with fits.open(params.frame) as hdul:
            data = next(h.data for h in hdul if h.is_image and h.data is not None)
        pattern = fringe.supplied_fringe_frame(data, params)
        header["FRNGSRC"] = (Path(params.frame).name[:60], "supplied fringe frame (-p fringe.frame)")
    else:
        frames = [Frame.from_file(q) for q in paths]
        pattern = fringe.build_fringe_frame(frames, params, ctx.params.sky)
        header["FRNGSRC"] = ("night", "built from the night's dithered frames")
        for i, frame in enumerate(frames):
            header[f"IMCMB{i + 1:03d}"] = (str(frame.header.get("RAWFILE", paths[i].name))[:60], "input frame")
    header["NFRINGE"] = (pattern.n_frames, "frames combined into this fringe frame")
    header["BUNIT"] = ("fraction of sky", "fringe per unit sky level (large scales removed)")
    header["DATE"] = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "UTC this master was made")
    header["FRNGKEY"] = (key, "signature of inputs, parameters, code (re-runs)")
    atomic_write(fits.HDUList([fits.PrimaryHDU(pattern.data, header=header),
                               fits.ImageHDU(pattern.variance, name="VARIANCE"),
                               fits.ImageHDU(pattern.self_weight, name="SELFWT")]), out)
    return f"{pattern.n_frames} frames" if pattern.n_frames else f"from {header['FRNGSRC']}"


def fringe_job(ctx: JobContext, path: Path, master: Path, key: str) -> str:
    """Fit the fringe frame ``master`` to one calibrated frame, subtract it, record the scale."""
    frame = Frame.from_file(path)
    with fits.open(master) as hdul:
        pattern = fringe.FringeFrame(hdul[0].data.astype(np.float32), hdul["VARIANCE"].data.astype(np.float32),
                                     int(hdul[0].header["NFRINGE"]), hdul["SELFWT"].data.astype(np.float32))
        master_key = hdul[0].header["FRNGKEY"]
        inputs = {str(v) for k, v in hdul[0].header.items() if k.startswith("IMCMB")}
    included = str(frame.header.get("RAWFILE", ""))[:60] in inputs
    fit = fringe.subtract_fringe(frame, pattern, ctx.params.fringe, ctx.params.sky, included)
    h = frame.header
    h["FRNGSCL"] = (fit.scale, "fringe subtracted: FRNGSCL x fringe frame (e-)")
    h["FRNGERR"] = (fit.error, "standard error of FRNGSCL (e-)")
    h["FRNGNPIX"] = (fit.n_pixels, "pixels of the least-squares fit")
    h["FRNGCOR"] = (master.name, "fringe frame subtracted")
    h["FRNGMKEY"] = (master_key, "FRNGKEY of that fringe frame")
    h["FRGKEY"] = (key, "signature of inputs, parameters, code (re-runs)")
    atomic_write(frame.to_hdul(), path)
    return f"fringe {fit.scale:.0f}+-{fit.error:.1f} e- per unit ({master.name})"


def run_fringe(p: Pipeline) -> None:
    """Fringe frame per fringing band (from the night's frames or ``fringe.frame``), scaled to
    and subtracted from each of its frames; other bands are untouched.

    The stage rewrites calibrated frames in place, so a frame that an earlier fringe or sky
    correction changed is remade from its raw file (the frames stage's job, same signature)
    before it is corrected again or goes into a fringe frame.
    """
    params = p.params.fringe
    supplied = md5sum(params.frame) if params.frame is not None else None
    frames_stage = next(s for s in p.stages if s.name == "frames")
    frames_ctx = JobContext(p.instrument, p.params, p.plugins.spec, frozenset(frames_stage.skipped_hooks(p.options)))
    kinds = p.library.kinds(skip_flat=p.options.skip_flatten)
    sources = {k: v for k, v in p.params.sky.model_dump().items() if k.startswith("source_")}
    builds, corrections, remakes = [], [], []
    for group, rows in fringe_groups(p).items():
        present = [(r, q) for r in rows if (q := p.workspace_path(r["File"])).exists()]
        if not present:
            continue
        out = ensure_inside(p.cals / f"mfringe_{group}.fits", p.cals)
        master_key = signature("fringe master", supplied or sorted(str(card(q, "FRMKEY")) for _, q in present),
                               params.model_dump(exclude={"frame"}), sources)
        keys = {q: signature("fringe", card(q, "FRMKEY"), master_key) for _, q in present}
        build = not is_current(out, "FRNGKEY", master_key, p.options.force)
        todo = present if build else [(r, q) for r, q in present if not is_current(q, "FRGKEY", keys[q], False)]
        if not todo:
            p.record(out.name, True, 0.0, "up to date")
            continue
        remakes += [(r, q) for r, q in todo if card(q, "FRGKEY") or card(q, "SKYKEY")]
        if build:
            builds.append((p.job_context(), [q for _, q in present], out, master_key))
        corrections += [(out, q, keys[q]) for _, q in todo]
    jobs = []
    for row, _ in remakes:
        try:
            jobs.append(frame_plan(p, frames_ctx, row, kinds))
        except MissingCalibrationError as exc:
            p.record(row["File"], False, 0.0, str(exc))
    for name, ok, seconds, message in p.map(_timed(frame_job), jobs, "frames remade for the fringe stage"):
        p.record(name, ok, seconds, f"remade from the raw file {message}".strip() if ok else message)
    failed = set()
    for job, (name, ok, seconds, message) in zip(builds, p.map(_timed(fringe_master_job), builds, "fringe frames"),
                                                strict=True):
        p.record(job[2].name, ok, seconds, message)
        if not ok:
            failed.add(job[2])
    ctx = p.job_context()
    jobs = [(ctx, q, out, key) for out, q, key in corrections if out not in failed]
    for name, ok, seconds, message in p.map(_timed(fringe_job), jobs, "fringe"):
        p.record(name, ok, seconds, message)


# ----------------------------------------------------------------------------- sky
def sky_job(ctx: JobContext, paths: list[Path], key: str) -> str:
    """Subtract the sky shared by ``paths`` (one frame, or a dithered target) and flag trails,
    starting from the frames stage's products (kept, so a re-run never subtracts twice)."""
    frames = [stageinput.input_frame(path, "sky", SKY_INPUT, ("SKYKEY",)) for path in paths]
    if "potpyri_subtract_sky" not in ctx.skipped:
        frames = ctx.hooks.potpyri_subtract_sky(instrument=ctx.instrument, frames=frames, params=ctx.params.sky)
    messages = []
    for path, frame in zip(paths, frames, strict=True):
        trail = ctx.hooks.potpyri_mask_satellites(instrument=ctx.instrument, frame=frame, params=ctx.params.satellites)
        frame.mask |= trail.astype(np.uint16) * np.uint16(Bit.SATELLITE)
        frame.header["NSATPIX"] = (int(trail.sum()), "pixels flagged as satellite trail")
        frame.header["SKYKEY"] = (key, "signature of inputs, parameters, code (re-runs)")
        atomic_write(frame.to_hdul(), path)
        messages.append(f"sky {frame.header.get('SKYLEVEL', 0.0):.0f} e-")
    return ", ".join(messages)


def run_sky(p: Pipeline) -> None:
    """Sky subtraction (per frame for a 2-D sky, per target for a dithered sky) and trails."""
    ctx = p.job_context()
    units: list[list[Path]] = []
    for group in p.detector_groups().values():
        paths = [p.workspace_path(r["File"]) for r in sorted(group, key=lambda r: r["Time"])]
        paths = [path for path in paths if path.exists()]
        if p.params.sky.method == "dither":
            units.append(paths)
        else:
            units.extend([path] for path in paths)
    jobs = []
    for unit in units:
        key = signature("sky", [card(path, "FRGKEY") or card(path, "FRMKEY") for path in unit], p.params.sky.model_dump(),
                        p.params.satellites.model_dump(), sorted(ctx.skipped))
        if unit and all(is_current(path, "SKYKEY", key, p.options.force) for path in unit):
            p.record(", ".join(path.name for path in unit), True, 0.0, "up to date")
        elif unit:
            jobs.append((ctx, unit, key))
    for name, ok, seconds, message in p.map(_timed(sky_job), jobs, "sky"):
        p.record(name, ok, seconds, message)


# ----------------------------------------------------------------------------- astrometry
def astrometry_job(ctx: JobContext, path: Path, reference: Any, key: str) -> str:
    """Solve one frame's WCS against the reference catalog at the frame's epoch, starting from
    the sky stage's product (its header kept, so a re-run never starts from its own solution)."""
    frame = stageinput.input_header_frame(path, "astrometry", ASTROMETRY_INPUT, ("ASTKEY", "ASTSTAT"))
    mjd = float(frame.header.get("MJD-OBS", 51544.5))
    at_obs = reference.copy(copy_data=False)
    at_obs["ra"], at_obs["dec"] = at_epoch(reference, Time(mjd, format="mjd").jyear)
    try:
        solution = ctx.hooks.potpyri_solve_wcs(instrument=ctx.instrument, frame=frame, reference=at_obs,
                                               params=ctx.params.astrometry)
    except Exception as exc:  # the frame is marked as failed: the stack leaves it out
        frame.header.update(astrometry.failure_header(f"{type(exc).__name__}: {exc}"))
        atomic_write(frame.to_hdul(), path)
        raise
    header = frame.header
    for name in list(header.keys()):
        if name.startswith(WCS_KEY_PREFIXES):
            del header[name]
    ccdwcs.remove_cards(header)
    header.update(astrometry.solution_header(solution))
    header["ASTKEY"] = (key, "signature of inputs, parameters, code (re-runs)")
    extra = [align.stars_hdu(solution.stars)] if solution.stars is not None else []
    atomic_write(frame.to_hdul(extra), path)
    return (f"{solution.n_matched} stars ({solution.backend}, {solution.model}), rms"
            f" {solution.rms_ra:.3f}/{solution.rms_dec:.3f}\"")


def run_astrometry(p: Pipeline) -> None:
    """Solve the WCS of every calibrated science frame against the reference catalog."""
    catalog = p.reference_catalog()
    if catalog is None:
        p.record("all frames", False, 0.0, "no calibrated science frames")
        return
    try:
        reference = catalog.astrometric()
    except CatalogUnavailableError as exc:
        p.record("all frames", False, 0.0, f"{exc}; header WCS kept")
        return
    ctx = p.job_context()
    catalog_key = table_digest(reference)
    jobs = []
    for path in (p.workspace_path(r["File"]) for r in p.rows("SCIENCE")):
        if not path.exists():
            continue
        key = signature("astrometry", card(path, "SKYKEY") or card(path, "FRGKEY") or card(path, "FRMKEY"), catalog_key,
                        p.params.astrometry.model_dump())
        if is_current(path, "ASTKEY", key, p.options.force):
            p.record(path.name, True, 0.0, "up to date")
        else:
            jobs.append((ctx, path, reference, key))
    for name, ok, seconds, message in p.map(_timed(astrometry_job), jobs, "astrometry"):
        p.record(name, ok, seconds, message)
    if p.params.astrometry.align_frames:
        for group in p.detector_groups().values():
            run_align(p, [p.workspace_path(r["File"]) for r in group if p.workspace_path(r["File"]).exists()])
    if p.instrument.astrometry_per_ccd:
        run_ccd_maps(p, ctx, reference, catalog_key)


def run_align(p: Pipeline, paths: list[Path]) -> None:
    """Frame-to-frame alignment of one target's frames with all their detected sources.

    Redone (from the astrometry products' headers, kept) when a frame's solution or the
    parameters changed; every frame of the target gets the signature card ``ALNKEY``.
    """
    params = p.params.astrometry
    key = signature("align", [q.name for q in paths], [card(q, "ASTKEY") or card(q, "ASTREASN") for q in paths],
                    params.model_dump())
    if not paths or all(is_current(q, "ALNKEY", key, p.options.force) for q in paths):
        return
    start = time.perf_counter()
    try:
        headers = [stageinput.input_header(q, "align", ALIGN_INPUT, ("ALNKEY",)) for q in paths]
    except stageinput.LostInputError as exc:
        p.record(f"{paths[0].name} (aligned)", False, time.perf_counter() - start, str(exc))
        return
    written: set[Path] = set()

    def write(hdul: fits.HDUList, path: Path) -> None:
        hdul[0].header["ALNKEY"] = (key, "signature of inputs, parameters, code (re-runs)")
        atomic_write(hdul, path)
        written.add(path)

    for name, ok, message in align.align_workspace(paths, p.instrument, params, write, headers):
        p.record(f"{name} (aligned)", ok, time.perf_counter() - start, message)
    for path, header in zip(paths, headers, strict=True):
        if path not in written:  # not moved by the alignment: the astrometry product, signed
            with fits.open(path) as hdul:
                rest = [h.copy() for h in hdul[1:]]
                write(fits.HDUList([fits.PrimaryHDU(hdul[0].data, header), *rest]), path)


def run_ccd_maps(p: Pipeline, ctx: JobContext, reference: Any, catalog_key: str) -> None:
    """Per-CCD pixel maps of every frame (instruments with ``astrometry_per_ccd``), redone when
    the frame's solution or alignment (``ALNKEY``/``ASTKEY``) or the parameters changed."""
    jobs = []
    for path in (p.workspace_path(r["File"]) for r in p.rows("SCIENCE")):
        if not path.exists():
            continue
        key = signature("ccdmap", card(path, "ALNKEY") or card(path, "ASTKEY"), catalog_key,
                        p.params.astrometry.model_dump())
        if not is_current(path, "CCDKEY", key, p.options.force):
            jobs.append((ctx, path, reference, key))
    for name, ok, seconds, message in p.map(_timed(ccd_job), jobs, "astrometry per CCD"):
        p.record(f"{name} (per CCD)", ok, seconds, message)


def ccd_job(ctx: JobContext, path: Path, reference: Any, key: str) -> str:
    """Fit the pixel map of every CCD of one solved frame (:mod:`~potpyri_core.stages.ccdwcs`)."""
    frame = Frame.from_file(path)
    header = frame.header
    ccdwcs.remove_cards(header)
    if header.get("ASTSTAT") != "PASS":
        return "no frame solution: no CCD maps"
    with fits.open(path) as hdul:
        extra = [h.copy() for h in hdul[1:] if h.name not in ("MASK", "ERROR", "AMPMAP")]
    stars = next((Table.read(h) for h in extra if h.name == align.STARS_EXTENSION), None)
    if stars is None:
        raise RuntimeError(f"no {align.STARS_EXTENSION} extension: run the astrometry stage")
    mjd = float(header.get("MJD-OBS", 51544.5))
    ra, dec = at_epoch(reference, Time(mjd, format="mjd").jyear)
    maps, notes = ccdwcs.solve_ccds(frame, WCS(header, relax=True), stars, np.asarray(ra, float),
                                    np.asarray(dec, float), ctx.instrument, ctx.params.astrometry)
    header.update(ccdwcs.map_cards(maps))
    header["CCDKEY"] = (key, "signature of inputs, parameters, code (re-runs)")
    atomic_write(frame.to_hdul(extra), path)
    fitted = [m for m in maps.ccds if m.n_stars]
    turn = max((abs(m.rotation_deg) for m in fitted), default=0.0)
    rms = max((m.rms for m in fitted), default=0.0)
    summary = (f"{len(fitted)}/{len(maps.ccds)} CCDs mapped, largest rotation {turn:.3f} deg, largest RMS"
               f" {rms:.2f} px")
    return "; ".join([summary, *notes])


# ----------------------------------------------------------------------------- stack
def resample_job(args: tuple) -> spill.SpilledFrame:
    """Resample one frame onto the stack grid through ``potpyri_resample``, measure its stack
    weight and write it to disk under ``stem`` (the stack reads it back in row blocks)."""
    ctx, path, grid, shape, stem = args
    frame = Frame.from_file(path)
    out = ctx.hooks.potpyri_resample(instrument=ctx.instrument, frame=frame, grid=grid, shape=shape,
                                     params=ctx.params.resample)
    out.meta["weight"] = stack.frame_weight(out.variance, out.mask)
    return spill.spill(out, stem)


def output_grid(p: Pipeline, headers: list[fits.Header]) -> tuple[fits.Header, tuple[int, int]]:
    """North-up output grid: centre from ``--fieldcenter`` or the frames, side ``--out-size``."""
    binning = int(str(headers[0].get("BINNING", "1x1")).split("x")[0])
    scale = p.instrument.pixel_scale * binning
    if p.options.fieldcenter is not None:
        center = SkyCoord(*p.options.fieldcenter, unit="deg")
    else:
        centers = [WCS(h, relax=True).pixel_to_world((h["NAXIS1"] - 1) / 2, (h["NAXIS2"] - 1) / 2) for h in headers]
        center = SkyCoord(np.median([c.ra.deg for c in centers]), np.median([c.dec.deg for c in centers]),
                          unit="deg")
    side = (p.options.out_size or p.instrument.out_size) // binning
    return resample.output_grid(center, (side, side), scale).to_header(), (side, side)


def run_stack(p: Pipeline) -> None:
    """Resample and combine the frames of each target/filter group."""
    for targtype, group in p.science_groups().items():
        start = time.perf_counter()
        try:
            paths = [p.workspace_path(r["File"]) for r in group if p.workspace_path(r["File"]).exists()]
            if not paths:
                raise RuntimeError("no calibrated frames (frames stage failed or not run)")
            # frames whose astrometry failed its checks are left out of the stack, and named
            failed = {q: fits.getheader(q).get("ASTREASN", "") for q in paths
                      if fits.getheader(q).get("ASTSTAT") == "FAIL"}
            for q, reason in failed.items():
                p.record(q.name, False, 0.0, f"left out of the stack: astrometry failed ({reason})")
            paths = [q for q in paths if q not in failed]
            group = group[np.array([p.workspace_path(r["File"]) in paths for r in group], bool)]
            if not paths:
                raise RuntimeError("every frame failed its astrometry")
            headers = [fits.getheader(path) for path in paths]
            path = p.stack_path(group)
            key = signature("stack", [[h.get("ASTKEY") or h.get("SKYKEY") or h.get("FRGKEY") or h.get("FRMKEY"),
                                       h.get("ALNKEY"), h.get("CCDKEY")]
                                      for h in headers],
                            p.params.resample.model_dump(), p.params.stack.model_dump(), p.options.fieldcenter,
                            p.options.out_size)
            if is_current(path, "STKKEY", key, p.options.force):
                p.summary.stacks.append(path)
                p.record(path.name, True, time.perf_counter() - start, "up to date")
                continue
            grid, shape = output_grid(p, headers)
            ctx = p.job_context()
            spilled = p.work / f"resampled_{path.stem}"
            try:
                resampled = p.map(resample_job, [(ctx, q, grid, shape, spilled / q.stem) for q in paths],
                                  "resampling")
                out = p.hooks.potpyri_stack(instrument=p.instrument, frames=[r.open() for r in resampled],
                                            params=p.params.stack)
            finally:
                spill.remove(spilled)
            out.header = stack_header(p.instrument, grid, headers[0], group, headers)
            out.header["PHOTSTAT"] = ("pending", "photometry stage not (yet) run on this stack")
            out.header["STKKEY"] = (key, "signature of inputs, parameters, code (re-runs)")
            out.header["NDROPPED"] = (len(failed), "frames left out: astrometry failed")
            out.name = targtype
            prov = provenance_hdu(headers, p.instrument.model_dump(mode="json"), p.options.model_dump_json(),
                                  p.params.to_json(), p.plugins.versions())
            atomic_write(out.to_hdul([prov, fits.ImageHDU(out.meta["nframes"], name="NFRAMES")]), path)
            p.summary.stacks.append(path)
            p.record(path.name, True, time.perf_counter() - start, f"{len(paths)} frames")
        except Exception as exc:
            log.debug(traceback.format_exc())
            p.record(targtype, False, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")


# ----------------------------------------------------------------------------- photometry
def run_photometry(p: Pipeline) -> None:
    """Photometry, zero point and limits of every stack."""
    catalog = p.reference_catalog()
    with progress(len(p.science_groups()), "photometry") as bar:
        for targtype, group in p.science_groups().items():
            _photometry_target(p, targtype, group, catalog)
            bar.update()


def _photometry_target(p: Pipeline, targtype: str, group: Any, catalog: Any) -> None:
    """Photometry of one target's stack (or find it up to date)."""
    path = p.stack_path(group)
    start = time.perf_counter()
    if not path.exists():
        p.record(targtype, False, 0.0, "no stack (stack stage failed or not run)")
        return
    key = signature("photometry", card(path, "STKKEY"), catalog_signature(catalog),
                    p.params.photometry.model_dump(), p.instrument.zeropoint.model_dump())
    if is_current(path, "PHOKEY", key, p.options.force) and card(path, "PHOTSTAT") == "done":
        p.record(path.name, True, 0.0, "up to date")
        return
    try:
        message = photometry_one(p, path, str(group[0]["Filter"]), catalog, key)
        p.record(path.name, True, time.perf_counter() - start, message)
    except Exception as exc:
        log.debug(traceback.format_exc())
        p.record(path.name, False, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")


def catalog_signature(catalog: Any) -> Any:
    """What identifies the photometric catalog of a run: saved files by checksum, online
    sources by field."""
    if catalog is None:
        return None
    paths = getattr(catalog, "paths", None)
    if paths is not None:
        return [md5sum(Path(q)) for q in paths]
    return [str(getattr(catalog, "center", "")), getattr(catalog, "radius", None)]


def photometry_one(p: Pipeline, path: Path, band: str, catalog: Any, key: str) -> str:
    """Measure one stack, calibrate it against ``catalog`` and rewrite it with the tables."""
    frame = Frame.from_file(path)
    with fits.open(path) as hdul:
        extras = [h.copy() for h in hdul[3:] if h.name not in PHOTOMETRY_EXTENSIONS]
        if "NFRAMES" in hdul:
            frame.meta["nframes"] = np.array(hdul["NFRAMES"].data)
    scale = float(np.sqrt(abs(np.linalg.det(frame.wcs.pixel_scale_matrix)))) * 3600.0
    params = p.params.photometry
    h = frame.header
    for name in [k for k in h if k in STALE_PHOTOMETRY_CARDS or k.startswith("PSF")]:
        del h[name]  # never keep a previous run's numbers beside this run's tables
    result = p.hooks.potpyri_photometry(instrument=p.instrument, stack=frame, params=params)
    h["FWHM"] = (result.fwhm, "median stellar FWHM (pixels)")
    h["SEEING"] = (result.fwhm * scale, "median stellar FWHM (arcsec)")
    h["APRAD"] = (result.radius, "photometry aperture radius (pixels)")
    h["APCOR"] = (result.apcor, f"aperture correction to {photometry.APCOR_RADIUS_FWHM:g} FWHM")
    h["NOISECOR"] = (result.noise_correlation, "empty-aperture var / summed pixel var")
    h["SKYSIG"] = (float(np.median(np.sqrt(frame.variance[(frame.mask & 0xFF) == 0]))), "median ERROR (e-/s)")
    h["DEPTHNFR"] = (result.depth_frames, "frames where the depth (M*SIGMA) was measured")
    h["DEPTHFRC"] = (round(result.depth_fraction, 4), "fraction of the stack area with DEPTHNFR frames")
    message = f"{len(result.table)} sources, FWHM {result.fwhm * scale:.2f}\""
    problem = ""
    try:
        reference = catalog.photometric(band, p.instrument.zeropoint.vega_to_ab) if catalog is not None else None
    except (CatalogUnavailableError, ValueError) as exc:
        reference, problem = None, str(exc)
    if reference is None and not problem:
        problem = (f"no {band}-band reference catalog for this instrument and field: no zero point"
                   f" (pass --catalog FILE with {band} magnitudes)")
    if reference is not None:
        zp = p.hooks.potpyri_zeropoint(instrument=p.instrument, band=band, sources=result.table, reference=reference,
                                       params=params,
                                       apcor_mag_err=photometry.apcor_mag_error(result.apcor, result.apcor_err))
        h["ZPTMAG"] = (zp["ZPTMAG"], "m = -2.5 log10(e-/s) + ZPTMAG (AB)")
        h["ZPTMUCER"] = (zp["ZPTMUCER"], "zero point uncertainty (mag)")
        if "ZPTSTAT" in zp:
            h["ZPTSTAT"] = (zp["ZPTSTAT"], "ZPTMUCER part: star scatter and errors (mag)")
        if "ZPTAPCER" in zp:
            h["ZPTAPCER"] = (zp["ZPTAPCER"], "ZPTMUCER part: aperture correction (mag)")
        h["ZPTNSTAR"] = (zp["ZPTNSTAR"], "stars used for the zero point")
        h["ZPTCAT"] = (Path(str(reference.meta.get("source", "?"))).name[:60], "zero point catalog")
        for name, value in zp.items():
            if isinstance(value, tuple):  # further cards of the hook, e.g. the colour term's
                h[name] = value
        for limit, value in photometry.limiting_magnitudes(zp["ZPTMAG"], result.empty_sigma, result.apcor).items():
            h[limit] = (value, f"{limit[1:-5]}-sigma point-source limit (AB)")
        sourcecat.calibrate(result.table, zp["ZPTMAG"], sourcecat.APERTURE_INVALID)
        if getattr(result, "psf_table", None) is not None:
            sourcecat.calibrate(result.psf_table, zp["ZPTMAG"], sourcecat.PSF_INVALID)
        h["LIMDEFA"] = (("M3/M5/M10SIGMA = ZPTMAG - 2.5 log10(k * APCOR * sigma of sums in empty apertures"
                        " of radius APRAD on blank sky where DEPTHNFR frames contribute)"), "analytic limits")
        message += f", ZP {zp['ZPTMAG']:.3f}±{zp['ZPTMUCER']:.3f} ({zp['ZPTNSTAR']} stars), m5 {h['M5SIGMA']:.2f}"
        message += injection_cards(frame, result, zp["ZPTMAG"], params)
    table_hdu = sourcecat.catalog_hdu(result.table, "APPPHOT", sourcecat.APERTURE_INVALID, detection_cards(result, params))
    if getattr(result, "capped", 0):
        log.warning("photometry %s: %d sources above the threshold left out (photometry.max_sources=%d)",
                    path.name, result.capped, params.max_sources)
    psf_hdus = psf_extensions(result, h, params)
    if psf_hdus:
        message += f", PSF {len(result.psf_table)} sources ({len(result.psf_stars)} ePSF stars)"
    else:
        message += ", no PSF photometry"
    h["PHOTSTAT"] = ("done" if not problem else "no zero point", "photometry stage outcome")
    h["PHOKEY"] = (key, "signature of inputs, parameters, code (re-runs)")
    atomic_write(frame.to_hdul([*extras, table_hdu, *psf_hdus]), path)
    if problem:
        raise RuntimeError(f"{message}; {problem}")
    return message


def injection_cards(frame: Frame, result: photometry.ApertureResult, zeropoint: float, params: Any) -> str:
    """Injection-recovery limits into the stack header; returns the summary's words."""
    if not params.injection_stars or getattr(result, "epsf_image", None) is None:
        return ", no injection limits" if params.injection_stars else ""
    h = frame.header
    try:
        out = injection.inject_and_recover(frame.data, frame.variance, frame.mask, result, zeropoint, h["M5SIGMA"],
                                           params)
    except (RuntimeError, ValueError) as exc:
        log.warning("no injection-recovery limits: %s", exc)
        return f", no injection limits ({exc})"
    h["M5INJ"] = (out.m5, "S/N-5 magnitude of injected ePSF stars (AB)")
    h["MC50INJ"] = (out.m50, "50% completeness of injected ePSF stars (AB)")
    h["NINJECT"] = (out.n_stars, "artificial stars injected (blank sky)")
    h["INJSEED"] = (params.injection_seed, "seed of the injected positions")
    h["LIMDEFI"] = (("M5INJ: magnitude where injected total flux / robust scatter of the measured total flux"
                    " (aperture APRAD x APCOR) is 5, log S/N-magnitude line fit"), "injection S/N-5 limit")
    h["LIMDEFC"] = (("MC50INJ: magnitude where half the injected stars are found by the catalog's detection"
                    " (DETSNR), logistic fit"), "injection completeness limit")
    return f", injected m5 {out.m5:.2f}, c50 {out.m50:.2f}"


def detection_cards(result: photometry.ApertureResult, params: Any) -> list[tuple[str, Any, str]]:
    """Header cards stating how the APPPHOT rows were selected."""
    return [("DETSNR", params.detect_snr, "rows: PSF-filter and aperture S/N >= this"),
            ("DETNCOR", result.noise_correlation, "noise correction (NOISECOR) in both S/N"),
            ("NSOURCE", len(result.table), "rows (sources above the threshold)"),
            ("DETCAPPD", int(getattr(result, "capped", 0)), "sources dropped by photometry.max_sources")]


def psf_extensions(result: photometry.ApertureResult, header: fits.Header,
                   params: Any) -> list[fits.hdu.base.ExtensionHDU]:
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
    header["PSFFWHM"] = (fwhm, "FWHM of the ePSF, Moffat fit (pixels)")
    header["NPSFSTAR"] = (len(result.psf_stars), "stars that built the ePSF")
    shifted = int(np.sum((np.asarray(psf_table["flags"]) & sourcecat.SourceFlag.PSF_SHIFTED) > 0))
    phot_hdu = sourcecat.catalog_hdu(psf_table, "PSFPHOT", sourcecat.PSF_INVALID, [
        ("PSFMAXSH", params.psf_max_shift_fwhm, "PSFMOVED: fit moved more than this (FWHM)"),
        ("NPSFMOVD", shifted, "fits flagged PSFMOVED (no mag)")])
    stars_hdu = sourcecat.catalog_hdu(result.psf_stars, "PSFSTARS")
    psf_hdu = fits.ImageHDU(np.asarray(result.epsf_image, np.float32), name="PSF")
    psf_hdu.header["OVERSAMP"] = (oversampling, "ePSF oversampling relative to the stack pixels")
    psf_hdu.header["PSFFWHM"] = (fwhm, "FWHM of the ePSF, Moffat fit (stack pixels)")
    psf_hdu.header["PSFNORM"] = (float(np.sum(result.epsf_image)) / oversampling**2,
                                 "fraction of the total flux inside this image")
    psf_hdu.header["NPSFSTAR"] = (len(result.psf_stars), "stars that built the ePSF")
    residual_hdu = fits.ImageHDU(np.asarray(result.residual, np.float32), name="RESIDUAL")
    residual_hdu.header["BUNIT"] = (header.get("BUNIT", "electron/s"), "SCI minus the fitted PSF models")
    return [phot_hdu, stars_hdu, psf_hdu, residual_hdu]


CORE_STAGES: list[Stage] = [
    Stage("sort", run_sort, "night", ("potpyri_read_header", "potpyri_classify"), "raw files",
          "file_list.txt"),
    Stage("calibrations", run_calibrations, "calibration group",
          ("potpyri_assemble", "potpyri_apply_calibrations", "potpyri_build_calibration"),
          "file list, raw bias/dark/flat frames", "red/cals/m<kind>_<group>.fits",
          skips=(("skip_flatten", "potpyri_build_calibration:flat"),)),
    Stage("frames", run_frames, "frame", ("potpyri_assemble", "potpyri_apply_calibrations",
                                          "potpyri_mask_cosmic_rays"),
          "raw science frames, masters", "red/workspace/<stem>_red.fits",
          skips=(("skip_cr", "potpyri_mask_cosmic_rays"), ("skip_flatten", "flat master"))),
    Stage("fringe", run_fringe, "band (fringe frame), frame", (),
          "red/workspace (frames of the instrument's fringe_bands), -p fringe.frame",
          "red/cals/mfringe_<filter>_<amp>_<binning>.fits, red/workspace (FRNGSCL)",
          skips=(("skip_fringe", "*"),)),
    Stage("sky", run_sky, "frame (2-D sky) or target (dithered sky)",
          ("potpyri_subtract_sky", "potpyri_mask_satellites"), "red/workspace", "red/workspace",
          skips=(("skip_skysub", "potpyri_subtract_sky"),)),
    Stage("astrometry", run_astrometry, "frame", ("potpyri_solve_wcs",), "red/workspace, reference catalog",
          "red/workspace (WCS)", skips=(("skip_gaia", "*"),)),
    Stage("stack", run_stack, "target", ("potpyri_resample", "potpyri_stack"), "red/workspace",
          "red/<target>...stk.fits"),
    Stage("photometry", run_photometry, "target", ("potpyri_photometry", "potpyri_zeropoint"),
          "stack, photometric catalog", "stack (APPPHOT, PSFPHOT, PSF, ZPTMAG, limits)"),
    Stage("qa", run_qa, "target", (), "stacks, red/workspace, reference catalogs, run summary",
          "red/qa/index.html, red/qa/<stack>.html and PNGs"),
]
"""The core's stages, in order."""
