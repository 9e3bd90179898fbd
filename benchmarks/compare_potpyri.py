"""Benchmark: this project against POTPyRI 1.0.18 on the same simulated GMOS-N night.

Simulates a GMOS-N night in the archive's compression (``.fits.bz2``), builds the
astrometry.net index files for the field from the night's Gaia file (``potpyri index
build``), then reduces the night twice, one after the other: with this project, and with
POTPyRI from its own venv (``benchmarks/potpyri_driver.py``: its catalog queries answered
from the same local catalog files, its solve-field given the index). Prints wall seconds per
stage, CPU seconds, peak memory of both and the ratios.

Setup, once: ``python -m venv /work/venv-potpyri && /work/venv-potpyri/bin/pip install
potpyri==1.0.18``; astrometry.net (``solve-field``) and Source Extractor on the system
(Debian names the binary ``source-extractor``: a ``sex`` link to it is made in that venv's
``bin``, the name POTPyRI calls).

Usage::

    python benchmarks/compare_potpyri.py [--potpyri-python /work/venv-potpyri/bin/python]
        [--binning 2] [--n-science 5] [--proc 2] [--keep DIR]

Each reduction runs in its own process; its CPU is that of the process tree (the larger of
``wait4``'s figure and the sum over every process of the tree sampled every 0.2 s: ``wait4``
misses the forkserver's workers, which nobody reaps), "peak" is the largest single process
(``ru_maxrss``) and "tree peak" the largest sum of resident memory over the process tree (it
counts pages shared between processes once per process).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
ROWS = (  # (row, this project's stages, POTPyRI's steps)
    ("sort", ("sort",), ("sort",)),
    ("calibrations", ("calibrations",), ("calibrations",)),
    ("frames+sky+stack", ("frames", "sky", "stack"), ("frames+stack",)),
    ("astrometry", ("astrometry",), ("astrometry",)),
    ("photometry+ZP", ("photometry",), ("photometry", "zeropoint")),
)
STAGES = ("sort", "calibrations", "frames", "sky", "astrometry", "stack", "photometry")
"""This project's stages that POTPyRI also does (not the QA pages)."""


def _tree_sample(root: int) -> tuple[float, dict[int, float]]:
    """Summed resident memory (MB) of ``root`` and its descendants, and each one's CPU seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            parents[int(entry)] = int(fields[1])
            cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
            rss[int(entry)] = int(fields[21])
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid and c not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(pid, 0) for pid in tree) * PAGE_MB, {pid: cpu[pid] for pid in tree if pid in cpu}


def run_measured(command: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> dict:
    """Run ``command``; return its ``TIMINGS`` JSON line plus wall, CPU and memory measured here."""
    start = time.perf_counter()
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=out, env=env, text=True)
    peak = [0.0]
    cpu_seen: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            rss, cpu = _tree_sample(proc.pid)
            peak[0] = max(peak[0], rss)
            cpu_seen.update(cpu)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if log:
            out.write(line)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    if log:
        out.close()
    timings = next((json.loads(line[len("TIMINGS "):]) for line in lines if line.startswith("TIMINGS ")), None)
    if proc.returncode != 0 or timings is None:
        tail = "".join(lines[-20:])
        raise RuntimeError(f"{command[0]} {command[1]} failed (exit {proc.returncode}); see {log}\n{tail}")
    # wait4 misses processes nobody reaps (forkserver workers): the sampled tree CPU sees them
    # (all but each one's last 0.2 s)
    cpu = max(usage.ru_utime + usage.ru_stime, sum(cpu_seen.values()))
    timings.update(outer_wall=time.perf_counter() - start, outer_cpu=cpu, largest_mb=usage.ru_maxrss / 1024,
                   tree_peak_mb=peak[0])
    return timings


def reduce_ours(root: Path, proc: int) -> None:
    """Reduce the night with this project (``--force``: a kept folder is reduced again in
    full, not found up to date) and print its ``TIMINGS`` line (child process)."""
    import resource

    from potpyri_core.options import RunOptions
    from potpyri_core.pipeline import Pipeline
    from potpyri_core.plugins import PluginManager

    pm = PluginManager()
    catalogs = (root / "refcat" / "gaia_dr3.ecsv", root / "refcat" / "ps1.ecsv")
    start = time.perf_counter()
    summary = Pipeline(pm.instrument("GMOS-N"), root, RunOptions(proc=proc, catalogs=catalogs, stages=STAGES, force=True),
                       pm).run()
    wall = time.perf_counter() - start
    for failure in summary.failures:
        print(f"failure: {failure.stage} {failure.item}: {failure.message}", file=sys.stderr)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("TIMINGS " + json.dumps({"stages": summary.stage_seconds, "wall": wall, "failures": len(summary.failures),
                                   "peak_mb": usage.ru_maxrss / 1024}), flush=True)


def prepare(root: Path, binning: int, n_science: int) -> tuple[Path, Path, Path]:
    """Simulate the night (ours/), copy its raw files for POTPyRI (potpyri/), build the index."""
    import json as _json

    from potpyri_core.plugins import PluginManager
    from potpyri_core.simulate.instrument_night import simulate_instrument_night

    ours, theirs, index = root / "ours", root / "potpyri", root / "index"
    if not (ours / "truth" / "truth.json").exists():
        pm = PluginManager()
        simulate_instrument_night(pm, pm.instrument("GMOS-N"), ours, seed=7, binning=binning, n_science=n_science)
    theirs.mkdir(parents=True, exist_ok=True)
    for raw in sorted(ours.glob("*.fits*")):  # POTPyRI moves them into raw/ when it sorts
        if not (theirs / raw.name).exists() and not (theirs / "raw" / raw.name).exists():
            shutil.copy2(raw, theirs / raw.name)
    config = _json.loads((ours / "truth" / "truth.json").read_text())["config"]
    if not list(index.glob("*.fits")):
        side = max(config["shape"]) * config["pixel_scale"] / 60
        potpyri = Path(sys.executable).with_name("potpyri")
        subprocess.run([str(potpyri), "index", "build", str(config["ra"]), str(config["dec"]), f"{side:.2f}",
                        "--catalog", str(ours / "refcat" / "gaia_dr3.ecsv"), "--out", str(index),
                        "--field-arcmin", f"{side:.2f}", "--epoch", str(config["epoch"])],
                       check=True, stdout=subprocess.DEVNULL)
    return ours, theirs, index


SOLVE_FIELD_SHIM = """#!/bin/bash
# made by benchmarks/compare_potpyri.py: POTPyRI passes --index-dir, which Debian's solve-field
# (0.93) does not have; the same folder is given as a config file's add_path instead
out=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--index-dir" ]; then
    cfg=$(mktemp --suffix=.cfg); printf 'add_path %s\\nautoindex\\n' "$2" > "$cfg"; out+=(--config "$cfg"); shift 2
  else out+=("$1"); shift; fi
done
exec {solve_field} "${{out[@]}}"
"""


def potpyri_env(python: Path) -> dict[str, str]:
    """Environment for the POTPyRI run: its venv's ``bin`` first, with a ``sex`` there and,
    when the system's solve-field has no ``--index-dir``, a ``solve-field`` shim."""
    bindir = python.parent
    if shutil.which("sex") is None and not (bindir / "sex").exists():
        found = shutil.which("source-extractor")
        if found is None:
            raise RuntimeError("Source Extractor is not installed (apt-get install source-extractor)")
        (bindir / "sex").symlink_to(found)
    solve_field = shutil.which("solve-field")
    if solve_field is None:
        raise RuntimeError("astrometry.net is not installed (apt-get install astrometry.net)")
    shim = bindir / "solve-field"
    if Path(solve_field) != shim and not shim.exists():
        usage = subprocess.run([solve_field, "--help"], check=False, capture_output=True, text=True).stdout
        if "--index-dir" not in usage:
            shim.write_text(SOLVE_FIELD_SHIM.format(solve_field=solve_field))
            shim.chmod(0o755)
    return {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}


def report(ours: dict, theirs: dict) -> None:
    """Print the side-by-side table."""
    print(f"{'stage':<18}{'this project':>13}{'POTPyRI':>10}{'ratio':>8}")
    for row, our_stages, their_steps in ROWS:
        a = sum(ours["stages"].get(s, 0.0) for s in our_stages)
        b = sum(theirs["stages"].get(s, 0.0) for s in their_steps)
        print(f"{row:<18}{a:13.1f}{b:10.1f}{b / a if a else float('nan'):8.2f}")
    for label, key in (("wall (s)", "outer_wall"), ("CPU (s)", "outer_cpu"), ("peak, one process (MB)", "largest_mb"),
                       ("peak, process tree (MB)", "tree_peak_mb")):
        a, b = ours[key], theirs[key]
        print(f"{label:<24}{a:7.1f}{b:10.1f}{b / a if a else float('nan'):8.2f}")
    print(f"POTPyRI / this project wall: {theirs['outer_wall'] / ours['outer_wall']:.2f}x"
          f" (this project's failures: {ours.get('failures', 0)})")


def main() -> None:
    """Prepare the night, reduce it with both, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--potpyri-python", type=Path, default=Path("/work/venv-potpyri/bin/python"))
    parser.add_argument("--binning", type=int, default=2)
    parser.add_argument("--n-science", type=int, default=5)
    parser.add_argument("--proc", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    parser.add_argument("--reduce-ours", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reduce_ours is not None:
        reduce_ours(args.reduce_ours, args.proc)
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="potpyri_compare_"))
    try:
        ours_dir, theirs_dir, index = prepare(root, args.binning, args.n_science)
        print(f"night: {ours_dir} ({len(list(ours_dir.glob('*.fits*')))} raw files), index: {index}", flush=True)
        ours = run_measured([sys.executable, __file__, "--reduce-ours", str(ours_dir), "--proc", str(args.proc)],
                            log=root / "ours.log")
        print(f"this project: {ours['outer_wall']:.1f} s", flush=True)
        driver = Path(__file__).with_name("potpyri_driver.py")
        theirs = run_measured([str(args.potpyri_python), str(driver), str(theirs_dir),
                               str(ours_dir / "refcat" / "gaia_dr3.ecsv"), str(ours_dir / "refcat" / "ps1.ecsv"),
                               str(index)], env=potpyri_env(args.potpyri_python), log=root / "potpyri.log")
        print(f"POTPyRI: {theirs['outer_wall']:.1f} s", flush=True)
        report(ours, theirs)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
