"""Print how a reduced simulated night compares with the simulator's truth.

Usage: python benchmarks/truth_report.py NIGHT_DIR [--instrument GMOS-N]

NIGHT_DIR is a folder written by ``potpyri simulate`` and reduced by ``potpyri reduce``
(the README's demo folder ``demo`` is one). Each line is a figure, its value, the limit the
end-to-end tests hold it to and PASS/FAIL (figures without a limit are marked ``info``);
the figures come from the same code as the tests (:mod:`potpyri_core.simulate.truthcheck`,
:mod:`potpyri_core.simulate.catalogcheck`). The exit code is 1 when a figure fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate import catalogcheck
from potpyri_core.simulate.truthcheck import TruthCheck

Line = tuple[str, str, str, bool | None]
"""(figure, value, limit, passed; None: no limit)."""


def _within(value: float, low: float, high: float) -> bool:
    return bool(low <= value <= high)


def figures(check: TruthCheck) -> Iterator[Line]:
    """Every figure of a reduced night with its limit."""
    h = check.header
    rms, n = check.astrometric_rms()
    floor = check.astrometric_snr_floor()
    yield ("astrometric RMS of isolated stack stars", f'{rms:.4f}" ({n} stars, S/N > {floor:.0f})', '<= 0.05"',
           rms <= 0.05)
    for ccd, (east, north, count) in check.chip_offsets().items():
        yield f"stack - true offset, CCD {ccd}", f'{east:+.4f}" E, {north:+.4f}" N ({count})', "", None
    zp = check.zero_point_error()
    yield "ZPTMAG - true zero point", f"{zp:+.4f} mag (ZPTMUCER {h['ZPTMUCER']:.4f})", "|d| <= 0.03", abs(zp) <= 0.03
    m5 = check.m5_truth()
    yield "truth-based 5-sigma limit", f"{m5:.3f}", "", None
    yield "M5SIGMA (analytic) - truth", f"{h['M5SIGMA'] - m5:+.3f} mag ({h['M5SIGMA']:.3f})", "|d| <= 0.3", \
        abs(h["M5SIGMA"] - m5) <= 0.3
    if "M5INJ" in h:
        yield "M5INJ (injection S/N 5) - truth", f"{h['M5INJ'] - m5:+.3f} mag ({h['M5INJ']:.3f})", "|d| <= 0.1", \
            abs(h["M5INJ"] - m5) <= 0.1
        yield "MC50INJ (50% completeness)", f"{h['MC50INJ']:.3f}", "", None
    purity, rows = catalogcheck.purity(check)
    yield "catalog purity (APPPHOT rows that are real)", f"{purity:.4f} of {rows}", ">= 0.98", purity >= 0.98
    completeness, stars = catalogcheck.completeness(check)
    yield "completeness to truth m5 - 0.3", f"{completeness:.4f} of {stars}", ">= 0.90", completeness >= 0.90
    for name, recall in check.cosmic_ray_recall().items():
        yield f"CR pixels flagged, {name}", f"{recall:.4f}", ">= 0.95", recall >= 0.95
    for name, (largest, _) in check.cosmic_ray_residuals().items():
        yield f"largest stack S/N at CR pixels, {name}", f"{largest:.2f}", "< 5", largest < 5
    for name, (masked, median, largest, _) in check.satellite().items():
        yield f"satellite masked, {name}", f"{masked:.4f}", ">= 0.95", masked >= 0.95
        yield f"stack S/N on the trail, {name}", f"median {median:+.3f}, max {largest:.2f}", "|median| < 0.3, max < 5", \
            abs(median) < 0.3 and largest < 5
    noise = check.error_over_noise()
    yield "measured sky noise / ERROR", f"{noise:.4f}", "0.9-1.1", _within(noise, 0.9, 1.1)
    tables: list[tuple[str, float]] = [("APPPHOT", 0.01)] + ([("PSFPHOT", 0.02)] if "PSFPHOT" in check.stack else [])
    for table, limit in tables:
        ratio, pull, n = check.flux_ratio(table)
        yield f"{table} flux / truth (S/N > 50)", f"{ratio:.4f} (median |d|/sigma {pull:.2f}, {n} stars)", \
            f"|r - 1| < {limit}, pull < 1.5", abs(ratio - 1) < limit and pull < 1.5


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    """Print every truth figure of the reduced night; return 1 if one fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("night", type=Path)
    parser.add_argument("--instrument", default="GMOS-N")
    args = parser.parse_args(argv)
    instrument = PluginManager().instrument(args.instrument)
    stacks = sorted((args.night / "red").glob("*.stk.fits"))
    if not stacks:
        out(f"{args.night}/red has no stack: reduce the night first")
        return 2
    pipeline = Pipeline(instrument, args.night, RunOptions())
    check = TruthCheck(args.night, stacks[0], {}, float(np.median([a.readnoise for a in instrument.detector.amplifiers])))
    check.workspace = {f["file"]: pipeline.workspace_path(f["file"]) for f in check.science}
    lines = list(figures(check))
    width = max(len(name) for name, *_ in lines)
    out(stacks[0].name)
    for name, value, limit, passed in lines:
        verdict = "info" if passed is None else ("PASS" if passed else "FAIL")
        out(f"  {verdict:<5}{name:<{width}}  {value}" + (f"   [limit {limit}]" if limit else ""))
    failed = [name for name, _, _, passed in lines if passed is False]
    out(f"{len(lines) - len(failed)} of {len(lines)} lines pass or are informative; "
        + (f"FAILED: {', '.join(failed)}" if failed else "all limits met"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
