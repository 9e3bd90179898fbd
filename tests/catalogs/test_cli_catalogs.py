"""``potpyri catalogs list`` and ``potpyri catalogs fetch`` against the local VizieR stand-in."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table
from click.testing import CliRunner

from potpyri_core.catalogs.cache import SITE_CACHE_ENV, CatalogCache
from potpyri_core.cli import main

pytest.importorskip("potpyri_catalogs")
from potpyri_catalogs.sources import gaia, ps1

RA0, DEC0 = 150.0, 2.0


def vizier_tables(n: int = 3000, seed: int = 5) -> dict[str, Table]:
    """Gaia DR3 and PS1 rows (VizieR names) scattered over half a degree around (RA0, DEC0)."""
    rng = np.random.default_rng(seed)
    ra = RA0 + rng.uniform(-0.25, 0.25, n)
    dec = DEC0 + rng.uniform(-0.25, 0.25, n)
    mag = rng.uniform(14.0, 21.0, n)
    gaia_t = Table({"RA_ICRS": ra, "DE_ICRS": dec, "pmRA": np.zeros(n), "pmDE": np.zeros(n), "Gmag": mag,
                    "e_Gmag": np.full(n, 0.003)})
    ps1_t = Table({"RAJ2000": ra, "DEJ2000": dec})
    for b in "grizy":
        ps1_t[f"{b}mag"] = mag
        ps1_t[f"e_{b}mag"] = np.full(n, 0.01)
        ps1_t[f"{b}Kmag"] = mag - 0.02
    return {"I/355/gaiadr3": gaia_t, "II/349/ps1": ps1_t}


def test_list_shows_the_sources_readably(monkeypatch, tmp_path):
    monkeypatch.setenv(SITE_CACHE_ENV, str(tmp_path / "site"))
    result = CliRunner().invoke(main, ["catalogs", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["source", "bands", "description"]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert {"gaia", "ps1", "sdss", "skymapper", "twomass"} <= set(rows)
    assert rows["ps1"].split()[1:6] == list("grizy")
    assert "VizieR II/349/ps1" in rows["ps1"]
    assert lines[-1] == f"site cache (${SITE_CACHE_ENV}): {tmp_path / 'site'}"
    assert "<" not in result.output and "object at" not in result.output


def test_fetch_fills_the_cache_with_one_query_per_catalog_and_band(fake_vizier_server, tmp_path):
    server = fake_vizier_server(vizier_tables())
    site = tmp_path / "site"
    args = ["catalogs", "fetch", str(RA0), str(DEC0), "8", "--catalog", "gaia", "--catalog", "ps1",
            "--band", "r", "--band", "g", "--cache-dir", str(site)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert sorted((q["-source"], q.get("rmag", q.get("gmag", ""))) for q in server.requests) == sorted(
        [("I/355/gaiadr3", ""), ("II/349/ps1", ""), ("II/349/ps1", "")])
    lines = result.output.splitlines()
    assert lines[0] == f"filling {site} for RA=150.00000 Dec=+2.00000 r=8'"
    assert lines[1].startswith("gaia all bands") and "0 cached" in lines[1] and "fetched in 1 query" in lines[1]
    assert [line.split()[:2] for line in lines[2:]] == [["ps1", "g"], ["ps1", "r"]]

    # the filled cache answers the pipeline's cone with the network off
    server.stop()
    center = SkyCoord(RA0 + 0.01, DEC0, unit="deg")
    table = CatalogCache(tmp_path / "night", site).query(gaia, center, 6.0)
    assert len(table) > 100
    assert CatalogCache(tmp_path / "night", site).fill(ps1, center, 6.0, "r").queries == 0

    again = CliRunner().invoke(main, args)  # nothing to fetch: the stopped server is never asked
    assert again.exit_code == 0, again.output
    assert all("fetched in 0 queries" in line for line in again.output.splitlines()[1:])


def test_fetch_reports_failures_and_bad_arguments(fake_vizier_server, tmp_path, monkeypatch):
    server = fake_vizier_server({})
    server.fail_status = 503
    runner = CliRunner()
    result = runner.invoke(main, ["catalogs", "fetch", "10", "-20", "3", "--catalog", "gaia",
                                  "--cache-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "gaia query for RA=" in result.output and "503" in result.output
    assert "1 catalog(s) not fetched" in result.output

    result = runner.invoke(main, ["catalogs", "fetch", "10", "-20", "3", "--catalog", "gaai",
                                  "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2 and "unknown catalog gaai; installed: gaia, ps1" in result.output

    monkeypatch.delenv(SITE_CACHE_ENV, raising=False)
    result = runner.invoke(main, ["catalogs", "fetch", "10", "-20", "3"])
    assert result.exit_code == 2 and f"pass --cache-dir DIR or set {SITE_CACHE_ENV}" in result.output
