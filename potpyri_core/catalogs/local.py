"""A catalog source backed by files a person saved (FITS, CSV, ECSV)."""

from __future__ import annotations

from pathlib import Path

from astropy.table import Table

from potpyri_core.catalogs.columns import bands, normalise, twomass_y


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
    """Catalog source made of saved files; ``astrometric`` is the one with proper motions."""

    name = "local"

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self.tables = [read_catalog_file(p) for p in paths]

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

    def photometric(self, band: str, vega_to_ab: dict[str, float] | None = None) -> Table | None:
        """The table with magnitudes in ``band`` (AB), or None.

        Parameters
        ----------
        band : str
            Band wanted.
        vega_to_ab : dict, optional
            Offsets added to Vega magnitudes (2MASS J, H, K) to make them AB.

        Raises
        ------
        ValueError
            When the file's magnitudes in ``band`` are Vega and no offset is known.
        """
        for table in self.tables:
            if f"mag_{band}" not in table.colnames and band == "Y":
                table = twomass_y(table) or table  # Y made from 2MASS J and H
            if f"mag_{band}" not in table.colnames:
                continue
            if band in table.meta.get("vega_bands", []):
                if not vega_to_ab or band not in vega_to_ab:
                    raise ValueError(f"{table.meta['source']}: {band} magnitudes are Vega and no Vega-to-AB offset"
                                     " is set for this instrument (zeropoint.vega_to_ab)")
                table = table.copy()
                table[f"mag_{band}"] += vega_to_ab[band]
                table.meta["vega_bands"] = [b for b in table.meta["vega_bands"] if b != band]
            return table
        return None
