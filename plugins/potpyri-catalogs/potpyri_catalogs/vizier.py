"""Catalog sources answered by VizieR through astroquery.

Each :class:`VizierSource` asks one VizieR table for a cone through
:class:`astroquery.vizier.Vizier` and returns a table in the canonical schema of
:mod:`potpyri_core.catalogs.columns` (``ra``, ``dec``, ``pmra``, ``pmdec``, ``ref_epoch``,
``mag_<band>``, ``err_<band>``) with AB magnitudes.

The VizieR server is, in order of precedence: the ``server`` given to the source, the
environment variable ``POTPYRI_VIZIER_SERVER``, astroquery's default mirror
(``astroquery.vizier.conf.server``). A bare host name (``vizier.cfa.harvard.edu``) is used
the way astroquery uses it (``https://HOST/viz-bin/votable``); a value with a scheme
(``http://127.0.0.1:8080``) is used as the base URL as given, because astroquery itself
always prepends ``https://``.

The sources themselves (Gaia DR3, PS1, SDSS, SkyMapper, 2MASS) are defined in
:mod:`potpyri_catalogs.sources`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astroquery.vizier import VizierClass
from astroquery.vizier import conf as vizier_conf

from potpyri_core.catalogs.cache import CatalogUnavailableError, unavailable_message
from potpyri_core.catalogs.columns import normalise

SERVER_ENV = "POTPYRI_VIZIER_SERVER"
#: PS1 point sources: PSF - Kron magnitude below this.
PS1_PSF_KRON_LIMIT = 0.1

RowFilter = Callable[[Table, str | None], np.ndarray]


def resolve_server(server: str | None = None) -> str:
    """The VizieR server to use: ``server``, else ``$POTPYRI_VIZIER_SERVER``, else astroquery's."""
    return server or os.environ.get(SERVER_ENV) or str(vizier_conf.server)


class _VizierClient(VizierClass):
    """astroquery's VizieR client, taking a full base URL (with scheme) when given one.

    astroquery builds ``"https://" + VIZIER_SERVER + "/viz-bin/votable"``, so a server with
    an explicit scheme (a mirror over plain http, a local test server) needs this one
    override; everything else (payload, parsing) is astroquery's.
    """

    def __init__(self, *, server: str, **kwargs: object) -> None:
        self._base_url: str | None = None
        if server.startswith(("http://", "https://")):
            self._base_url = server.rstrip("/")
            host = server.split("://", 1)[1].split("/", 1)[0]
        else:
            host = server
        super().__init__(vizier_server=host, **kwargs)

    def _server_to_url(self, return_type: str = "votable") -> str:
        if self._base_url is None:
            return super()._server_to_url(return_type=return_type)
        return f"{self._base_url}/viz-bin/{return_type}"


def _as_float(column: object) -> np.ndarray:
    """A table column as a float array with masked entries as NaN."""
    return np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)


def psf_minus_kron_cut(
    psf: dict[str, str], kron: dict[str, str], limit: float = PS1_PSF_KRON_LIMIT
) -> RowFilter:
    """Point-source selection ``PSF - Kron < limit`` (PS1).

    With a band, the cut uses that band; without one, the median of PSF - Kron over the
    bands where both are measured. Rows where it cannot be computed are dropped.

    Parameters
    ----------
    psf, kron : dict
        Band -> VizieR column of the PSF and of the Kron magnitude.
    limit : float
        Largest PSF - Kron (mag) of a point source.
    """

    def cut(table: Table, band: str | None) -> np.ndarray:
        bands = [band] if band is not None else list(psf)
        diffs = [
            _as_float(table[psf[b]]) - _as_float(table[kron[b]])
            for b in bands
            if b in psf and b in kron and psf[b] in table.colnames and kron[b] in table.colnames
        ]
        if not diffs:
            return np.zeros(len(table), dtype=bool)
        stacked = np.vstack(diffs)
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(stacked)
            median = np.full(len(table), np.nan)
            has = finite.any(axis=0)
            if has.any():
                median[has] = np.nanmedian(stacked[:, has], axis=0)
            return np.isfinite(median) & (median < limit)

    return cut


@dataclass
class VizierSource:
    """One VizieR table as a catalog source.

    Parameters
    ----------
    name : str
        Source name used in settings (``ZeroPointCatalogs``) and messages, e.g. ``ps1``.
    title : str
        What the source is, for ``potpyri catalogs list`` (e.g. ``Pan-STARRS1 DR1``).
    catalog : str
        VizieR table id, e.g. ``II/349/ps1``.
    band_columns : dict
        Band -> (magnitude column, error column or None) in the VizieR table.
    position_columns : list of str
        Position (and proper-motion) columns to request.
    extra_columns : list of str
        Further columns the row filter needs (e.g. PS1 Kron magnitudes).
    column_filters : dict
        VizieR constraints sent with every query (e.g. ``{"class": "=6"}``).
    mag_range : tuple of float, optional
        (bright, faint) limits applied by VizieR to the requested band's magnitude.
    row_filter : callable, optional
        ``f(raw_table, band) -> bool mask`` of the rows to keep (e.g. the PS1 point-source cut).
    vega_to_ab : dict
        Band -> offset added to turn the catalog's Vega magnitudes into AB.
    ref_epoch : float, optional
        Epoch (Julian year) of the positions, written as ``ref_epoch`` when the table has none.
    renames : dict
        VizieR column -> name :func:`~potpyri_core.catalogs.columns.normalise` knows, applied
        before normalising (SkyMapper's ``RAICRS``/``DEICRS`` are not in its lists).
    server : str, optional
        VizieR server (host name or base URL); see :func:`resolve_server`.
    timeout : float
        Seconds before a query is given up.
    """

    name: str
    title: str
    catalog: str
    band_columns: dict[str, tuple[str, str | None]]
    position_columns: list[str]
    extra_columns: list[str] = field(default_factory=list)
    column_filters: dict[str, str] = field(default_factory=dict)
    mag_range: tuple[float, float] | None = None
    row_filter: RowFilter | None = None
    vega_to_ab: dict[str, float] = field(default_factory=dict)
    ref_epoch: float | None = None
    renames: dict[str, str] = field(default_factory=dict)
    server: str | None = None
    timeout: float = 60.0

    @property
    def bands(self) -> list[str]:
        """Bands this source provides."""
        return list(self.band_columns)

    @property
    def description(self) -> str:
        """One line for listings: the title and the VizieR table."""
        return f"{self.title} (VizieR {self.catalog})"

    @property
    def band_dependent(self) -> bool:
        """Whether the answer depends on the band asked for (a magnitude range or a row
        filter such as the PS1 point-source cut); if not, one cached answer serves every band."""
        return self.row_filter is not None or self.mag_range is not None

    @property
    def columns(self) -> list[str]:
        """VizieR columns requested."""
        wanted = list(self.position_columns)
        for mag, err in self.band_columns.values():
            wanted += [mag] + ([err] if err else [])
        wanted += self.extra_columns
        return list(dict.fromkeys(wanted))

    @property
    def cache_token(self) -> str:
        """What defines the answers of this source (for cache keys)."""
        return repr((self.catalog, self.columns, sorted(self.column_filters.items()), self.mag_range,
                     sorted(self.vega_to_ab.items())))

    def filters_for(self, band: str | None) -> dict[str, str]:
        """VizieR column constraints of a query in ``band``."""
        filters = dict(self.column_filters)
        if band is not None and self.mag_range is not None:
            bright, faint = self.mag_range
            filters[self.band_columns[band][0]] = f"{bright:g}..{faint:g}"
        return filters

    def client(self) -> VizierClass:
        """The astroquery client for one query (unlimited rows, this source's columns)."""
        return _VizierClient(
            server=resolve_server(self.server),
            columns=self.columns,
            row_limit=-1,
            timeout=self.timeout,
        )

    def query(self, center: SkyCoord, radius_arcmin: float, band: str | None = None) -> Table:
        """Sources within ``radius_arcmin`` of ``center``, normalised, AB magnitudes.

        Parameters
        ----------
        center : astropy.coordinates.SkyCoord
            Centre of the cone.
        radius_arcmin : float
            Cone radius (arcmin).
        band : str, optional
            Band the table is for: selects the magnitude limits and the point-source cut.
            All bands are returned either way.

        Raises
        ------
        ValueError
            If ``band`` is not one of :attr:`bands`.
        CatalogUnavailableError
            If VizieR cannot be reached or answers with an error or something unreadable.
        """
        if band is not None and band not in self.band_columns:
            raise ValueError(f"{self.name} has no band {band!r}; bands: {', '.join(self.bands)}")
        try:
            result = self.client().query_region(
                center.icrs,
                radius=float(radius_arcmin) * u.arcmin,
                catalog=self.catalog,
                column_filters=self.filters_for(band),
                frame="icrs",
                cache=False,
            )
        except Exception as exc:
            raise CatalogUnavailableError(
                unavailable_message(self.name, center, radius_arcmin, f"{type(exc).__name__}: {exc}")
            ) from exc
        if result is None or not hasattr(result, "keys"):
            raise CatalogUnavailableError(
                unavailable_message(self.name, center, radius_arcmin, "the server did not answer with a VOTable")
            )
        raw = self._pick(result)
        return self._to_canonical(raw, band, center, radius_arcmin)

    # ------------------------------------------------------------------ helpers
    def _pick(self, result: object) -> Table:
        """The table of this catalog in astroquery's TableList (an empty table if no rows)."""
        keys = list(result.keys())
        if self.catalog in keys:
            return result[self.catalog]
        if keys:
            return result[keys[0]]
        return Table({c: np.zeros(0, dtype=float) for c in self.columns})

    def _to_canonical(self, raw: Table, band: str | None, center: SkyCoord, radius_arcmin: float) -> Table:
        if self.row_filter is not None and len(raw):
            raw = raw[np.asarray(self.row_filter(raw, band), dtype=bool)]
        if self.renames:
            raw = raw.copy(copy_data=False)
            for old, new in self.renames.items():
                if old in raw.colnames and new not in raw.colnames:
                    raw.rename_column(old, new)
        out = normalise(raw, self.name)
        for b, (mag, err) in self.band_columns.items():
            # Explicit band columns win over normalise's guesses (e.g. SDSS PSF ``upmag``,
            # Gaia ``e_Gmag``).
            if mag in raw.colnames:
                out[f"mag_{b}"] = _as_float(raw[mag]) + self.vega_to_ab.get(b, 0.0)
            if err and err in raw.colnames:
                out[f"err_{b}"] = _as_float(raw[err])
        if self.ref_epoch is not None and "ref_epoch" not in out.colnames:
            out["ref_epoch"] = np.full(len(out), self.ref_epoch)
        icrs = center.icrs
        out.meta.update(
            {
                "source": self.name,
                "catalog": self.name,
                "vizier_table": self.catalog,
                "ra_center": float(icrs.ra.deg),
                "dec_center": float(icrs.dec.deg),
                "radius_arcmin": float(radius_arcmin),
                "band": band or "",
                "mag_system": "AB",
            }
        )
        return out
