"""Reduce a simulated GMOS-N night with the online catalogs, served by a local fake VizieR.

The night (GMOS-N 2x2, seed 11, 3 bias, 3 flats, 3 science frames) is simulated once. A
:class:`~tests.support.fake_vizier.FakeVizier` on 127.0.0.1 serves the simulator's own
reference catalogs under their VizieR ids and column names (Gaia DR3 ``I/355/gaiadr3`` at
epoch 2016, PS1 ``II/349/ps1`` with Kron magnitudes), and ``POTPYRI_VIZIER_SERVER`` points
the catalog sources of the ``potpyri-catalogs`` plugin at it. The pipeline runs without
``--catalog``: the reference catalogs come through astroquery, the catalog sources and the
HEALPix-tiled cache in ``red/catalogs``, one query per catalog and band, and the results are
checked against the truth. A second run of astrometry + photometry must be answered from the
cache alone, and a neighbouring field asks only for the tiles it does not share. Copies of
the reduced night without their cache are re-run (astrometry, stack, photometry): against a
server that fails every request (the run finishes, names the catalog that failed, suggests
``--catalog`` and still stacks); with the network off after ``potpyri catalogs fetch`` filled
a site cache (the run needs no network); and with ``--catalog`` files, remembered for a
``--stages photometry`` re-run.
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
from click.testing import CliRunner

from potpyri_core.catalogs.cache import SITE_CACHE_ENV, TILE_ORDER, covering_tiles, reduction_cache
from potpyri_core.catalogs.columns import GAIA_DR3_EPOCH, at_epoch
from potpyri_core.cli import main
from potpyri_core.frames import Frame
from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline, RunSummary
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from tests.support.fake_vizier import ENDPOINT, SERVER_ENV, FakeVizier
from tests.support.required import require_module

require_module("potpyri_gemini")
pytest.importorskip("potpyri_catalogs")

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
    options = RunOptions(proc=2, stages=("astrometry", "photometry"), redo_sort=False, force=True)
    summary = Pipeline(night["gmos"], night["root"], options, night["pm"]).run()
    return {"summary": summary, "new_requests": server.requests[before:]}


def copy_calibrated_night(source: Path, root: Path) -> Path:
    """Raw files, file list and calibrated frames of a reduced night, without catalogs or stack."""
    for raw in source.glob("*.fits"):
        shutil.copy2(raw, root / raw.name)
    shutil.copy2(source / "file_list.txt", root / "file_list.txt")
    shutil.copytree(source / "red" / "workspace", root / "red" / "workspace")
    return root


LATER_STAGES = ("astrometry", "stack", "photometry")


@pytest.fixture(scope="module")
def offline(night, tmp_path_factory):
    """The reduced night copied without its catalog cache and stack; astrometry, stack and
    photometry again against a server that fails every request."""
    root = copy_calibrated_night(night["root"], tmp_path_factory.mktemp("gmos_offline"))
    with FakeVizier({}) as server, pytest.MonkeyPatch.context() as mp:
        server.fail_status = 500
        _proxy_free_env(mp, server)
        options = RunOptions(proc=2, stages=LATER_STAGES, redo_sort=False)
        summary = Pipeline(night["gmos"], root, options, night["pm"]).run()
        return {"root": root, "summary": summary, "requests": list(server.requests)}


@pytest.fixture(scope="module")
def prefetched(night, tmp_path_factory):
    """``potpyri catalogs fetch`` around the pointing into a site cache, then the server is
    stopped and a copy of the night is reduced (astrometry, stack, photometry) from the site
    cache, with the network off."""
    site = tmp_path_factory.mktemp("site_cache")
    header = fits.getheader(min((night["root"] / "red" / "workspace").glob("*_red.fits")))
    args = ["catalogs", "fetch", f"{header['PNTRA']:.5f}", f"{header['PNTDEC']:.5f}", "10",
            "--catalog", "gaia", "--catalog", "ps1", "--band", "r", "--cache-dir", str(site)]
    server = FakeVizier(night["tables"]).start()
    with pytest.MonkeyPatch.context() as mp:
        _proxy_free_env(mp, server)
        fetch = CliRunner().invoke(main, args)
        fetch_requests = list(server.requests)
        server.stop()  # the network is off from here on
        mp.setenv(SITE_CACHE_ENV, str(site))
        root = copy_calibrated_night(night["root"], tmp_path_factory.mktemp("gmos_prefetched"))
        options = RunOptions(proc=2, stages=LATER_STAGES, redo_sort=False)
        summary = Pipeline(night["gmos"], root, options, night["pm"]).run()
    return {"fetch": fetch, "fetch_requests": fetch_requests, "summary": summary, "root": root,
            "requests_after_stop": server.requests[len(fetch_requests):]}


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


def test_one_query_per_field_and_band(night):
    requests = night["first_requests"]
    assert night["server"].paths[: len(requests)] == [ENDPOINT] * len(requests)
    assert sorted(q["-source"] for q in requests) == [GAIA_ID, PS1_ID]  # gaia (astrometry), ps1 r
    for query in requests:
        assert query["-out.max"] == "unlimited"
        assert float(query["-c.rm"]) > 4.0  # the 5.6' x 8.4' field, its dithers, whole tiles
    gaia_query = next(q for q in requests if q["-source"] == GAIA_ID)
    assert set(gaia_query["-out"].split(",")) == {"RA_ICRS", "DE_ICRS", "pmRA", "pmDE", "Gmag", "e_Gmag"}
    ps1_query = next(q for q in requests if q["-source"] == PS1_ID)
    assert "rKmag" in ps1_query["-out"].split(",")


def test_catalog_cache_is_healpix_tiles(night):
    cache = night["root"] / "red" / "catalogs"
    gaia_tiles = sorted(cache.glob(f"gaia_all_*/hpx{TILE_ORDER}_*.ecsv"))
    ps1_tiles = sorted(cache.glob(f"ps1_r_*/hpx{TILE_ORDER}_*.ecsv"))
    assert len(gaia_tiles) == len(ps1_tiles) > 10, sorted(p.name for p in cache.iterdir())
    assert not list(cache.rglob("*.tmp"))
    tile = Table.read(ps1_tiles[0])
    assert tile.meta["source"] == "ps1" and tile.meta["band"] == "r"
    assert tile.meta["healpix_order"] == TILE_ORDER and ps1_tiles[0].stem == f"hpx{TILE_ORDER}_{tile.meta['healpix_pixel']}"
    np.testing.assert_allclose(Table.read(gaia_tiles[0])["ref_epoch"], GAIA_DR3_EPOCH)

    # the field's answer, from the tiles: exactly the served stars in the cone (the simulated
    # PS1 holds stars only, so the PSF - Kron cut keeps every one)
    before = night["server"].n_requests
    field = night["pipeline"].reference_catalog()
    ps1 = field.photometric("r")
    assert night["server"].n_requests == before
    served = night["tables"][PS1_ID]
    inside = field.center.separation(SkyCoord(served["RAJ2000"], served["DEJ2000"], unit="deg")).arcmin
    assert len(ps1) == int(np.sum(inside <= field.radius)) > 100
    assert ps1.meta["source"] == "ps1"


def test_neighbouring_field_asks_only_for_the_tiles_it_does_not_share(night):
    field = night["pipeline"].reference_catalog()
    sources = night["pm"].catalog_sources()
    server = night["server"]
    neighbour = SkyCoord(field.center.ra.deg + 4.0 / 60 / np.cos(field.center.dec.radian), field.center.dec.deg,
                         unit="deg")
    new_tiles = set(covering_tiles(neighbour, field.radius)) - set(covering_tiles(field.center, field.radius))
    before = server.n_requests
    report = reduction_cache(night["root"]).fill(sources["gaia"], neighbour, field.radius)
    assert server.n_requests == before + 1
    assert (report.fetched, report.cached) == (len(new_tiles), report.tiles - len(new_tiles))
    assert 0 < report.fetched < report.cached
    # the one query covers the new tiles only: a smaller cone than the field's first query
    first = next(q for q in night["first_requests"] if q["-source"] == GAIA_ID)
    assert float(server.requests[-1]["-c.rm"]) < float(first["-c.rm"])
    assert reduction_cache(night["root"]).fill(sources["gaia"], neighbour, field.radius).queries == 0


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
    assert not list((offline["root"] / "red" / "catalogs").rglob("*.ecsv"))  # failures are not cached


# ---------------------------------------------------------------------- catalogs fetch, then offline
def test_fetch_before_the_night_makes_one_query_per_catalog_and_band(prefetched):
    fetch = prefetched["fetch"]
    assert fetch.exit_code == 0, fetch.output
    assert sorted(q["-source"] for q in prefetched["fetch_requests"]) == [GAIA_ID, PS1_ID]
    lines = fetch.output.splitlines()
    assert lines[0].startswith("filling ") and lines[0].endswith("r=10'")
    assert lines[1].split()[:3] == ["gaia", "all", "bands"] and "fetched in 1 query" in lines[1]
    assert lines[2].split()[:2] == ["ps1", "r"] and "fetched in 1 query" in lines[2]


def test_reduction_with_the_network_off_uses_the_fetched_cache(prefetched, night):
    summary = prefetched["summary"]
    assert not summary.failures, summary.table()
    assert prefetched["requests_after_stop"] == []
    header = fits.getheader(summary.stacks[0], "SCI")
    assert header["ZPTCAT"] == "ps1"
    assert abs(header["ZPTMAG"] - night["truth"]["zeropoint"]) <= 0.03, header["ZPTMAG"]
    # the tiles the reduction used were copied into the night's own cache
    assert list((prefetched["root"] / "red" / "catalogs").glob(f"ps1_r_*/hpx{TILE_ORDER}_*.ecsv"))


# ---------------------------------------------------------------------- --catalog remembered
def test_catalogs_given_once_are_remembered_for_a_stages_rerun(offline, night):
    root = offline["root"]
    refcat = night["root"] / "refcat"
    given = (refcat / "gaia_dr3.ecsv", refcat / "ps1.ecsv")
    with FakeVizier({}) as server, pytest.MonkeyPatch.context() as mp:
        server.fail_status = 500
        _proxy_free_env(mp, server)
        first = Pipeline(night["gmos"], root, RunOptions(proc=2, stages=("photometry",), redo_sort=False,
                                                         catalogs=given), night["pm"]).run()
        assert (root / "red" / "catalogs" / "given.json").exists()
        again = Pipeline(night["gmos"], root, RunOptions(proc=2, stages=("photometry",), redo_sort=False),
                         night["pm"]).run()
        assert server.requests == []
    assert not first.failures and not again.failures, again.table()
    assert fits.getheader(offline["summary"].stacks[0], "SCI")["ZPTCAT"] == "ps1.ecsv"
