"""Benchmark: peak memory of the stack and master combines for 10, 20, 40 frames.

Two modes, each measurement in a fresh process so that one does not inherit another's peak:

``combine``
    Synthetic frames (noise, a mask) of a given size, written one at a time to disk as the
    stages do (``potpyri_core.stages.spill``); the peak RSS is that of the combine alone
    (``potpyri_stack`` of frames on the stack grid, ``build_master`` of flat frames of the
    detector size). ``--in-memory`` holds the frames as arrays instead, the way the stages
    worked before they spilled, for comparison (the peak then includes the frames).
``night``
    Simulates a night of one instrument with N science frames and N flats, reduces it, then
    runs the ``calibrations`` and ``stack`` stages again (``--force``), each alone in its own
    process; prints the main process's peak RSS during that stage and the largest worker's.

The peak is the kernel's high-water mark of resident memory (``VmHWM``), reset just before
the measured step (``/proc/self/clear_refs``), so imports and set-up are left out.
Goal (issue 10): < 10% growth from 10 to 40 frames, 20 BINOSPEC-size frames < 2.5 GB.

Usage::

    python benchmarks/bench_memory.py combine [--frames 10 20 40] [--stack-size 5000 5000]
        [--detector 4112 8984] [--in-memory]
    python benchmarks/bench_memory.py night [--instrument BINOSPEC] [--frames 10 20 40] [--binning 1]
        [--proc 2] [--keep DIR]

The defaults are BINOSPEC at 1x1: a 5000 x 5000 stack grid (``out_size``) and a mosaic of the
two 4096 x 4112 sides with the ~792 px gap between them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

MB = 2**20


def reset_peak() -> bool:
    """Reset this process's resident high-water mark (Linux); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    """This process's resident high-water mark since the last :func:`reset_peak` (MB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _synthetic(shape: tuple[int, int], seed: int, exptime: float) -> Any:
    from potpyri_core.frames import Frame
    from potpyri_core.maskbits import Bit

    rng = np.random.default_rng(seed)
    data = rng.normal(1000.0, 30.0, shape).astype(np.float32)
    mask = np.zeros(shape, np.uint16)
    mask[: shape[0] // 50] = Bit.NO_DATA
    frame = Frame(data=data, variance=np.full(shape, 900.0, np.float32), mask=mask, header=fits.Header(),
                  name=f"f{seed:03d}")
    frame.meta["exptime"] = exptime
    return frame


def _frames(n: int, shape: tuple[int, int], directory: Path, in_memory: bool, variance: bool) -> list:
    from potpyri_core.stages import spill

    frames = []
    for i in range(n):
        frame = _synthetic(shape, i, 10.0)
        if not variance:
            frame.variance = np.empty(0, np.float32)  # as the calibrations stage passes them
        frames.append(frame if in_memory else spill.spill(frame, directory / frame.name).open())
        del frame
    return frames


def measure_combine(what: str, n: int, shape: tuple[int, int], in_memory: bool) -> float:
    """Peak RSS (MB) of one combine of ``n`` synthetic frames (run in a child process)."""
    from potpyri_core.defaults import potpyri_stack
    from potpyri_core.params import StackParams
    from potpyri_core.stages.calibrate import build_master

    directory = Path(tempfile.mkdtemp(prefix="potpyri_mem_"))
    try:
        frames = _frames(n, shape, directory, in_memory, variance=what == "stack")
        if what == "stack":
            for f in frames:
                f.meta["weight"] = 1.0 / 900.0  # measured per frame by the resampling job
        reset_peak()
        if what == "stack":
            potpyri_stack(instrument=None, frames=frames, params=StackParams())
        else:
            build_master("flat", frames, 3, "bench")
        return peak_mb()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def measure_stage(root: Path, instrument: str, stage: str, proc: int) -> tuple[float, float, str]:
    """Peak RSS (MB) of the main process and largest worker during one stage run alone."""
    from potpyri_core.options import RunOptions
    from potpyri_core.pipeline import Pipeline
    from potpyri_core.plugins import PluginManager

    pm = PluginManager()
    settings = pm.instrument(instrument)
    catalogs = tuple(sorted((root / "refcat").glob("*.ecsv")))
    Pipeline(settings, root, RunOptions(proc=proc, catalogs=catalogs, stages=("sort",)), pm).run()
    reset_peak()
    options = RunOptions(proc=proc, catalogs=catalogs, stages=(stage,), force=True, redo_sort=False)
    summary = Pipeline(settings, root, options, pm).run()
    messages = "; ".join(f"{r.item}: {r.message}" for r in summary.results if r.stage == stage and not r.ok)
    return peak_mb(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, messages


def _in_child(func: Any, *args: Any) -> Any:
    """Run ``func(*args)`` in a fresh process and return its result."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(func, args)


def growth(peaks: dict[int, float]) -> str:
    """Growth from the fewest to the most frames, in percent."""
    ns = sorted(peaks)
    return f"{100 * (peaks[ns[-1]] / peaks[ns[0]] - 1):+.1f}% from {ns[0]} to {ns[-1]} frames"


def run_combine(args: argparse.Namespace) -> None:
    """The ``combine`` mode."""
    if not reset_peak():
        print("note: cannot reset the peak (no /proc/self/clear_refs): peaks include the set-up")
    for what, shape in (("stack", tuple(args.stack_size)), ("master", tuple(args.detector))):
        peaks = {}
        size = shape[0] * shape[1] * (10 if what == "stack" else 7) / MB
        print(f"{what} combine, frames {shape[0]} x {shape[1]} ({size:.0f} MB each),"
              f" {'in memory' if args.in_memory else 'spilled to disk'}")
        for n in args.frames:
            peaks[n] = _in_child(measure_combine, what, n, shape, args.in_memory)
            print(f"  {n:3d} frames: peak RSS {peaks[n]:8.0f} MB", flush=True)
        print(f"  {growth(peaks)}")


def run_night(args: argparse.Namespace) -> None:
    """The ``night`` mode."""
    from potpyri_core.options import RunOptions
    from potpyri_core.pipeline import Pipeline
    from potpyri_core.plugins import PluginManager
    from potpyri_core.simulate.instrument_night import simulate_instrument_night

    base = args.keep or Path(tempfile.mkdtemp(prefix="potpyri_memnight_"))
    peaks: dict[str, dict[int, float]] = {"calibrations": {}, "stack": {}}
    try:
        for n in args.frames:
            root = base / f"n{n}"
            pm = PluginManager()
            settings = pm.instrument(args.instrument)
            if not (root / "truth" / "truth.json").exists():
                simulate_instrument_night(pm, settings, root, seed=3, binning=args.binning, n_science=n, n_flats=n,
                                          n_bias=n, n_darks=n, exptime=args.exptime)
            catalogs = tuple(sorted((root / "refcat").glob("*.ecsv")))
            summary = Pipeline(settings, root, RunOptions(proc=args.proc, catalogs=catalogs,
                                                          stages=("sort", "calibrations", "frames", "sky",
                                                                  "astrometry", "stack")), pm).run()
            if summary.failures:
                print(f"  {n} frames: {len(summary.failures)} failures in the first reduction:"
                      f" {summary.failures[0].item}: {summary.failures[0].message}")
            for stage, values in peaks.items():
                main, worker, problems = _in_child(measure_stage, root, args.instrument, stage, args.proc)
                values[n] = main
                print(f"  {n:3d} frames, {stage:<12}: main {main:8.0f} MB, largest worker {worker:8.0f} MB"
                      + (f" (failed: {problems})" if problems else ""), flush=True)
        for stage, values in peaks.items():
            print(f"{stage}: {growth(values)}")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    """Parse the arguments and run one mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    combine = modes.add_parser("combine", help="synthetic frames, the combines alone")
    combine.add_argument("--frames", type=int, nargs="+", default=[10, 20, 40])
    combine.add_argument("--stack-size", type=int, nargs=2, default=[5000, 5000], metavar=("NY", "NX"))
    combine.add_argument("--detector", type=int, nargs=2, default=[4112, 8984], metavar=("NY", "NX"))
    combine.add_argument("--in-memory", action="store_true", help="frames as arrays (the old way)")
    night = modes.add_parser("night", help="a simulated night, stages run alone")
    night.add_argument("--instrument", default="BINOSPEC")
    night.add_argument("--frames", type=int, nargs="+", default=[10, 20, 40])
    night.add_argument("--binning", type=int, default=1)
    night.add_argument("--exptime", type=float, default=120.0)
    night.add_argument("--proc", type=int, default=2)
    night.add_argument("--keep", type=Path, default=None, help="simulate into this folder and keep it")
    args = parser.parse_args()
    run_combine(args) if args.mode == "combine" else run_night(args)


if __name__ == "__main__":
    main()
