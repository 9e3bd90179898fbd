"""HEALPix-tiled on-disk cache of catalog queries: each piece of sky is fetched only once.

The sky is cut into HEALPix tiles of order :data:`TILE_ORDER` (nested, ICRS; 3.4′ tiles).
A query for a cone is answered from the tiles that cover it; the tiles not on disk yet are
fetched together in **one** query of the source (a cone circumscribing them), split by tile
and stored, so a re-run asks nothing and a neighbouring field asks only for the tiles it
does not share. The answer is cut to the cone asked for, so it does not depend on what was
cached before.

Tiles are ECSV files ``<directory>/<source>_<band>_<token>/hpx<order>_<pixel>.ecsv``
(``band`` is ``all`` for sources whose answer does not depend on the band), written
atomically (temporary file + rename). A tile that cannot be read, or that says it is
another tile, is a miss and is fetched again. Empty tiles are stored too: an empty piece of
sky is an answer.

Two places are searched: the data directory's cache (``DATA_PATH/red/catalogs``), then the
optional site-wide cache named by ``$POTPYRI_CATALOG_CACHE`` (filled before a night by
``potpyri catalogs fetch``). A tile found in the site cache is copied into the data
directory, so a reduction keeps the catalogs it used; fetched tiles go to both.

The cache belongs to the core, not to a catalog plugin: every source of every plugin gets
it by answering ``query(center, radius_arcmin, band)``, and the offline behaviour (the
site cache, ``catalogs fetch``, re-runs without network) is the pipeline's, not a source's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import ICRS, SkyCoord
from astropy.table import Table, vstack
from astropy_healpix import HEALPix

log = logging.getLogger("potpyri")

#: HEALPix order of the tiles (nside 1024: 3.4′ tiles, 12.6 million over the sky).
TILE_ORDER = 10
#: Environment variable naming the site-wide cache directory.
SITE_CACHE_ENV = "POTPYRI_CATALOG_CACHE"
#: Points of each tile edge used to find the cone that circumscribes a set of tiles.
EDGE_STEPS = 8
#: Added to that cone's radius (arcsec), so stars on a tile's edge are always inside it.
EDGE_MARGIN_ARCSEC = 2.0
OFFLINE_HINT = "pass --catalog FILE to reduce offline"
#: Meta keys that describe one tile rather than the catalog.
_TILE_KEYS = ("healpix_order", "healpix_pixel", "fetched_utc", "ra_center", "dec_center", "radius_arcmin")

_HEALPIX = HEALPix(nside=2**TILE_ORDER, order="nested", frame=ICRS())


class CatalogUnavailableError(RuntimeError):
    """Raised when a catalog source cannot answer (network down, server error, bad reply)."""


def unavailable_message(name: str, center: SkyCoord, radius_arcmin: float, reason: object) -> str:
    """The one-line message of a failed query, naming the source, the field and the way out.

    Parameters
    ----------
    name : str
        Catalog source name (e.g. ``ps1``).
    center : astropy.coordinates.SkyCoord
        Centre of the cone.
    radius_arcmin : float
        Cone radius in arcmin.
    reason : object
        What went wrong (an exception or a string).

    Returns
    -------
    str
        ``"<name> query for RA=..., Dec=... r=...' failed: <reason>; pass --catalog FILE ..."``.
    """
    icrs = center.icrs
    return (
        f"{name} query for RA={icrs.ra.deg:.5f}, Dec={icrs.dec.deg:+.5f} r={radius_arcmin:g}' failed: "
        f"{reason}; {OFFLINE_HINT}"
    )


def catalog_cache_dir(data_path: Path | str) -> Path:
    """The cache directory of a reduction: ``DATA_PATH/red/catalogs``."""
    return Path(data_path) / "red" / "catalogs"


def site_cache_dir() -> Path | None:
    """The site-wide cache directory from ``$POTPYRI_CATALOG_CACHE``, or None when unset."""
    value = os.environ.get(SITE_CACHE_ENV, "").strip()
    return Path(value).expanduser() if value else None


def reduction_cache(data_path: Path | str) -> CatalogCache:
    """The cache a reduction of ``data_path`` uses: its ``red/catalogs`` plus the site cache."""
    return CatalogCache(catalog_cache_dir(data_path), site_cache_dir())


def covering_tiles(center: SkyCoord, radius_arcmin: float) -> np.ndarray:
    """HEALPix pixels (order :data:`TILE_ORDER`, nested) of every tile that overlaps a cone."""
    return np.unique(_HEALPIX.cone_search_skycoord(center.icrs, float(radius_arcmin) * u.arcmin))


def circumscribing_cone(tiles: np.ndarray) -> tuple[SkyCoord, float]:
    """A cone (centre, radius in arcmin) that contains every point of ``tiles``.

    The centre is the mean direction of the tile centres; the radius reaches the farthest
    sampled edge point plus :data:`EDGE_MARGIN_ARCSEC`.
    """
    x, y, z = _HEALPIX.healpix_to_skycoord(tiles).cartesian.xyz.value.mean(axis=1)
    center = SkyCoord(np.degrees(np.arctan2(y, x)) % 360.0, np.degrees(np.arctan2(z, np.hypot(x, y))),
                      unit="deg", frame=ICRS())
    edges = _HEALPIX.boundaries_skycoord(tiles, step=EDGE_STEPS)
    radius = float(center.separation(edges).arcmin.max()) + EDGE_MARGIN_ARCSEC / 60.0
    return center, radius


def _band_key(source: Any, band: str | None) -> str | None:
    """The band a cached answer is kept under: None when the source says its answer is the
    same for every band (``band_dependent`` false); sources that do not say are kept per band."""
    return band if getattr(source, "band_dependent", True) else None


def _token(source: Any) -> str:
    """Short hash of ``source.cache_token`` (its definition), or '' when it has none."""
    token = getattr(source, "cache_token", "")
    return hashlib.sha1(str(token).encode()).hexdigest()[:8] if token else ""


def _write_atomic(table: Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".ecsv.tmp", dir=path.parent)
    os.close(fd)
    try:
        table.write(tmp_name, format="ascii.ecsv", overwrite=True)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@dataclass
class CacheReport:
    """What answering one cone took.

    Attributes
    ----------
    tiles : int
        Tiles covering the cone.
    cached : int
        Of them, found on disk (data directory or site cache).
    fetched : int
        Of them, fetched from the source.
    queries : int
        Queries sent to the source (0 or 1).
    rows : int
        Rows in the answer (cut to the cone).
    """

    tiles: int
    cached: int
    fetched: int
    queries: int
    rows: int

    def summary(self) -> str:
        """``"22 tiles: 18 cached, 4 fetched in 1 query; 310 stars"``."""
        query = "query" if self.queries == 1 else "queries"
        return (f"{self.tiles} tiles: {self.cached} cached, {self.fetched} fetched in {self.queries} {query};"
                f" {self.rows} stars")


class CatalogCache:
    """Catalog answers kept as HEALPix tiles in ``directory`` (and an optional site cache).

    Parameters
    ----------
    directory : Path
        Where tiles are kept and written (created on the first write).
    site_directory : Path, optional
        A second, site-wide cache: read after ``directory`` and written with it; a site
        cache that cannot be written is logged and skipped.
    """

    def __init__(self, directory: Path | str, site_directory: Path | str | None = None) -> None:
        self.directory = Path(directory)
        self.site_directory = Path(site_directory) if site_directory is not None else None
        if self.site_directory is not None and self.site_directory.resolve() == self.directory.resolve():
            self.site_directory = None

    # ------------------------------------------------------------------ paths
    @staticmethod
    def folder_name(source: Any, band: str | None) -> str:
        """Folder of a source's tiles for ``band``: ``<name>_<band or all>[_<token>]``."""
        key = _band_key(source, band)
        token = _token(source)
        return f"{str(source.name).lower()}_{key or 'all'}" + (f"_{token}" if token else "")

    def tile_path(self, source: Any, band: str | None, pixel: int, site: bool = False) -> Path:
        """Path of one tile in the data directory's cache (or in the site cache)."""
        root = self.site_directory if site and self.site_directory is not None else self.directory
        return root / self.folder_name(source, band) / f"hpx{TILE_ORDER}_{int(pixel)}.ecsv"

    # ------------------------------------------------------------------ tiles
    @staticmethod
    def _read(path: Path, pixel: int) -> Table | None:
        if not path.exists():
            return None
        try:
            table = Table.read(path, format="ascii.ecsv")
        except Exception:  # a damaged tile is a miss: fetch it again and rewrite it
            return None
        if table.meta.get("healpix_order") != TILE_ORDER or table.meta.get("healpix_pixel") != int(pixel):
            return None
        return table

    def get_tile(self, source: Any, band: str | None, pixel: int) -> Table | None:
        """One cached tile, or None; a tile found only in the site cache is copied locally."""
        local = self.tile_path(source, band, pixel)
        table = self._read(local, pixel)
        if table is None and self.site_directory is not None:
            table = self._read(self.tile_path(source, band, pixel, site=True), pixel)
            if table is not None:
                _write_atomic(table, local)
        return table

    def put_tile(self, source: Any, band: str | None, pixel: int, table: Table) -> Path:
        """Write one tile atomically (and into the site cache, when there is one)."""
        path = self.tile_path(source, band, pixel)
        _write_atomic(table, path)
        if self.site_directory is not None:
            try:
                _write_atomic(table, self.tile_path(source, band, pixel, site=True))
            except OSError as exc:
                log.warning("site catalog cache %s not written: %s", self.site_directory, exc)
        return path

    def _fetch(self, source: Any, band: str | None, missing: np.ndarray) -> dict[int, Table]:
        """Ask ``source`` once for the cone around ``missing`` and split the answer by tile."""
        center, radius = circumscribing_cone(missing)
        try:
            table = source.query(center, radius, band=_band_key(source, band))
        except CatalogUnavailableError:
            raise
        except Exception as exc:
            raise CatalogUnavailableError(
                unavailable_message(source.name, center, radius, f"{type(exc).__name__}: {exc}")
            ) from exc
        ra = np.asarray(table["ra"], dtype=float)
        dec = np.asarray(table["dec"], dtype=float)
        pixels = np.full(len(table), -1, dtype=np.int64)
        good = np.isfinite(ra) & np.isfinite(dec)
        if good.any():
            pixels[good] = _HEALPIX.lonlat_to_healpix(ra[good] * u.deg, dec[good] * u.deg)
        fetched_utc = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        tiles = {}
        for pixel in missing:
            tile = table[pixels == pixel]
            tile.meta = {k: v for k, v in table.meta.items() if k not in _TILE_KEYS}
            tile.meta.update({"source": str(source.name), "catalog": str(source.name), "band": _band_key(source, band) or "",
                              "healpix_order": TILE_ORDER,
                              "healpix_pixel": int(pixel), "fetched_utc": fetched_utc})
            self.put_tile(source, band, int(pixel), tile)
            tiles[int(pixel)] = tile
        return tiles

    # ------------------------------------------------------------------ queries
    def _answer(self, source: Any, center: SkyCoord, radius_arcmin: float,
                band: str | None) -> tuple[Table, CacheReport]:
        if band is not None and band not in source.bands:
            raise ValueError(f"{source.name} has no band {band!r}; bands: {', '.join(source.bands)}")
        pixels = covering_tiles(center, radius_arcmin)
        tiles: dict[int, Table] = {}
        for pixel in pixels:
            table = self.get_tile(source, band, int(pixel))
            if table is not None:
                tiles[int(pixel)] = table
        missing = np.array([p for p in pixels if int(p) not in tiles], dtype=np.int64)
        if len(missing):
            tiles.update(self._fetch(source, band, missing))
        parts = [tiles[int(p)] for p in pixels]
        table = vstack(parts, join_type="outer", metadata_conflicts="silent") if parts else Table()
        if len(table):
            inside = center.icrs.separation(SkyCoord(table["ra"], table["dec"], unit="deg")).arcmin
            table = table[inside <= radius_arcmin]
        icrs = center.icrs
        table.meta = {k: v for k, v in parts[0].meta.items() if k not in _TILE_KEYS} if parts else {}
        table.meta.update({"source": str(source.name), "catalog": str(source.name), "band": band or "", "ra_center": float(icrs.ra.deg),
                           "dec_center": float(icrs.dec.deg), "radius_arcmin": float(radius_arcmin)})
        report = CacheReport(tiles=len(pixels), cached=len(pixels) - len(missing), fetched=len(missing),
                             queries=int(len(missing) > 0), rows=len(table))
        log.debug("%s %s: %s", source.name, band or "all bands", report.summary())
        return table, report

    def query(self, source: Any, center: SkyCoord, radius_arcmin: float, band: str | None = None) -> Table:
        """The sources of ``source`` within ``radius_arcmin`` of ``center``, from the tiles.

        Parameters
        ----------
        source : object
            A catalog source (``name``, ``bands``, ``query(center, radius_arcmin, band)``).
        center : astropy.coordinates.SkyCoord
            Centre of the cone.
        radius_arcmin : float
            Cone radius (arcmin).
        band : str, optional
            Band the answer is for (see the source's ``band_dependent``).

        Returns
        -------
        astropy.table.Table
            Canonical columns, rows within the cone; ``meta`` names the source, band and cone.

        Raises
        ------
        ValueError
            If ``band`` is not one of the source's bands.
        CatalogUnavailableError
            When a tile is missing and the source fails; the message names the source and
            the cone asked for and suggests ``--catalog FILE``. Nothing is cached then.
        """
        return self._answer(source, center, radius_arcmin, band)[0]

    def fill(self, source: Any, center: SkyCoord, radius_arcmin: float, band: str | None = None) -> CacheReport:
        """Make sure every tile covering the cone is cached (``potpyri catalogs fetch``).

        Parameters and errors are those of :meth:`query`.

        Returns
        -------
        CacheReport
            Tiles covering the cone, how many were cached already and how many were fetched.
        """
        return self._answer(source, center, radius_arcmin, band)[1]
