"""A catalog source backed by files a person saved (FITS, CSV, ECSV)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from astropy.table import Table

from potpyri_core.catalogs.columns import bands, normalise, twomass_y

if TYPE_CHECKING:
    from potpyri_core.settings import ZeroPointCatalogs

log = logging.getLogger("potpyri")


def read_catalog_file(path: Path) -> Table:
    """Read and normalise one saved catalog file.

    Parameters
    ----------
    path : Path
        A FITS, CSV or ECSV table with VizieR or Gaia-archive column names.

    Raises
    ------
    ValueError
        Naming the file when it cannot be read or has no position columns.
    """
    path = Path(path)
    suffix = path.name.lower()
    fmt = "fits" if suffix.endswith((".fits", ".fit", ".fits.gz")) else "ascii.ecsv" if suffix.endswith(".ecsv") else "ascii.csv"
    try:
        table = Table.read(path, format=fmt)
    except Exception as exc:
        raise ValueError(f"{path}: cannot read catalog ({fmt}): {exc}") from exc
    return normalise(table, str(path))


class LocalCatalog:
    """Catalog source made of saved files; ``astrometric`` is the one with proper motions.

    Parameters
    ----------
    paths : list of Path
        The saved files.
    zeropoint : ZeroPointCatalogs, optional
        The instrument's zero-point sources: :meth:`photometric` then picks the file of the
        catalog they name (``meta['catalog']``) with every band the filter needs.
    """

    name = "local"

    def __init__(self, paths: list[Path], zeropoint: ZeroPointCatalogs | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.tables = [read_catalog_file(p) for p in paths]
        self.zeropoint = zeropoint

    @property
    def bands(self) -> list[str]:
        """Bands available in any of the files."""
        return sorted({b for t in self.tables for b in bands(t)})

    def astrometric(self) -> Table:
        """The table to solve WCS against: Gaia-like (with G or proper motions) if present."""
        for table in self.tables:
            if "mag_G" in table.colnames or "pmra" in table.colnames:
                return table
        return self.tables[0]

    def _wanted(self, band: str, table: Table) -> tuple[str, tuple[str, ...]]:
        """(catalog name or ``""``, catalog bands) the settings ask for ``band`` at the table's field."""
        if self.zeropoint is None or len(table) == 0:
            return "", (band,)
        source = self.zeropoint.source_for(band, float(np.nanmedian(np.asarray(table["dec"], float))))
        if source is None:
            return "", (band,)
        return source.catalog.lower(), source.catalog_bands(band)

    def photometric(self, band: str, vega_to_ab: dict[str, float] | None = None) -> Table | None:
        """The table with the magnitudes filter ``band`` is calibrated from (AB), or None.

        With settings, the file whose catalog identity is the one they name for the filter
        (and hemisphere) wins, then a file with no identity; files of another catalog are
        not used. Every band the filter needs (its colour's too) must be in the file.

        Parameters
        ----------
        band : str
            The stack's filter band.
        vega_to_ab : dict, optional
            Offsets added to Vega magnitudes (2MASS J, H, K) to make them AB.

        Raises
        ------
        ValueError
            When the file's magnitudes in a needed band are Vega and no offset is known.
        """
        ranked = []
        tables = list(self.tables)
        for order, table in enumerate(tables):
            if f"mag_{band}" not in table.colnames and band == "Y":
                table = tables[order] = twomass_y(table) or table  # Y made from 2MASS J and H
            catalog, needed = self._wanted(band, table)
            if not all(f"mag_{b}" in table.colnames for b in needed):
                continue
            identity = table.meta.get("catalog", "")
            if catalog and identity and identity != catalog:
                log.info("%s is %s, not the %s the zero point of %s uses: not used", table.meta["source"],
                         identity, catalog, band)
                continue
            ranked.append((0 if identity == catalog or not catalog else 1, order, needed))
        if not ranked:
            return None
        _, order, needed = min(ranked)
        return _as_ab(tables[order], needed, vega_to_ab)


def _as_ab(table: Table, needed: tuple[str, ...], vega_to_ab: dict[str, float] | None) -> Table:
    """``table`` with its Vega magnitudes in the ``needed`` bands made AB."""
    vega = [b for b in needed if b in table.meta.get("vega_bands", [])]
    if not vega:
        return table
    table = table.copy()
    for band in vega:
        if not vega_to_ab or band not in vega_to_ab:
            raise ValueError(f"{table.meta['source']}: {band} magnitudes are Vega and no Vega-to-AB offset"
                             " is set for this instrument (zeropoint.vega_to_ab)")
        table[f"mag_{band}"] += vega_to_ab[band]
    table.meta["vega_bands"] = [b for b in table.meta["vega_bands"] if b not in vega]
    return table
