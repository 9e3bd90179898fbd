"""The HEALPix-tiled catalog cache, with an in-process catalog source that counts its queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table

from potpyri_core.catalogs.cache import (
    SITE_CACHE_ENV,
    TILE_ORDER,
    CatalogCache,
    CatalogUnavailableError,
    circumscribing_cone,
    covering_tiles,
    reduction_cache,
)


class CountingSource:
    """A catalog source answering cones from a fixed star list, counting its queries."""

    def __init__(self, stars: Table, name: str = "stars", band_dependent: bool = False) -> None:
        self.stars = stars
        self.name = name
        self.bands = ["g", "r"]
        self.band_dependent = band_dependent
        self.calls: list[tuple[SkyCoord, float, str | None]] = []
        self.fail = False

    def query(self, center: SkyCoord, radius_arcmin: float, band: str | None = None) -> Table:
        self.calls.append((center, radius_arcmin, band))
        if self.fail:
            raise ConnectionError("network is down")
        return self.stars[inside(self.stars, center, radius_arcmin)]


def inside(stars: Table, center: SkyCoord, radius_arcmin: float) -> np.ndarray:
    return center.separation(SkyCoord(stars["ra"], stars["dec"], unit="deg")).arcmin <= radius_arcmin


def star_field(ra: float, dec: float, half_size_deg: float = 0.5, n: int = 20000, seed: int = 3) -> Table:
    """Random stars (canonical columns) in a box around (ra, dec), dense enough that many
    lie near tile edges."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(max(dec - half_size_deg, -90.0), min(dec + half_size_deg, 90.0), n)
    r = (ra + rng.uniform(-half_size_deg, half_size_deg, n) / max(np.cos(np.radians(dec)), 0.01)) % 360.0
    return Table({"ra": r, "dec": d, "mag_r": rng.uniform(14.0, 22.0, n), "id": np.arange(n)})


CENTER = SkyCoord(150.0, 2.0, unit="deg")
RADIUS = 7.0


@pytest.fixture
def source() -> CountingSource:
    return CountingSource(star_field(150.0, 2.0))


def tile_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob(f"hpx{TILE_ORDER}_*.ecsv"))


def test_one_query_fills_every_covering_tile_and_a_rerun_asks_nothing(source, tmp_path):
    cache = CatalogCache(tmp_path)
    first = cache.query(source, CENTER, RADIUS, band="r")
    assert len(source.calls) == 1
    tiles = covering_tiles(CENTER, RADIUS)
    assert len(tile_files(tmp_path)) == len(tiles) > 10
    assert not list(tmp_path.rglob("*.tmp"))
    assert sorted(first["id"]) == sorted(source.stars["id"][inside(source.stars, CENTER, RADIUS)])
    assert first.meta["source"] == "stars" and first.meta["radius_arcmin"] == RADIUS

    again = CatalogCache(tmp_path).fill(source, CENTER, RADIUS, band="r")
    assert len(source.calls) == 1
    assert (again.tiles, again.cached, again.fetched, again.queries) == (len(tiles), len(tiles), 0, 0)
    assert again.rows == len(first)


def test_neighbouring_field_asks_only_for_the_tiles_it_does_not_share(source, tmp_path):
    cache = CatalogCache(tmp_path)
    cache.query(source, CENTER, RADIUS)
    before = {p: p.stat().st_mtime_ns for p in tile_files(tmp_path)}

    inner = CENTER.directional_offset_by(0 * CENTER.ra.unit, 1.0 / 60 * CENTER.dec.unit)
    assert set(covering_tiles(inner, 5.0)) <= set(covering_tiles(CENTER, RADIUS))
    cache.query(source, inner, 5.0)
    assert len(source.calls) == 1  # every tile of the inner field is cached

    shifted = SkyCoord(150.0 + 8.0 / 60, 2.0, unit="deg")
    new_tiles = set(covering_tiles(shifted, RADIUS)) - set(covering_tiles(CENTER, RADIUS))
    shared = set(covering_tiles(shifted, RADIUS)) & set(covering_tiles(CENTER, RADIUS))
    assert new_tiles and shared
    report = cache.fill(source, shifted, RADIUS)
    assert len(source.calls) == 2
    assert (report.cached, report.fetched, report.queries) == (len(shared), len(new_tiles), 1)
    after = {p: p.stat().st_mtime_ns for p in tile_files(tmp_path)}
    assert len(after) == len(before) + len(new_tiles)
    assert all(after[p] == t for p, t in before.items())  # shared tiles were not fetched again
    answer = cache.query(source, shifted, RADIUS)
    assert sorted(answer["id"]) == sorted(source.stars["id"][inside(source.stars, shifted, RADIUS)])


@pytest.mark.parametrize(("ra", "dec"), [(0.02, 10.0), (359.99, -35.0), (45.0, 89.95), (210.0, -89.9)])
def test_answers_are_exact_across_ra_zero_and_the_poles(tmp_path, ra, dec):
    stars = star_field(ra, dec, half_size_deg=0.3, n=8000)
    source = CountingSource(stars)
    center = SkyCoord(ra, dec, unit="deg")
    answer = CatalogCache(tmp_path).query(source, center, 6.0)
    assert len(source.calls) == 1
    assert len(answer) > 10
    assert sorted(answer["id"]) == sorted(stars["id"][inside(stars, center, 6.0)])


def test_the_fetch_cone_contains_every_star_of_its_tiles(source):
    tiles = covering_tiles(CENTER, RADIUS)
    center, radius = circumscribing_cone(tiles)
    from astropy_healpix import HEALPix

    hp = HEALPix(nside=2**TILE_ORDER, order="nested")
    of_tiles = np.isin(hp.lonlat_to_healpix(source.stars["ra"] * CENTER.ra.unit,
                                            source.stars["dec"] * CENTER.dec.unit), tiles)
    assert of_tiles.sum() > 1000
    assert inside(source.stars[of_tiles], center, radius).all()
    assert radius < 1.8 * RADIUS  # the fetch is not much larger than the field


def test_damaged_or_foreign_tiles_are_misses(source, tmp_path):
    cache = CatalogCache(tmp_path)
    first = cache.query(source, CENTER, RADIUS)
    files = tile_files(tmp_path)
    files[0].write_text("# %ECSV 1.0\nthis is not a table\n\x00\x01")
    files[1].write_bytes(files[2].read_bytes())  # says it is another tile
    report = cache.fill(source, CENTER, RADIUS)
    assert (report.fetched, report.queries) == (2, 1)
    assert len(source.calls) == 2
    assert sorted(cache.query(source, CENTER, RADIUS)["id"]) == sorted(first["id"])
    assert len(source.calls) == 2


def test_empty_sky_is_cached_too(tmp_path):
    source = CountingSource(star_field(150.0, 2.0, n=10))
    far = SkyCoord(20.0, -40.0, unit="deg")
    assert len(CatalogCache(tmp_path).query(source, far, 3.0)) == 0
    assert len(CatalogCache(tmp_path).query(source, far, 3.0)) == 0
    assert len(source.calls) == 1


def test_band_dependent_sources_are_cached_per_band(tmp_path):
    stars = star_field(150.0, 2.0, n=2000)
    per_band = CountingSource(stars, name="perband", band_dependent=True)
    any_band = CountingSource(stars, name="anyband", band_dependent=False)
    cache = CatalogCache(tmp_path)
    for band in ("g", "r", "g"):
        cache.query(per_band, CENTER, 3.0, band=band)
        cache.query(any_band, CENTER, 3.0, band=band)
    assert [c[2] for c in per_band.calls] == ["g", "r"]
    assert [c[2] for c in any_band.calls] == [None]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anyband_all", "perband_g", "perband_r"]
    with pytest.raises(ValueError, match="perband has no band 'K'"):
        cache.query(per_band, CENTER, 3.0, band="K")


def test_failures_name_the_source_and_are_not_cached(source, tmp_path):
    source.fail = True
    with pytest.raises(CatalogUnavailableError, match=r"^stars query for RA=.*ConnectionError: network is down"
                                                      r".*--catalog FILE"):
        CatalogCache(tmp_path).query(source, CENTER, RADIUS)
    assert tile_files(tmp_path) == []


def test_site_cache_answers_other_nights_and_is_copied_into_each(source, tmp_path, monkeypatch):
    site = tmp_path / "site"
    monkeypatch.setenv(SITE_CACHE_ENV, str(site))
    night1, night2 = tmp_path / "night1", tmp_path / "night2"
    reduction_cache(night1).query(source, CENTER, RADIUS)
    assert len(tile_files(site)) == len(tile_files(night1 / "red" / "catalogs")) > 0
    source.fail = True  # the network is gone: night 2 is answered by the site cache
    answer = reduction_cache(night2).query(source, CENTER, RADIUS)
    assert len(source.calls) == 1 and len(answer) > 0
    assert len(tile_files(night2 / "red" / "catalogs")) == len(tile_files(site))


def test_unwritable_site_cache_does_not_stop_a_reduction(source, tmp_path, caplog):
    site = tmp_path / "site-file"
    site.write_text("a file, not a directory")
    answer = CatalogCache(tmp_path / "night", site).query(source, CENTER, 3.0)
    assert len(answer) > 0 and tile_files(tmp_path / "night")
    assert "site catalog cache" in caplog.text
