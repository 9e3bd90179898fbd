"""``potpyri index``: astrometry.net index files for a field, so a site solves offline."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.time import Time

from potpyri_core.catalogs.cache import CatalogCache
from potpyri_core.catalogs.columns import at_epoch
from potpyri_core.catalogs.local import LocalCatalog
from potpyri_core.catalogs.online import ASTROMETRIC_SOURCE
from potpyri_core.plugins import PluginManager
from potpyri_core.stages import astrometry_net


def _centre(ra: str, dec: str) -> SkyCoord:
    """RA/Dec in degrees or sexagesimal (RA in hours)."""
    try:
        return SkyCoord(float(ra), float(dec), unit="deg")
    except ValueError:
        return SkyCoord(ra, dec, unit=("hourangle", "deg"))


@click.group()
def index() -> None:
    """astrometry.net index files (for the astrometry.net backend)."""


@index.command()
@click.argument("ra")
@click.argument("dec")
@click.argument("radius", type=float)
@click.option("--catalog", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Saved Gaia table (FITS/CSV/ECSV) instead of a query of the installed Gaia source.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("astrometry-index"),
              show_default=True, help="Folder for the index files (give it to the astrometry step as index_dir).")
@click.option("--field-arcmin", type=float, default=6.0, show_default=True,
              help="Side of the frames to be solved (arcmin); sets the quad sizes.")
@click.option("--epoch", type=float, default=None, help="Julian year to move the stars to (default: now).")
@click.option("--first-id", type=int, default=9000, show_default=True, help="Unique id of the first index file.")
def build(ra: str, dec: str, radius: float, catalog: Path | None, out_dir: Path, field_arcmin: float,
          epoch: float | None, first_id: int) -> None:
    """Build index files for the field within RADIUS arcmin of RA DEC from Gaia DR3.

    RA and DEC are degrees or sexagesimal (RA in hours).
    """
    centre = _centre(ra, dec)
    if catalog is not None:
        table = LocalCatalog([catalog]).astrometric()
    else:
        sources = PluginManager().catalog_sources()
        if ASTROMETRIC_SOURCE not in sources:
            raise click.UsageError("no Gaia catalog source installed: pass --catalog FILE")
        table = CatalogCache(out_dir / "catalogs").query(sources[ASTROMETRIC_SOURCE], centre, radius)
    ra_deg, dec_deg = at_epoch(table, Time.now().jyear if epoch is None else epoch)
    inside = centre.separation(SkyCoord(ra_deg, dec_deg, unit="deg")).arcmin <= radius
    mag = next((np.asarray(table[c], float) for c in table.colnames if c.startswith("mag_")), np.zeros(len(table)))
    try:
        written = astrometry_net.build_index(ra_deg[inside], dec_deg[inside], mag[inside], out_dir, field_arcmin,
                                             unique_id=first_id)
    except astrometry_net.SolveFieldError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{int(inside.sum())} stars -> {len(written)} index files in {out_dir}")
    for path in written:
        click.echo(f"  {path}")
