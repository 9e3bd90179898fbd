"""Zero point, PSF magnitudes and depth over many simulated seeds (issue 11, "What it must show").

Usage: python benchmarks/zp_seeds.py [--seeds 10] [--binning 4] [--n-science 3] [--workdir DIR]

Each seed is a GMOS-N night written by the simulator (its own scene, seeing and zero point
draws come from the seed) and reduced with the saved catalogs, as the README demo is. Per seed
it prints ZPTMAG - truth, ZPTMUCER and their ratio, the RMS of PSF magnitudes minus true
magnitudes for isolated S/N > 50 stars, and M5INJ - the truth-based limit; then the summary
against the goals: median |dZP| < 0.01 mag, |dZP| < 3 ZPTMUCER in >= 90% of seeds, PSF RMS
< 0.01 mag, |M5INJ - truth| < 0.1 mag.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from potpyri_core.simulate.truthcheck import TruthCheck, isolated_stars


def psf_magnitude_rms(check: TruthCheck, snr_min: float = 50.0) -> tuple[float, int]:
    """RMS (mag) of PSF-fitted minus true magnitudes of isolated, unflagged stars above ``snr_min``."""
    phot = Table(check.stack["PSFPHOT"][0])
    good = phot[(phot["snr"] > snr_min) & (phot["flags"] == 0) & (phot["flux"] > 0)]
    stars = isolated_stars(check.catalog)
    idx, sep, _ = SkyCoord(good["ra"], good["dec"], unit="deg").match_to_catalog_sky(
        SkyCoord(stars["ra"], stars["dec"], unit="deg"))
    ok = sep.arcsec < 0.3
    dmag = -2.5 * np.log10(np.asarray(good["flux"])[ok] / np.asarray(stars["flux_e_per_s"])[idx[ok]])
    return float(np.sqrt(np.mean(dmag**2))), int(ok.sum())


def reduce_seed(pm: PluginManager, root: Path, seed: int, binning: int, n_science: int) -> dict[str, float]:
    """Simulate and reduce one seed; return its figures."""
    settings = pm.instrument("GMOS-N")
    simulate_instrument_night(pm, settings, root, seed=seed, binning=binning, n_science=n_science, band="r")
    refcat = root / "refcat"
    pipeline = Pipeline(settings, root, RunOptions(proc=2, catalogs=(refcat / "gaia_dr3.ecsv", refcat / "ps1.ecsv")),
                        pm)
    summary = pipeline.run()
    if not summary.stacks:
        raise RuntimeError(f"seed {seed}: no stack\n{summary.table()}")
    readnoise = float(np.median([a.readnoise for a in settings.detector.amplifiers]))
    check = TruthCheck(root, summary.stacks[0], {}, readnoise)
    header = check.header
    psf_rms, n_psf = psf_magnitude_rms(check)
    m5 = check.m5_truth()
    return {"dzp": check.zero_point_error(), "zptmucer": float(header["ZPTMUCER"]), "psf_rms": psf_rms,
            "n_psf": n_psf, "dm5inj": float(header["M5INJ"]) - m5 if "M5INJ" in header else float("nan"),
            "dm5": float(header["M5SIGMA"]) - m5}


def main() -> None:
    """Reduce every seed and print the figures and the summary against the goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--binning", type=int, default=4)
    parser.add_argument("--n-science", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="zp_seeds_"))
    pm = PluginManager()
    rows = []
    print(f"{'seed':>4} {'ZP-truth':>9} {'ZPTMUCER':>9} {'|d|/err':>8} {'PSF rms':>8} {'n':>4} {'M5INJ-t':>8}"
          f" {'M5SIG-t':>8}")
    for seed in range(args.seeds):
        root = work / f"seed{seed}"
        shutil.rmtree(root, ignore_errors=True)
        r = reduce_seed(pm, root, seed, args.binning, args.n_science)
        rows.append(r)
        print(f"{seed:>4} {r['dzp']:>+9.4f} {r['zptmucer']:>9.4f} {abs(r['dzp']) / r['zptmucer']:>8.2f}"
              f" {r['psf_rms']:>8.4f} {r['n_psf']:>4d} {r['dm5inj']:>+8.3f} {r['dm5']:>+8.3f}", flush=True)
    dzp = np.array([r["dzp"] for r in rows])
    err = np.array([r["zptmucer"] for r in rows])
    psf = np.array([r["psf_rms"] for r in rows])
    dm5 = np.array([r["dm5inj"] for r in rows])
    honest = float(np.mean(np.abs(dzp) < 3 * err))
    print(f"median |ZP - truth| {np.median(np.abs(dzp)):.4f} mag (goal < 0.01)")
    print(f"|ZP - truth| < 3 ZPTMUCER in {100 * honest:.0f}% of seeds (goal >= 90%);"
          f" std of (ZP - truth)/ZPTMUCER {np.std(dzp / err):.2f}")
    print(f"PSF magnitude RMS (S/N > 50) median {np.median(psf):.4f}, worst {psf.max():.4f} mag (goal < 0.01)")
    print(f"M5INJ - truth median {np.nanmedian(dm5):+.3f}, worst {dm5[np.nanargmax(np.abs(dm5))]:+.3f} mag"
          " (goal |d| < 0.1)")
    print(f"nights in {work}")


if __name__ == "__main__":
    main()
