"""On-disk cache of catalog queries, so a field is fetched from the network only once.

Each answer is written as one ECSV file under a directory (normally
``DATA_PATH/red/catalogs/``), named after the source, the band, the rounded centre and the
radius. Files are written atomically (temporary file + rename), so an interrupted run never
leaves a half-written table that a later run would trust.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from astropy.coordinates import SkyCoord
from astropy.table import Table

#: Decimal places of the centre (deg) in cache keys: 1e-4 deg = 0.36 arcsec.
CENTRE_DECIMALS = 4
#: Decimal places of the radius (arcmin) in cache keys.
RADIUS_DECIMALS = 2
OFFLINE_HINT = "pass --catalog FILE to reduce offline"


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
    """
    icrs = center.icrs
    return (
        f"{name} query for RA={icrs.ra.deg:.5f}, Dec={icrs.dec.deg:+.5f} r={radius_arcmin:g}' failed: "
        f"{reason}; {OFFLINE_HINT}"
    )


def catalog_cache_dir(data_path: Path | str) -> Path:
    """The cache directory of a reduction: ``DATA_PATH/red/catalogs``."""
    return Path(data_path) / "red" / "catalogs"


class CatalogCache:
    """Query results kept as ECSV files in ``directory``.

    Parameters
    ----------
    directory : Path
        Where the files live; created on the first write.
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    # ------------------------------------------------------------------ keys
    @staticmethod
    def key(source: Any, center: SkyCoord, radius_arcmin: float, band: str | None = None) -> str:
        """File stem for a query: source name, band, rounded centre and radius.

        A short hash of ``source.cache_token`` (when the source has one, e.g. the VizieR
        table, columns and filters) is appended so that changing a source's definition
        does not reuse answers to a different question.
        """
        icrs = center.icrs
        ra = round(float(icrs.ra.deg) % 360.0, CENTRE_DECIMALS)
        dec = round(float(icrs.dec.deg), CENTRE_DECIMALS)
        radius = round(float(radius_arcmin), RADIUS_DECIMALS)
        name = str(source.name).lower()
        stem = (
            f"{name}_{band or 'all'}_ra{ra:.{CENTRE_DECIMALS}f}_dec{dec:+.{CENTRE_DECIMALS}f}"
            f"_r{radius:.{RADIUS_DECIMALS}f}am"
        )
        token = getattr(source, "cache_token", "")
        if token:
            stem += "_" + hashlib.sha1(str(token).encode()).hexdigest()[:8]
        return stem

    def path_for(self, source: Any, center: SkyCoord, radius_arcmin: float, band: str | None = None) -> Path:
        """Path of the ECSV file that holds (or would hold) the answer to a query."""
        return self.directory / f"{self.key(source, center, radius_arcmin, band)}.ecsv"

    # ------------------------------------------------------------------ read / write
    def get(self, source: Any, center: SkyCoord, radius_arcmin: float, band: str | None = None) -> Table | None:
        """The cached table, or ``None`` when this query has not been made yet."""
        path = self.path_for(source, center, radius_arcmin, band)
        if not path.exists():
            return None
        try:
            return Table.read(path, format="ascii.ecsv")
        except Exception:  # a damaged cache file is a miss: ask again and rewrite it
            return None

    def put(
        self, source: Any, center: SkyCoord, radius_arcmin: float, band: str | None, table: Table
    ) -> Path:
        """Write ``table`` atomically and return its path."""
        path = self.path_for(source, center, radius_arcmin, band)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".ecsv.tmp", dir=path.parent)
        os.close(fd)
        try:
            table.write(tmp_name, format="ascii.ecsv", overwrite=True)
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return path

    # ------------------------------------------------------------------ query
    def query(self, source: Any, center: SkyCoord, radius_arcmin: float, band: str | None = None) -> Table:
        """Answer from the cache, or ask ``source`` once and keep its answer.

        Raises
        ------
        ValueError
            If ``band`` is not one of the source's bands.
        CatalogUnavailableError
            When the query is not cached and the source fails; the message names the
            source and the field and suggests ``--catalog FILE``.
        """
        if band is not None and band not in source.bands:
            raise ValueError(f"{source.name} has no band {band!r}; bands: {', '.join(source.bands)}")
        cached = self.get(source, center, radius_arcmin, band)
        if cached is not None:
            return cached
        try:
            table = source.query(center, radius_arcmin, band=band)
        except CatalogUnavailableError:
            raise
        except Exception as exc:
            raise CatalogUnavailableError(
                unavailable_message(source.name, center, radius_arcmin, f"{type(exc).__name__}: {exc}")
            ) from exc
        self.put(source, center, radius_arcmin, band, table)
        return table
