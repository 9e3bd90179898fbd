"""One run per directory, no stale temporaries, no orphan workers, clear refusals, and no
stale numbers left beside new tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from astropy.io import fits

from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline, ProductsNotWritableError
from potpyri_core.plugins import PluginManager
from potpyri_core.runlock import DirectoryBusyError, RunLock, remove_stale_temporaries
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from tests.support.required import require_module

require_module("potpyri_gemini")


def test_second_run_on_a_directory_is_refused_naming_the_running_pid(tmp_path):
    red = tmp_path / "red"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from potpyri_core.runlock import RunLock
        with RunLock({str(red)!r}):
            print("locked", flush=True)
            time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DirectoryBusyError, match=rf"another reduction \(PID {holder.pid} on"):
            RunLock(red).acquire()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(red):  # the killed holder's lock is taken over
        assert json.loads((red / ".lock").read_text())["pid"] == os.getpid()
    assert not (red / ".lock").exists()


def test_temporaries_of_an_interrupted_run_are_removed(tmp_path):
    red = tmp_path / "red"
    (red / "workspace").mkdir(parents=True)
    partial = red / "workspace" / ".N1_red.fits.1234.tmp"
    partial.write_bytes(b"x" * 100)
    keep = red / "workspace" / "N1_red.fits"
    keep.write_bytes(b"good")
    assert remove_stale_temporaries(red) == [partial]
    assert keep.exists() and not partial.exists()


def test_read_only_data_directory_is_one_clear_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    pm = PluginManager()
    (tmp_path / "night").mkdir()
    (tmp_path / "night").chmod(0o555)
    with pytest.raises(ProductsNotWritableError, match="cannot write the products"):
        Pipeline(pm.instrument("GMOS-N"), tmp_path / "night", RunOptions(), pm).run()


def test_products_folder_that_is_a_file_is_one_clear_error(tmp_path):
    pm = PluginManager()
    (tmp_path / "red").write_text("not a folder")
    with pytest.raises(ProductsNotWritableError, match=r"red: cannot write the products"):
        Pipeline(pm.instrument("GMOS-N"), tmp_path, RunOptions(), pm).run()


def test_workers_exit_when_the_main_process_is_killed(tmp_path):
    pids = tmp_path / "pids"
    script = tmp_path / "main.py"  # a file: workers import the job from it
    script.write_text(textwrap.dedent(f"""
        import os, time
        from potpyri_core.workers import process_pool

        def work(_):
            open({str(pids)!r}, "a").write(f"{{os.getpid()}}\\n")
            time.sleep(60)

        if __name__ == "__main__":
            with process_pool(2) as pool:
                list(pool.map(work, range(2)))
    """))
    main = subprocess.Popen([sys.executable, str(script)])
    deadline = time.time() + 60
    while time.time() < deadline and (not pids.exists() or len(pids.read_text().split()) < 2):
        time.sleep(0.2)
    workers = [int(p) for p in pids.read_text().split()]
    main.send_signal(signal.SIGKILL)
    main.wait()
    deadline = time.time() + 15  # a loaded machine may take a while to schedule the watchers
    while time.time() < deadline and any(_running(pid) for pid in workers):
        time.sleep(0.2)
    alive = [pid for pid in workers if _running(pid)]
    assert not alive, f"workers {alive} outlived the killed main process"


def _running(pid: int) -> bool:
    """True for a live process (an exited one nobody has reaped yet, a zombie, is not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    pm = PluginManager()
    gmos = pm.instrument("GMOS-N")
    simulate_instrument_night(pm, gmos, root, seed=11, binning=4, n_science=2, compression="none")
    refcat = root / "refcat"
    options = RunOptions(proc=1, catalogs=(refcat / "gaia_dr3.ecsv", refcat / "ps1.ecsv"))
    summary = Pipeline(gmos, root, options, pm).run()
    assert not summary.failures, summary.table()
    return root, gmos, pm, summary


def test_failed_photometry_rerun_leaves_no_stale_zero_point(reduced, tmp_path):
    root, gmos, pm, summary = reduced
    stack = summary.stacks[0]
    assert fits.getheader(stack)["PHOTSTAT"] == "done" and "ZPTMAG" in fits.getheader(stack)
    empty = tmp_path / "no_stars.ecsv"
    empty.write_text("# %ECSV 1.0\n# ---\n# datatype:\n# - {name: ra, datatype: float64}\n"
                     "# - {name: dec, datatype: float64}\n# - {name: mag_r, datatype: float64}\n"
                     "# - {name: magerr_r, datatype: float64}\nra dec mag_r magerr_r\n")
    options = RunOptions(proc=1, stages=("photometry",), redo_sort=False, catalogs=(empty,))
    rerun = Pipeline(gmos, root, options, pm).run()
    assert rerun.failures
    header = fits.getheader(stack)
    assert "ZPTMAG" not in header and "M5SIGMA" not in header and header["PHOTSTAT"] != "done"


def test_masters_from_an_earlier_run_are_named_and_stale_ones_flagged(reduced):
    root, gmos, pm, _ = reduced
    options = RunOptions(proc=1, stages=("frames",), redo_sort=False, force=True)
    again = Pipeline(gmos, root, options, pm).run()
    messages = [r.message for r in again.results if r.stage == "frames"]
    assert messages and all("mbias_12_4x4.fits from an earlier run" in m and "STALE" not in m for m in messages)
    flat = min(root.glob("*0004.fits"))  # the first flat (bias 1-3, flats 4-6)
    hidden = flat.with_name(flat.name + ".moved")
    flat.rename(hidden)
    try:
        stale = Pipeline(gmos, root, options, pm).run()
        assert all("mflat_r_12_4x4.fits from an earlier run" in r.message and "STALE" in r.message
                   for r in stale.results if r.stage == "frames")
    finally:
        hidden.rename(flat)
