"""Side by side: the master-flat combine of this project against ``ccdproc.combine``.

Both combine the same N synthetic flat frames (a flat pattern times a level that differs per
frame, Poisson-like noise, a few hot pixels and cosmic rays, a NO_DATA gap) into a flat
normalised to 1, each in a fresh process: this project's ``build_master("flat")`` over frames
spilled to disk, and ``ccdproc.combine(method="average", sigma_clip=True, scale=1/median,
mem_limit=...)`` with the same clipping threshold about the median. Printed: wall seconds,
peak RSS of the combine, and how the two results differ (mean, error, DQ).

What differs by construction, and why the project keeps its own combine:

- clipping: ours clips ``clip_iterations`` (2) times about the median; ``combine`` once;
- error: ours is the clipped sample variance / N kept (ddof=1); ccdproc's default is the
  population std / sqrt(N) of the kept values, i.e. smaller by (N-1)/N in variance;
- DQ: ours ORs NO_DATA from every frame into the master and derives BAD/VIGNETTED bits;
  ``combine`` only returns a mask where every frame was masked.

Usage: python benchmarks/bench_ccdproc_combine.py [--frames 5 10] [--shape 2048 2048]
       [--mem-limit-mb 256] (needs ``pip install ccdproc``; not a dependency of the project)
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from bench_memory import peak_mb, reset_peak


def frames(n: int, shape: tuple[int, int]) -> list[Any]:
    """Synthetic flat frames in e- (level 20000-30000 e-, 2% pixel-to-pixel structure)."""
    from potpyri_core.frames import Frame
    from potpyri_core.maskbits import Bit

    pattern = np.random.default_rng(0).normal(1.0, 0.02, shape).astype(np.float32)
    out = []
    for i in range(n):
        rng = np.random.default_rng(i + 1)
        level = 20000.0 + 10000.0 * i / max(n - 1, 1)
        data = (level * pattern + rng.normal(0.0, np.sqrt(level), shape)).astype(np.float32)
        data[rng.integers(0, shape[0], 200), rng.integers(0, shape[1], 200)] += 5e4  # cosmic rays
        mask = np.zeros(shape, np.uint16)
        mask[:, shape[1] // 2:shape[1] // 2 + 8] = Bit.NO_DATA
        data[mask > 0] = 0.0
        frame = Frame(data=data, variance=np.empty(0, np.float32), mask=mask, header=fits.Header(), name=f"f{i}")
        frame.meta["exptime"] = 10.0
        out.append(frame)
    return out


def run_ours(n: int, shape: tuple[int, int], iterations: int, result: Path) -> tuple[float, float]:
    """This project's master flat (child process); writes the result to ``result``."""
    from potpyri_core.params import CalibrationParams
    from potpyri_core.stages import spill
    from potpyri_core.stages.calibrate import build_master

    work = Path(tempfile.mkdtemp(prefix="potpyri_cmb_"))
    try:
        disk = [spill.spill(f, work / f.name).open() for f in frames(n, shape)]
        reset_peak()
        start = time.perf_counter()
        master = build_master("flat", disk, 3, "bench", CalibrationParams(clip_iterations=iterations))
        seconds = time.perf_counter() - start
        peak = peak_mb()
        np.savez(result, data=master.data, variance=master.variance, mask=master.mask)
        return seconds, peak
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_ccdproc(n: int, shape: tuple[int, int], mem_limit_mb: float, result: Path) -> tuple[float, float]:
    """``ccdproc.combine`` of the same frames (child process); writes the result to ``result``."""
    import ccdproc
    from astropy import units as u
    from astropy.nddata import CCDData

    from potpyri_core.params import CalibrationParams

    sigma = CalibrationParams().clip_sigma
    ccds = []
    for f in frames(n, shape):
        ccds.append(CCDData(f.data, unit=u.electron, mask=(f.mask > 0)))
    good = ~np.logical_or.reduce([c.mask for c in ccds])
    scale = [1.0 / float(np.median(c.data[good])) for c in ccds]
    reset_peak()
    start = time.perf_counter()
    master = ccdproc.combine(ccds, method="average", scale=scale, sigma_clip=True, sigma_clip_low_thresh=sigma,
                             sigma_clip_high_thresh=sigma, sigma_clip_func=np.ma.median,
                             sigma_clip_dev_func=np.ma.std, mem_limit=mem_limit_mb * 2**20)
    data = np.asarray(master.data, np.float32)
    norm = float(np.median(data[good]))
    data = data / norm
    variance = np.asarray(master.uncertainty.array, np.float32) ** 2 / norm**2
    seconds = time.perf_counter() - start
    peak = peak_mb()
    np.savez(result, data=data, variance=variance, mask=np.asarray(master.mask, np.uint16))
    return seconds, peak


def _child(func: Any, *args: Any) -> Any:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(func, args)


def main() -> None:
    """Run both for each N and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--shape", type=int, nargs=2, default=[2048, 2048], metavar=("NY", "NX"))
    parser.add_argument("--mem-limit-mb", type=float, default=256.0)
    args = parser.parse_args()
    shape = tuple(args.shape)
    work = Path(tempfile.mkdtemp(prefix="potpyri_cmbres_"))
    try:
        print(f"{'N':>3} {'combine':<26}{'s':>7}{'peak MB':>9}  difference from ours (2 clip passes)")
        for n in args.frames:
            runs = {"ours, 2 clip passes": _child(run_ours, n, shape, 2, work / "ours2.npz"),
                    "ours, 1 clip pass": _child(run_ours, n, shape, 1, work / "ours1.npz"),
                    f"ccdproc, mem_limit {args.mem_limit_mb:g} MB": _child(run_ccdproc, n, shape, args.mem_limit_mb,
                                                                         work / "ccdproc.npz")}
            ref = np.load(work / "ours2.npz")
            ok = ref["mask"] == 0
            for (label, (seconds, peak)), name in zip(runs.items(), ("ours2", "ours1", "ccdproc"), strict=True):
                got = np.load(work / f"{name}.npz")
                diff = np.abs(got["data"][ok] - ref["data"][ok])
                var_ratio = np.median(got["variance"][ok]) / np.median(ref["variance"][ok])
                print(f"{n:3d} {label:<26}{seconds:7.2f}{peak:9.0f}  median |d flat| {np.median(diff):.2e},"
                      f" max {diff.max():.2e}, variance ratio {var_ratio:.3f},"
                      f" masked pixels {int((got['mask'] > 0).sum())} (ours {int((~ok).sum())})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
