"""Scale-out: a dask cluster of separate processes and local worker processes reduce a night
to the same stack, bit for bit, as one process; each job runs with its OpenMP/BLAS threads
limited and its CPU counted; a worker that dies fails its frame and the other frames go on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from potpyri_core import dask_executor
from potpyri_core.cli import main
from potpyri_core.corestages import _timed
from potpyri_core.executors import JobRunner
from potpyri_core.jobrun import threads_per_job
from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from tests.support import jobs
from tests.support.required import require_module

require_module("potpyri_gemini")
require_module("distributed")

from tests.support.dask_cluster import local_cluster

STAGES = ("sort", "calibrations", "frames", "sky", "astrometry", "stack")
"""Every stage that makes the stack (photometry runs in the main process only)."""


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dask_night")
    pm = PluginManager()
    simulate_instrument_night(pm, pm.instrument("GMOS-N"), root, seed=5, binning=4, n_science=3)
    return root


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> str:
    # a job that kills its worker is not tried on another (the default tries three)
    env = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    with local_cluster(tmp_path_factory.mktemp("dask_cluster"), n_workers=2, env=env) as address:
        yield address


def _reduce(night: Path, folder: Path, **options) -> tuple[Path, object]:
    """Reduce a copy of the raw night in ``folder``; return its stack and the run summary."""
    folder.mkdir()
    for raw in night.glob("*.fits*"):
        (folder / raw.name).symlink_to(raw)
    refcat = night / "refcat"
    pm = PluginManager()
    opts = RunOptions(stages=STAGES, catalogs=(refcat / "gaia_dr3.ecsv", refcat / "ps1.ecsv"), **options)
    summary = Pipeline(pm.instrument("GMOS-N"), folder, opts, pm).run()
    assert not summary.failures, summary.table()
    [stack] = summary.stacks
    return stack, summary


@pytest.fixture(scope="module")
def serial(night, tmp_path_factory) -> tuple[Path, object]:
    return _reduce(night, tmp_path_factory.mktemp("serial") / "night", workers=1)


def _assert_identical(a: Path, b: Path) -> None:
    with fits.open(a) as ha, fits.open(b) as hb:
        names = [h.name for h in ha if isinstance(h, fits.ImageHDU | fits.PrimaryHDU) and h.data is not None]
        assert {"SCI", "ERROR", "MASK"} <= set(names)
        for name in names:
            assert ha[name].data.dtype == hb[name].data.dtype
            assert np.array_equal(ha[name].data, hb[name].data, equal_nan=True), name


def test_two_local_workers_give_the_serial_stack(night, serial, tmp_path):
    stack, summary = _reduce(night, tmp_path / "night", workers=2)
    _assert_identical(serial[0], stack)
    # the frames went to worker processes, whose CPU the summary counts
    assert summary.worker_cpu > 0.5
    assert summary.main_cpu + summary.worker_cpu <= summary.wall_seconds * summary.cores * 1.1


def test_dask_cluster_gives_the_serial_stack(night, serial, cluster, tmp_path):
    stack, summary = _reduce(night, tmp_path / "night", scheduler=cluster)
    _assert_identical(serial[0], stack)
    assert summary.cores == 2  # two single-thread workers
    assert summary.worker_cpu > 0.5
    assert "workers" in summary.table()


def test_jobs_on_the_cluster_run_with_one_thread(cluster):
    with JobRunner(1, scheduler=cluster) as runner:
        [outcome] = runner.map(jobs.thread_limits, [None], lambda i: None)
    assert outcome.error is None
    counts = outcome.value["counts"]
    assert any(api == "openmp" for api, _ in counts)
    assert set(counts.values()) == {1}


def test_local_jobs_limited_to_cores_per_worker_and_counted():
    assert threads_per_job(2, cores=2) == 1 and threads_per_job(2, cores=8) == 4 and threads_per_job(4, cores=2) == 1
    with JobRunner(2, threads=1) as runner:
        outcomes = runner.map(jobs.thread_limits, [None, None], lambda i: None)
    for outcome in outcomes:
        assert set(outcome.value["counts"].values()) == {1}
        assert outcome.value["OMP_NUM_THREADS"] == "1"
    # CPU of local workers is counted: two jobs that burn 0.5 s each, plus the workers' start-up
    with JobRunner(2, threads=1) as runner:
        outcomes = runner.map(jobs.burn, [0.5, 0.5], lambda i: None)
    assert all(o.value >= 0.5 for o in outcomes)
    assert 1.0 <= runner.worker_cpu <= 1.0 + 2 * 3.0


def test_dask_worker_death_fails_its_frame_only(night, cluster):
    pm = PluginManager()
    pipeline = Pipeline(pm.instrument("GMOS-N"), night, RunOptions(scheduler=cluster), pm)
    frames = [(None, Path(f"frame{i}.fits"), i == 1) for i in range(4)]
    with pipeline.runner:
        results = pipeline.map(_timed(jobs.exit_on), frames, "frames")
    by_name = {name: (ok, message) for name, ok, _, message in results}
    assert by_name["frame1.fits"][0] is False and "worker lost" in by_name["frame1.fits"][1]
    assert "KilledWorker" in by_name["frame1.fits"][1]
    for i in (0, 2, 3):
        assert by_name[f"frame{i}.fits"] == (True, f"frame{i}.fits done")


def test_unreachable_scheduler_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.setattr(dask_executor, "CONNECT_SECONDS", 2.0)
    result = CliRunner().invoke(main, ["reduce", "GMOS-N", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "error: cannot reach the dask scheduler at tcp://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output
