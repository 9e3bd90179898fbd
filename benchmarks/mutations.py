"""Mutation testing of the science steps: does the quick unit-test set catch each bug?

Each mutation below is a small, plausible science bug (a gain applied twice, a flat divided
twice, variances not propagated, mask bits added instead of OR'd, ...). The repository is
copied once to a scratch folder; every mutation is applied there alone (the source text
must occur exactly once), the quick tests (``tests/unit`` and
``tests/optical/test_geometry.py``) run against the copy, and the file is restored. The
working tree is never touched. A mutation is *caught* when the tests fail. Prints a table
and the catch rate; exits 1 if the unmutated copy fails or a mutation's text is not found
(the list has gone stale). A uniform shift of every CCD is not listed: ``placements()``
starts the mosaic at its first column, so it has no effect.

Usage (from the repository root, with the test dependencies and plugins installed)::

    python benchmarks/mutations.py               # all mutations, stop each run at the first failure
    python benchmarks/mutations.py --all-tests   # run every unit test for every mutation
    python benchmarks/mutations.py --only gain-twice --only flat-twice
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = ["tests/unit", "tests/optical/test_geometry.py"]
"""The quick tests: one module per science step, and the settings-vs-published-geometry test."""


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` (which must occur exactly once) by ``new`` in ``path``."""

    name: str
    path: str
    old: str
    new: str
    what: str


MUTATIONS: list[Mutation] = [
    Mutation("gain-twice", "potpyri_core/stages/rawformat.py", "n_coadds) * facts.gain\n",
             "n_coadds) * facts.gain * facts.gain\n", "gain applied twice in assemble"),
    Mutation("zp-exptime", "potpyri_core/defaults.py",
             "resample.resample(frame.data / exptime, frame.variance / exptime**2,",
             "resample.resample(frame.data, frame.variance,",
             "stack left in e- (ZP off by 2.5 log10(exptime))"),
    Mutation("flat-twice", "potpyri_core/stages/calibrate.py", "        data = data / flat.data\n",
             "        data = data / flat.data / flat.data\n", "flat divided twice"),
    Mutation("ccd-shift", "potpyri_core/stages/rawformat.py", "mx = round_half_up((min(x1, x2) - 1 + offset[0] - min_x) / bx)",
             "mx = round_half_up((min(x1, x2) - 1 + offset[0] - min_x) / bx) + 5 * amp.ccd",
             "each CCD shifted +5 px from the previous one in placements()"),
    Mutation("parity", "potpyri_core/stages/rawformat.py", "x1 > x2, y1 > y2, (data_y.stop, width)",
             "x1 < x2, y1 > y2, (data_y.stop, width)", "wrong x parity (flip) of every amplifier"),
    Mutation("exptime-keyword", "plugins/potpyri-keck/potpyri_keck/instruments/lris.toml",
             'exptime = ["ELAPTIME", "TTIME"]', 'exptime = ["FRAMENO", "TTIME"]',
             "wrong exposure-time keyword (LRIS)"),
    Mutation("variance-resample", "potpyri_core/stages/resample.py", "out_var += w * w * variance[yy, xx]",
             "out_var += w * variance[yy, xx]", "resampled variance with w instead of w^2"),
    Mutation("variance-flat", "potpyri_core/stages/calibrate.py",
             "variance = variance / flat.data**2 + data**2", "variance = variance + data**2",
             "variance not propagated through the flat"),
    Mutation("mask-add-calibrate", "potpyri_core/stages/calibrate.py", '        mask |= masters["bias"].mask',
             '        mask += masters["bias"].mask', "bias mask bits added instead of OR'd"),
    Mutation("mask-add-resample", "potpyri_core/stages/resample.py",
             "out_mask |= np.where(w > 1e-3, mask[yy, xx], 0)", "out_mask += np.where(w > 1e-3, mask[yy, xx], 0)",
             "resampled mask bits added instead of OR'd"),
    Mutation("no-overscan", "potpyri_core/stages/rawformat.py", "nir.linearise(pix - level, det.nonlinearity",
             "nir.linearise(pix - 0 * level, det.nonlinearity", "overscan level not subtracted"),
    Mutation("dark-unscaled", "potpyri_core/stages/calibrate.py", 'data -= masters["dark"].data * exptime',
             'data -= masters["dark"].data', "dark (e-/s) subtracted without the exposure time"),
    Mutation("dark-master-e", "potpyri_core/stages/calibrate.py",
             'cube /= np.array([f.meta["exptime"] for f in frames], dtype=np.float32)[:, None, None]',
             "cube /= np.float32(1.0)", "master dark left in e- (not e-/s)"),
    Mutation("flat-dead-threshold", "potpyri_core/stages/calibrate.py", "(mean < params.flat_dead_low * smooth)",
             "(mean < 0.1 * params.flat_dead_low * smooth)", "dead flat pixels judged against a 10x lower level"),
    Mutation("stack-unweighted", "potpyri_core/stages/stack.py",
             "w = np.asarray(weights, np.float32)[:, None, None] * usable",
             "w = np.ones(len(weights), np.float32)[:, None, None] * usable", "stack ignores the frame weights"),
    Mutation("stack-no-clip", "potpyri_core/stages/stack.py",
             "keep = usable & (np.abs(cube - med) <= sigma * np.sqrt(var + (snoise * med) ** 2 + 1e-12))",
             "keep = usable", "stack never clips"),
    Mutation("saturation-strict", "potpyri_core/stages/rawformat.py", "bits = np.where(pix >= sat_adu,",
             "bits = np.where(pix > sat_adu,", "pixels at the saturation level not flagged"),
    Mutation("no-halo", "potpyri_core/stages/rawformat.py", "    mask |= saturation_halo(mask)\n", "\n",
             "no NEIGHBOUR bits around saturated pixels"),
    Mutation("sky-sources-unmasked", "potpyri_core/stages/sky.py",
             "source_mask = source_pixels(data, mask, params) | mask", "source_mask = mask",
             "sky fitted without masking sources"),
    Mutation("no-sip", "potpyri_core/stages/astrometry.py", "sip_degree=degree or None)", "sip_degree=None)",
             "astrometric distortion never fitted"),
    Mutation("no-apcor", "potpyri_core/stages/photometry.py", "    total = flux * apcor\n", "    total = flux\n",
             "aperture correction not applied"),
    Mutation("cr-threshold", "potpyri_core/stages/mask.py", "sigclip=params.sigclip, sigfrac",
             "sigclip=2 * params.sigclip, sigfrac", "cosmic-ray threshold doubled"),
    Mutation("zp-no-clip", "potpyri_core/stages/photometry.py", "        keep = new\n",
             "        keep = np.ones(delta.size, bool)\n", "zero-point outliers never rejected"),
    Mutation("resample-half-pixel", "potpyri_core/stages/resample.py",
             "in_x, in_y = pixel_to_pixel(out_wcs, in_wcs, gx, gy)",
             "in_x, in_y = pixel_to_pixel(out_wcs, in_wcs, gx + 0.5, gy)", "resampling map off by half a pixel"),
]


def scratch_copy() -> Path:
    """Copy the repository (without .git, caches and build products) to a temporary folder,
    with ``../shared`` linked beside it as it is beside the repository."""
    target = Path(tempfile.mkdtemp(prefix="potpyri-mutations-")) / "repo"
    shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build",
                                                                 ".pytest_cache", ".ruff_cache"))
    if (REPO.parent / "shared").exists():
        (target.parent / "shared").symlink_to(REPO.parent / "shared")
    return target


def environment(copy: Path) -> dict[str, str]:
    """Environment that imports the core and every plugin from ``copy`` first."""
    paths = [str(copy)] + [str(p) for p in sorted((copy / "plugins").glob("potpyri-*")) if p.is_dir()]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("CI", None)  # a skip must not count as a catch: the baseline below shows none skip
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_tests(copy: Path, stop_first: bool) -> tuple[bool, list[str], float, str]:
    """Run the quick unit tests in ``copy``: (passed, failed test ids, seconds, last line)."""
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *TESTS]
    if stop_first:
        command.insert(4, "-x")
    start = time.perf_counter()
    done = subprocess.run(command, cwd=copy, env=environment(copy), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, flags=re.MULTILINE)
    lines = done.stdout.strip().splitlines()
    return done.returncode == 0, failed, seconds, lines[-1] if lines else done.stderr.strip()[-200:]


def check_imports(copy: Path) -> None:
    """Make sure the tests import the copy, not the installed working tree."""
    code = "import potpyri_core, potpyri_keck; print(potpyri_core.__file__); print(potpyri_keck.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=copy, env=environment(copy), capture_output=True,
                         text=True, check=True).stdout.split()
    if not all(Path(p).resolve().is_relative_to(copy.resolve()) for p in out):
        raise SystemExit(f"the copy's modules are not the ones imported: {out}")


def main(argv: list[str] | None = None) -> int:
    """Run the mutations and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all-tests", action="store_true", help="run every unit test (default: stop at the first failure)")
    parser.add_argument("--only", action="append", default=[], help="mutation name (repeat)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    copy = scratch_copy()
    try:
        check_imports(copy)
        for m in chosen:
            count = (copy / m.path).read_text().count(m.old)
            if count != 1:
                print(f"mutation {m.name}: its text occurs {count} times in {m.path} (list is stale)")
                return 1
        ok, failed, seconds, last = run_tests(copy, stop_first=False)
        print(f"baseline (no mutation): {'pass' if ok else 'FAIL'} in {seconds:.0f} s: {last}")
        if not ok or "skipped" in last:
            print("the unmutated tests must all run and pass:", failed)
            return 1
        rows = []
        for m in chosen:
            target = copy / m.path
            original = target.read_text()
            target.write_text(original.replace(m.old, m.new))
            try:
                ok, failed, seconds, last = run_tests(copy, stop_first=not args.all_tests)
            finally:
                target.write_text(original)
            rows.append((m, not ok, failed, seconds))
            print(f"  {m.name:22s} {'caught' if not ok else 'MISSED'} ({seconds:.0f} s)", flush=True)
        caught = sum(1 for r in rows if r[1])
        print()
        print("| mutation | what | caught | first failing test(s) | s |\n|---|---|---|---|---|")
        for m, was_caught, failed, seconds in rows:
            tests = ", ".join(f.split("::", 1)[-1] for f in failed[:3]) or "-"
            print(f"| `{m.name}` | {m.what} | {'yes' if was_caught else '**no**'} | {tests} | {seconds:.0f} |")
        print(f"\ncaught {caught} of {len(rows)} ({100 * caught / max(len(rows), 1):.0f}%)")
        return 0
    finally:
        if args.keep:
            print(f"scratch copy kept: {copy}")
        else:
            shutil.rmtree(copy.parent, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
