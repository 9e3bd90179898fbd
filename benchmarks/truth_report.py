"""Print how a reduced simulated night compares with the simulator's truth.

Usage: python benchmarks/truth_report.py NIGHT_DIR [--instrument GMOS-N]

NIGHT_DIR is a folder written by ``potpyri simulate`` and reduced by ``potpyri reduce``
(the README's demo folder ``demo`` is one). The figures are the ones the end-to-end tests
assert on (:mod:`potpyri_core.simulate.truthcheck`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.truthcheck import TruthCheck


def main() -> None:
    """Print every truth figure of the reduced night."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("night", type=Path)
    parser.add_argument("--instrument", default="GMOS-N")
    args = parser.parse_args()
    instrument = PluginManager().instrument(args.instrument)
    stacks = sorted((args.night / "red").glob("*.stk.fits"))
    if not stacks:
        raise SystemExit(f"{args.night}/red has no stack: reduce the night first")
    pipeline = Pipeline(instrument, args.night, RunOptions())
    check = TruthCheck(args.night, stacks[0], {}, float(np.median([a.readnoise for a in instrument.detector.amplifiers])))
    check.workspace = {f["file"]: pipeline.workspace_path(f["file"]) for f in check.science}
    print(f"{stacks[0].name}")
    for name, value in check.report().items():
        print(f"  {name}: {value}")


if __name__ == "__main__":
    main()
