"""Benchmark: reduce a full-size GMOS-N 2x2 night (3 bias, 3 flats, 5 science frames).

Prints seconds per stage, total wall time and peak memory (this process and the worker
processes). POTPyRI 1.0.18 needs about 180 s and 1.6 GB for such a night on a 2-core machine.

Usage: python benchmarks/bench_reduce.py [--workers 2 | --scheduler tcp://HOST:PORT] [--n-science 5] [--binning 2]
[--keep DIR [--force]]

``--n-science`` and ``--binning`` show how the cost grows with the number of frames and the
image size (binning 4 has a quarter of the pixels of binning 2).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night


def main() -> None:
    """Simulate the night (not timed), reduce it (timed) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", "--proc", dest="workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--scheduler", default=None, help="dask scheduler address (instead of local workers)")
    parser.add_argument("--force", action="store_true", help="redo the products of a kept folder")
    parser.add_argument("--n-science", type=int, default=5, help="science frames in the night")
    parser.add_argument("--binning", type=int, default=2, help="on-chip binning (2: full-size 2x2 night)")
    parser.add_argument("--keep", type=Path, default=None, help="reduce in this folder and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="potpyri_bench_"))
    pm = PluginManager()
    gmos = pm.instrument("GMOS-N")
    start = time.perf_counter()
    if not (root / "truth" / "truth.json").exists():
        simulate_instrument_night(pm, gmos, root, seed=3, binning=args.binning, n_science=args.n_science)
    print(f"simulated night in {time.perf_counter() - start:.1f} s ({root})")
    refcat = root / "refcat"
    options = RunOptions(workers=args.workers, scheduler=args.scheduler, force=args.force,
                         catalogs=(refcat / "gaia_dr3.ecsv", refcat / "ps1.ecsv"))
    start = time.perf_counter()
    summary = Pipeline(gmos, root, options, pm).run()
    wall = time.perf_counter() - start
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{'stage':<14}{'seconds':>9}")
    for stage, seconds in summary.stage_seconds.items():
        print(f"{stage:<14}{seconds:9.1f}")
    print(f"{'total':<14}{wall:9.1f}")
    per_frame = (summary.stage_seconds.get("frames", 0) + summary.stage_seconds.get("astrometry", 0)) / args.n_science
    frame_cpu = [r.seconds for r in summary.results if r.stage in ("frames", "astrometry") and r.ok]
    where = args.scheduler or f"{args.workers} processes"
    print(f"{args.n_science} science frames at {args.binning}x{args.binning}, {where}: "
          f"{per_frame:.1f} s wall per frame in frames+astrometry, "
          f"{sum(frame_cpu) / args.n_science:.1f} s of worker time per frame")
    print(summary.cpu_line())
    print(f"peak memory: main process {self_mb:.0f} MB, largest worker {child_mb:.0f} MB")
    print(f"failures: {len(summary.failures)}")
    for result in summary.results:
        if result.stage in ("astrometry", "photometry"):
            print(f"  {result.stage} {result.item}: {result.message}")
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
