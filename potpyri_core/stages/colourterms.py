"""Colour terms of the zero point: a catalog's magnitudes put into the filter's own system.

A star's reference magnitude in the stack's filter is

    ``m_ref = m_cat(band) + offset + term * (colour)``   (AB)

with ``band``, ``colour``, ``offset`` and ``term`` from a published transformation
(:mod:`potpyri_core.catalogs.transforms`, Johnson/Cousins from PS1 or SDSS), a fixed
published coefficient, or a coefficient fitted to the field's stars
(:class:`~potpyri_core.settings.ZeroPointSource`). The zero point is then fitted by
:func:`potpyri_core.stages.photometry.zero_point` against ``m_ref``, so
``m_inst + ZPTMAG`` is the AB magnitude in the filter. The header cards of
:meth:`ColourTerm.cards` say which catalog, band, colour and coefficient were used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from potpyri_core.catalogs.transforms import colour_bands, transformation
from potpyri_core.params import PhotometryParams
from potpyri_core.settings import ZeroPointSource

log = logging.getLogger("potpyri")

MISSING_CATALOG_ERROR = 0.05
"""Error (mag) given to a catalog magnitude that has none, as the zero-point fit does."""


@dataclass(frozen=True)
class ColourTerm:
    """How the reference magnitudes in a filter were made from the catalog's."""

    catalog: str
    """Catalog identity (``ps1``) or file name."""
    band: str
    """Catalog band the reference magnitude starts from."""
    colour: str | None = None
    """Catalog colour (``"g-r"``), None without a term."""
    offset: float = 0.0
    """Constant added (the transformation's, with its Vega-to-AB offset)."""
    coefficient: float = 0.0
    scatter: float = 0.0
    """Rms of the relation (mag), added in quadrature to each star's reference error."""
    source: str = "none"
    """Where the coefficient comes from: a citation, ``fit (N stars, ...)`` or ``none``."""
    nstars: int = 0
    """Stars the coefficient was fitted to (0 when not fitted)."""

    def bands(self) -> tuple[str, ...]:
        """Catalog bands needed."""
        extra = colour_bands(self.colour) if self.colour else ()
        return tuple(dict.fromkeys((self.band, *extra)))

    @classmethod
    def from_header(cls, header: Mapping[str, Any], band: str) -> ColourTerm:
        """The term a stack's header records (:meth:`cards`); none when it records none."""
        colour = str(header.get("ZPTCOLOR", "none"))
        return cls(str(header.get("ZPTCAT", "?")), str(header.get("ZPTBAND", band)),
                   None if colour == "none" else colour, float(header.get("ZPTCZERO", 0.0)),
                   float(header.get("ZPTCTERM", 0.0)), 0.0, str(header.get("ZPTCSRC", "none")))

    def cards(self) -> dict[str, tuple[object, str]]:
        """Header cards: ZPTBAND, ZPTCOLOR, ZPTCTERM, ZPTCZERO, ZPTCSRC (value, comment)."""
        return {
            "ZPTBAND": (self.band, "catalog band of the zero point"),
            "ZPTCOLOR": (self.colour or "none", "catalog colour of the colour term"),
            "ZPTCTERM": (self.coefficient, "m_inst+ZPTMAG=cat+ZPTCZERO+ZPTCTERM*colour"),
            "ZPTCZERO": (self.offset, "constant of the transformation (mag)"),
            "ZPTCSRC": (self.source[:46], "colour term source"),
        }


def published_term(band: str, source: ZeroPointSource | None, catalog: str) -> ColourTerm:
    """The colour term the settings give for filter ``band``, before any fit.

    Parameters
    ----------
    band : str
        The stack's filter band.
    source : ZeroPointSource or None
        The instrument's zero-point source for the filter (None: the catalog's own band).
    catalog : str
        Name of the reference catalog, for the header.
    """
    if source is None:
        return ColourTerm(catalog, band)
    if source.transform is not None:
        rel = transformation(source.transform, band)
        return ColourTerm(catalog, rel.band, rel.colour, rel.offset + rel.vega_to_ab, rel.coefficient,
                          rel.scatter, rel.source)
    if source.colour is None:
        return ColourTerm(catalog, source.band or band)
    return ColourTerm(catalog, source.band or band, source.colour, 0.0, source.term or 0.0, 0.0,
                      source.term_source or "none")


def colour_of(table: Table, colour: str) -> tuple[np.ndarray, np.ndarray]:
    """Colour ``"g-r"`` of every row (``mag_g - mag_r``) and its error.

    Raises
    ------
    ValueError
        When the table lacks one of the two bands.
    """
    first, second = colour_bands(colour)
    missing = [b for b in (first, second) if f"mag_{b}" not in table.colnames]
    if missing:
        raise ValueError(f"the reference catalog has no {', '.join(missing)} magnitudes for the colour {colour}")
    value = np.asarray(table[f"mag_{first}"], float) - np.asarray(table[f"mag_{second}"], float)
    return value, np.hypot(_errors(table, first), _errors(table, second))


def _errors(table: Table, band: str) -> np.ndarray:
    if f"err_{band}" not in table.colnames:
        return np.full(len(table), MISSING_CATALOG_ERROR)
    return np.nan_to_num(np.asarray(table[f"err_{band}"], float), nan=MISSING_CATALOG_ERROR)


def in_filter_system(reference: Table, band: str, term: ColourTerm) -> Table:
    """A copy of ``reference`` whose ``mag_<band>`` / ``err_<band>`` are the filter's magnitudes.

    Parameters
    ----------
    reference : astropy.table.Table
        Normalised catalog (AB) with the bands of ``term``.
    band : str
        The stack's filter band (the columns written).
    term : ColourTerm
        How to make them.

    Raises
    ------
    ValueError
        When the catalog lacks a band the term needs.
    """
    column = f"mag_{term.band}"
    if column not in reference.colnames:
        raise ValueError(f"the reference catalog has no {term.band} magnitudes (columns: {', '.join(reference.colnames)})")
    out = reference.copy()
    mag = np.asarray(reference[column], float) + term.offset
    err = _errors(reference, term.band)
    if term.colour is not None:
        colour, colour_err = colour_of(reference, term.colour)
        mag = mag + term.coefficient * colour
        err = np.hypot(err, term.coefficient * colour_err)
    out[f"mag_{band}"] = mag
    out[f"err_{band}"] = np.hypot(err, term.scatter)
    return out


def _matched(sources: Table, reference: Table, columns: list[str], params: PhotometryParams
             ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (sources, reference) of the stars a zero point uses, as
    :func:`~potpyri_core.stages.photometry.zero_point` selects them (S/N range, no flags,
    round), matched within ``params.match_arcsec`` and finite in ``columns``."""
    use = (np.asarray(sources["snr"]) >= params.sn_min) & (np.asarray(sources["snr"]) <= params.sn_max)
    use &= (np.asarray(sources["flags"]) == 0) & np.isfinite(np.asarray(sources["mag_inst"], float))
    use &= np.asarray(sources["elongation"]) < 1.5
    finite = np.all([np.isfinite(np.asarray(reference[c], float)) for c in columns], axis=0)
    src_idx, ref_idx = np.flatnonzero(use), np.flatnonzero(finite)
    if src_idx.size == 0 or ref_idx.size == 0:
        return np.zeros(0, int), np.zeros(0, int)
    c_src = SkyCoord(np.asarray(sources["ra"])[src_idx], np.asarray(sources["dec"])[src_idx], unit="deg")
    c_ref = SkyCoord(np.asarray(reference["ra"])[ref_idx], np.asarray(reference["dec"])[ref_idx], unit="deg")
    idx, sep, _ = c_src.match_to_catalog_sky(c_ref)
    ok = sep.arcsec < params.match_arcsec
    return src_idx[ok], ref_idx[idx[ok]]


def fit_line(x: np.ndarray, y: np.ndarray, err: np.ndarray, clip: float = 3.0, maxiter: int = 10
             ) -> tuple[float, float, float, np.ndarray]:
    """Weighted straight line ``y = a + b x``, clipped at ``clip`` times the MAD scatter.

    Returns
    -------
    a, b : float
        Intercept and slope.
    b_err : float
        Standard error of the slope (from the weights, scaled by the reduced chi-square
        when the points scatter more than their errors).
    keep : ndarray of bool
        Points used in the last fit.
    """
    w = 1.0 / np.maximum(err, 1e-3) ** 2
    keep = np.ones(x.size, bool)
    for _ in range(maxiter):
        design = np.column_stack([np.ones(keep.sum()), x[keep]])
        normal = design.T @ (design * w[keep, None])
        coef = np.linalg.solve(normal, design.T @ (w[keep] * y[keep]))
        resid = y - coef[0] - coef[1] * x
        scatter = 1.4826 * float(np.median(np.abs(resid[keep])))
        new = np.abs(resid) < np.maximum(clip * scatter, clip * err)
        if (new == keep).all():
            break
        keep = new
    chi2 = float(np.sum(w[keep] * resid[keep] ** 2)) / max(int(keep.sum()) - 2, 1)
    cov = np.linalg.inv(normal) * max(chi2, 1.0)
    return float(coef[0]), float(coef[1]), float(np.sqrt(cov[1, 1])), keep


def fitted_term(sources: Table, reference: Table, term: ColourTerm, source: ZeroPointSource,
                params: PhotometryParams) -> ColourTerm:
    """The colour term with its coefficient fitted to the field's stars, or ``term`` unchanged
    (its source saying why) when too few stars or too narrow a colour range qualify.

    The fit is ``m_cat(band) + offset - m_inst = ZP - coefficient * colour``: the slope of
    catalog minus instrumental magnitude against the catalog colour.
    """
    if term.colour is None:
        return term
    first, second = colour_bands(term.colour)
    columns = [f"mag_{b}" for b in dict.fromkeys((term.band, first, second))]
    s_idx, r_idx = _matched(sources, reference, columns, params)
    colour, colour_err = colour_of(reference[r_idx], term.colour)
    span = float(np.subtract(*np.percentile(colour, [95, 5]))) if colour.size else 0.0
    if s_idx.size < source.fit_min_stars or span < source.fit_min_span:
        why = f"fit refused: {s_idx.size} stars, span {span:.2f}; {term.source}"
        log.warning("colour term: %s (needs >= %d stars over >= %.2f mag)", why, source.fit_min_stars,
                    source.fit_min_span)
        return replace(term, source=why)
    y = (np.asarray(reference[f"mag_{term.band}"], float)[r_idx] + term.offset
         - np.asarray(sources["mag_inst"], float)[s_idx])
    # effective variance: the colour's error enters through the (published or fixed) slope
    err = np.sqrt(np.asarray(sources["mag_err"], float)[s_idx] ** 2 + _errors(reference[r_idx], term.band) ** 2
                  + (term.coefficient * colour_err) ** 2)
    _, slope, slope_err, keep = fit_line(colour, y, err)
    return replace(term, coefficient=-slope, scatter=0.0, nstars=int(keep.sum()),
                   source=f"fit: {int(keep.sum())} stars, +-{slope_err:.3f}, span {span:.2f}")


def colour_term(sources: Table, reference: Table, band: str, source: ZeroPointSource | None,
                params: PhotometryParams) -> ColourTerm:
    """The colour term of a stack's zero point: published, fixed or fitted, as the settings say.

    Parameters
    ----------
    sources : astropy.table.Table
        Aperture photometry of the stack (``ra``, ``dec``, ``mag_inst``, ``mag_err``, ``snr``,
        ``flags``, ``elongation``).
    reference : astropy.table.Table
        Normalised catalog (AB); ``meta['catalog']`` or ``meta['source']`` names it.
    band : str
        The stack's filter band.
    source : ZeroPointSource or None
        The instrument's setting for the filter.
    params : PhotometryParams
        Star selection (S/N range, match radius).
    """
    catalog = str(reference.meta.get("catalog") or reference.meta.get("source", "?"))
    term = published_term(band, source, catalog)
    if source is not None and source.fit:
        term = fitted_term(sources, reference, term, source, params)
    return term


def field_dec(reference: Table) -> float:
    """Declination of a catalog's field (median of its rows; 0 for an empty table)."""
    dec = np.asarray(reference["dec"], float)
    return float(np.nanmedian(dec)) if dec.size else 0.0
