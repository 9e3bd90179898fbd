"""Reduce a simulated GMOS-N night with the online catalogs, served by a local fake VizieR.

The night (GMOS-N 2x2, seed 11, 3 bias, 3 flats, 3 science frames) is simulated once. A
:class:`~tests.support.fake_vizier.FakeVizier` on 127.0.0.1 serves the simulator's own
reference catalogs under their VizieR ids and column names (Gaia DR3 ``I/355/gaiadr3`` at
epoch 2016, PS1 ``II/349/ps1`` with Kron magnitudes), and ``POTPYRI_VIZIER_SERVER`` points
the catalog sources at it. The pipeline runs without ``--catalog``: the reference catalogs
come through astroquery, the catalog sources and the cache in ``red/catalogs``, and the
results are checked against the truth. A second run of astrometry + photometry must be
answered from the cache alone; a copy of the reduced night without its cache, re-run
(astrometry, stack, photometry) against a server that fails every request, must finish,
name the catalog that failed, suggest ``--catalog`` and still stack.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from potpyri_core.catalogs.columns import GAIA_DR3_EPOCH, at_epoch
from potpyri_core.frames import Frame
from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline, RunSummary
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from tests.support.fake_vizier import ENDPOINT, SERVER_ENV, FakeVizier

pytest.importorskip("potpyri_gemini")

GAIA_ID = "I/355/gaiadr3"
PS1_ID = "II/349/ps1"
SEED = 11
N_SCIENCE = 3


def gaia_vizier_table(path: Path) -> Table:
    """The simulator's Gaia-archive file with the VizieR I/355/gaiadr3 names, positions at 2016.0."""
    archive = Table.read(path)
    ra, dec = at_epoch(archive, GAIA_DR3_EPOCH)  # a no-op unless the simulator's epoch changes
    g = np.asarray(archive["phot_g_mean_mag"], float)
    table = Table()
    table["Source"] = np.asarray(archive["source_id"], np.int64)
    table["RA_ICRS"] = ra
    table["DE_ICRS"] = dec
    table["pmRA"] = np.asarray(archive["pmra"], float)
    table["pmDE"] = np.asarray(archive["pmdec"], float)
    table["Gmag"] = g
    table["e_Gmag"] = np.hypot(0.0003, 0.01 * 10.0 ** (0.4 * (g - 20.0)))  # ~DR3: 0.3 mmag bright, 0.01 at G=20
    for col, unit in (("RA_ICRS", "deg"), ("DE_ICRS", "deg"), ("pmRA", "mas / yr"), ("pmDE", "mas / yr"),
                      ("Gmag", "mag"), ("e_Gmag", "mag")):
        table[col].unit = unit
    return table


def _proxy_free_env(monkeypatch: pytest.MonkeyPatch, server: FakeVizier) -> None:
    monkeypatch.setenv(SERVER_ENV, server.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def _stack_header(summary: RunSummary) -> fits.Header:
    assert len(summary.stacks) == 1, summary.table()
    return fits.getheader(summary.stacks[0], "SCI").copy()


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Simulate the night, serve its catalogs, reduce it online once."""
    root = tmp_path_factory.mktemp("gmos_online")
    pm = PluginManager()
    gmos = pm.instrument("GMOS-N")
    simulate_instrument_night(pm, gmos, root, seed=SEED, binning=2, n_science=N_SCIENCE)
    refcat = root / "refcat"
    tables = {GAIA_ID: gaia_vizier_table(refcat / "gaia_dr3.ecsv"), PS1_ID: Table.read(refcat / "ps1.ecsv")}
    with FakeVizier(tables) as server, pytest.MonkeyPatch.context() as mp:
        _proxy_free_env(mp, server)
        pipeline = Pipeline(gmos, root, RunOptions(proc=2), pm)
        summary = pipeline.run()
        first_requests = [dict(q) for q in server.requests]
        stack_header = _stack_header(summary)  # the re-run rewrites the stack's photometry
        yield {
            "root": root, "pm": pm, "gmos": gmos, "pipeline": pipeline, "summary": summary, "server": server,
            "tables": tables, "first_requests": first_requests, "stack_header": stack_header,
            "truth": json.loads((root / "truth" / "truth.json").read_text()),
        }


@pytest.fixture(scope="module")
def rerun(night):
    """Astrometry + photometry again, with the cache of the first run in place."""
    server = night["server"]
    before = server.n_requests
    options = RunOptions(proc=2, stages=("astrometry", "photometry"), redo_sort=False)
    summary = Pipeline(night["gmos"], night["root"], options, night["pm"]).run()
    return {"summary": summary, "new_requests": server.requests[before:]}


@pytest.fixture(scope="module")
def offline(night, tmp_path_factory):
    """The reduced night copied without its catalog cache and stack; astrometry, stack and
    photometry again against a server that fails every request."""
    root = tmp_path_factory.mktemp("gmos_offline")
    source = night["root"]
    for raw in source.glob("*.fits"):
        shutil.copy2(raw, root / raw.name)
    shutil.copy2(source / "file_list.txt", root / "file_list.txt")
    shutil.copytree(source / "red" / "workspace", root / "red" / "workspace")
    with FakeVizier({}) as server, pytest.MonkeyPatch.context() as mp:
        server.fail_status = 500
        _proxy_free_env(mp, server)
        options = RunOptions(proc=2, stages=("astrometry", "stack", "photometry"), redo_sort=False)
        summary = Pipeline(night["gmos"], root, options, night["pm"]).run()
        return {"root": root, "summary": summary, "requests": list(server.requests)}


def _science(truth):
    return [f for f in truth["frames"] if f["kind"] == "science"]


# ---------------------------------------------------------------------- first run
def test_reduction_with_online_catalogs_matches_truth(night):
    summary = night["summary"]
    assert not summary.failures, summary.table()
    header = night["stack_header"]
    assert header["ZPTCAT"] == "ps1"
    assert abs(header["ZPTMAG"] - night["truth"]["zeropoint"]) <= 0.03, header["ZPTMAG"]
    assert header["ZPTNSTAR"] >= 20
    frames = sorted((night["root"] / "red" / "workspace").glob("*_red.fits"))
    assert len(frames) == N_SCIENCE
    for path in frames:
        h = fits.getheader(path)
        assert h["RADISP"] < 0.05 and h["DEDISP"] < 0.05, (path.name, h["RADISP"], h["DEDISP"])
        assert h["ASTNMAT"] >= 50


def test_solved_wcs_agrees_with_true_wcs(night):
    frame = _science(night["truth"])[0]
    solved = Frame.from_file(night["pipeline"].workspace_path(frame["file"]))
    true_wcs = WCS(fits.Header.fromstring(frame["true_wcs_header"], sep="\n"))
    ny, nx = solved.data.shape
    x, y = np.meshgrid(np.linspace(0, nx - 1, 16), np.linspace(0, ny - 1, 12))
    sep = solved.wcs.pixel_to_world(x.ravel(), y.ravel()).separation(true_wcs.pixel_to_world(x.ravel(), y.ravel()))
    assert sep.arcsec.max() < 0.05, f"solved vs true WCS: max {sep.arcsec.max():.4f}\""


def test_queries_reach_the_server_once_per_catalog(night):
    requests = night["first_requests"]
    assert night["server"].paths[: len(requests)] == [ENDPOINT] * len(requests)
    assert sorted(q["-source"] for q in requests) == [GAIA_ID, PS1_ID]
    for query in requests:
        assert query["-out.max"] == "unlimited"
        assert float(query["-c.rm"]) > 4.0  # the 5.6' x 8.4' field and its dithers
    gaia_query = next(q for q in requests if q["-source"] == GAIA_ID)
    assert set(gaia_query["-out"].split(",")) == {"RA_ICRS", "DE_ICRS", "pmRA", "pmDE", "Gmag", "e_Gmag"}
    ps1_query = next(q for q in requests if q["-source"] == PS1_ID)
    assert "rKmag" in ps1_query["-out"].split(",")


def test_catalog_cache_files(night):
    cache = night["root"] / "red" / "catalogs"
    gaia_files = sorted(cache.glob("gaia_all_*.ecsv"))
    ps1_files = sorted(cache.glob("ps1_r_*.ecsv"))
    assert gaia_files and ps1_files, sorted(p.name for p in cache.iterdir())
    assert not list(cache.glob("*.tmp"))
    ps1 = Table.read(ps1_files[0])
    assert ps1.meta["source"] == "ps1"
    # the simulated PS1 holds stars only: the PSF - Kron cut keeps every one in the cone
    served = night["tables"][PS1_ID]
    center = SkyCoord(ps1.meta["ra_center"], ps1.meta["dec_center"], unit="deg")
    inside = center.separation(SkyCoord(served["RAJ2000"], served["DEJ2000"], unit="deg")).arcmin
    assert len(ps1) == int(np.sum(inside <= ps1.meta["radius_arcmin"])) > 100
    gaia = Table.read(gaia_files[0])
    np.testing.assert_allclose(gaia["ref_epoch"], GAIA_DR3_EPOCH)


# ---------------------------------------------------------------------- second run
def test_rerun_gives_the_same_zero_point(night, rerun):
    assert not rerun["summary"].failures, rerun["summary"].table()
    first, second = night["stack_header"], fits.getheader(night["summary"].stacks[0], "SCI")
    assert second["ZPTCAT"] == "ps1"
    assert second["ZPTMAG"] == pytest.approx(first["ZPTMAG"], abs=1e-6)


def test_rerun_is_answered_from_the_cache(rerun):
    assert [q["-source"] for q in rerun["new_requests"]] == []


# ---------------------------------------------------------------------- server errors
def test_failing_server_does_not_stop_the_run(offline):
    summary = offline["summary"]
    assert offline["requests"], "the sources never asked the server"
    astrometry = [r for r in summary.failures if r.stage == "astrometry"]
    assert len(astrometry) == 1, summary.table()
    message = astrometry[0].message
    assert message.startswith("gaia query for RA="), message
    assert "500" in message and "--catalog" in message
    assert not [r for r in summary.failures if r.stage in ("sort", "stack")], summary.table()
    assert len(summary.stacks) == 1 and summary.stacks[0].exists()
    assert summary.stacks[0].parent == offline["root"] / "red"
    photometry = [r for r in summary.failures if r.stage == "photometry"]
    assert len(photometry) == 1 and "ps1 query" in photometry[0].message and "--catalog" in photometry[0].message
    assert not list((offline["root"] / "red" / "catalogs").glob("*.ecsv"))  # failures are not cached
