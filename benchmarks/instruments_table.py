"""Per installed instrument with a simulation format: simulate a small night, reduce it and
print frames, seconds, astrometric RMS, ZP error, M5 error and noise ratio from the truth.

    python benchmarks/instruments_table.py [--only MOSFIRE --only F2] [--size 1024]

NIR arrays are cut to ``--size`` px (their real raw layout otherwise); optical instruments are
simulated at their default binning. Bands and exposures: r 120 s (optical), the NIR nights of
``potpyri_core.simulate.nightcheck.NIR_NIGHTS``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.nightcheck import NIR_NIGHTS, reduce_small_night


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="instrument name (repeat)")
    parser.add_argument("--size", type=int, default=1024, help="side (px) NIR arrays are cut to")
    args = parser.parse_args()
    pm = PluginManager()
    names = sorted(e.settings.name for e in pm.instruments().values() if e.settings.simulation is not None)
    if args.only:
        names = [n for n in names if n.lower() in {o.lower() for o in args.only}]
    print(f"{'instrument':<10} {'frames':>6} {'seconds':>8} {'rms arcsec':>10} {'dZP':>7} {'ZPTMUCER':>8}"
          f" {'dM5':>6} {'noise/ERR':>9} {'sky/σ':>6} {'failures':>8}")
    for name in names:
        instrument = pm.instrument(name)
        band, exptime = NIR_NIGHTS.get(name, ("K", 30.0)) if instrument.band == "nir" else ("r", 120.0)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                f, _ = reduce_small_night(pm, name, Path(tmp), band, exptime, size=args.size)
            except (KeyError, IndexError, ValueError, RuntimeError) as exc:  # no stack or no zero point
                print(f"{name:<10} no figures: {type(exc).__name__}: {exc}", flush=True)
                continue
        print(f"{f.instrument:<10} {f.frames:>6} {f.seconds:>8.1f} {f.astrometric_rms:>10.3f}"
              f" {f.zero_point_error:>+7.3f} {f.zero_point_uncertainty:>8.3f} {f.m5_error:>+6.2f}"
              f" {f.noise_ratio:>9.3f} {f.empty_sky_residual:>+6.2f} {f.failures:>8}", flush=True)


if __name__ == "__main__":
    main()
