"""Reference catalogs for one field from the installed catalog sources (cached on disk)."""

from __future__ import annotations

from typing import Any

from astropy.coordinates import SkyCoord
from astropy.table import Table

from potpyri_core.catalogs.cache import CatalogCache, CatalogUnavailableError
from potpyri_core.settings import ZeroPointCatalogs

ASTROMETRIC_SOURCE = "gaia"
"""Name of the catalog source the WCS is solved against."""
NO_SOURCES_HINT = ("no online catalog sources installed: pip install potpyri-catalogs"
                   " (Gaia DR3, PS1, SDSS, SkyMapper, 2MASS), or pass --catalog FILE to reduce with saved catalogs")


class FieldCatalogs:
    """The astrometric and photometric catalogs of one field, queried once and cached.

    Offers the same ``astrometric()`` / ``photometric(band)`` as
    :class:`~potpyri_core.catalogs.local.LocalCatalog`.

    Parameters
    ----------
    sources : dict
        Catalog sources by lower-case name (from ``PluginManager.catalog_sources()``).
    cache : CatalogCache
        Where answers are kept (``DATA_PATH/red/catalogs``).
    center : SkyCoord
        Field centre.
    radius_arcmin : float
        Query radius.
    zeropoint : ZeroPointCatalogs
        The instrument's choice of photometric catalog per band and hemisphere.
    """

    def __init__(self, sources: dict[str, Any], cache: CatalogCache, center: SkyCoord, radius_arcmin: float,
                 zeropoint: ZeroPointCatalogs) -> None:
        self.sources = sources
        self.cache = cache
        self.center = center
        self.radius = radius_arcmin
        self.zeropoint = zeropoint

    def _source(self, name: str) -> Any:
        if not self.sources:
            raise CatalogUnavailableError(f"{name} needed but {NO_SOURCES_HINT}")
        if name.lower() not in self.sources:
            raise CatalogUnavailableError(
                f"no catalog source {name!r} installed (installed: {', '.join(sorted(self.sources))});"
                " pass --catalog FILE to reduce offline"
            )
        return self.sources[name.lower()]

    def astrometric(self) -> Table:
        """Gaia DR3 around the field."""
        return self.cache.query(self._source(ASTROMETRIC_SOURCE), self.center, self.radius)

    def photometric(self, band: str, vega_to_ab: dict[str, float] | None = None) -> Table | None:
        """The instrument's zero-point catalog for ``band`` at this declination (AB), or None.

        The online sources return AB magnitudes themselves, so ``vega_to_ab`` is unused
        here; it keeps the call the same as for :class:`~potpyri_core.catalogs.local.LocalCatalog`.
        """
        source = self.zeropoint.source_for(band, float(self.center.dec.deg))
        if source is None:
            return None
        # asked in the catalog band the filter is calibrated from (V: PS1 r); answers carry every band
        table = self.cache.query(self._source(source.catalog), self.center, self.radius,
                                 source.catalog_bands(band)[0])
        table.meta.setdefault("source", source.catalog)
        table.meta.setdefault("catalog", source.catalog.lower())
        return table
