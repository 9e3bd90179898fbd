"""Published transformations from survey bands to Johnson/Cousins B, V, R, I (data only).

Each relation gives a filter's magnitude from one catalog band and one catalog colour,
``X = m_cat(band) + offset + coefficient * (colour)``, in the publication's system: Johnson B, V
and Cousins R, I are Vega-based (Landolt standards), so ``vega_to_ab`` (AB minus Vega of the
filter) makes the result AB, the pipeline's convention. The catalog magnitudes are AB (PS1,
SDSS as measured).

Sources (numbers only; nothing else is taken from them):

- ``tonry2012``: Tonry et al. 2012, ApJ 750, 99, Table 6, the linear fits in
  ``x = (g - r)_P1`` (Pan-STARRS1 to Johnson/Cousins, stars).
- ``lupton2005``: R. Lupton (2005), the SDSS-to-UBVRcIc relations for stars published on the
  SDSS "Transformations between SDSS magnitudes and other systems" page.
- AB offsets: Blanton & Roweis 2007, AJ 133, 734, Table 1 (B -0.09, V 0.02, R 0.21, I 0.45).
"""

from __future__ import annotations

from dataclasses import dataclass

JOHNSON_VEGA_TO_AB = {"B": -0.09, "V": 0.02, "R": 0.21, "I": 0.45}
"""AB minus Vega magnitudes of Johnson B, V and Cousins R, I (Blanton & Roweis 2007, Table 1)."""


@dataclass(frozen=True)
class Transformation:
    """``X = m_cat(band) + offset + coefficient * (colour)`` (+ ``vega_to_ab`` for AB)."""

    band: str
    """Catalog band the filter's magnitude starts from."""
    colour: str
    """Catalog colour, ``"g-r"``: ``mag_g - mag_r``."""
    offset: float
    coefficient: float
    scatter: float
    """Published rms of the relation (mag), added to each star's reference error."""
    vega_to_ab: float
    """AB minus Vega of the filter (0 when the relation is already AB)."""
    source: str
    """Short citation, written to the stack header (ZPTCSRC)."""

    def colour_bands(self) -> tuple[str, str]:
        """The two bands of :attr:`colour`."""
        return colour_bands(self.colour)

    @property
    def bands(self) -> tuple[str, ...]:
        """Every catalog band the relation needs."""
        return tuple(dict.fromkeys((self.band, *self.colour_bands())))


def colour_bands(colour: str) -> tuple[str, str]:
    """Split ``"g-r"`` into ``("g", "r")``.

    Raises
    ------
    ValueError
        When ``colour`` is not two band names joined by ``-``.
    """
    parts = [p.strip() for p in colour.split("-")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"colour {colour!r} must be two band names joined by '-', e.g. 'g-r'")
    return parts[0], parts[1]


_TONRY = "Tonry+2012 ApJ750,99 T6"
_LUPTON = "Lupton 2005 (SDSS web)"
TRANSFORMATIONS: dict[str, dict[str, Transformation]] = {
    "tonry2012": {
        "B": Transformation("g", "g-r", 0.213, 0.587, 0.034, JOHNSON_VEGA_TO_AB["B"], _TONRY),
        "V": Transformation("r", "g-r", 0.006, 0.474, 0.012, JOHNSON_VEGA_TO_AB["V"], _TONRY),
        "R": Transformation("r", "g-r", -0.138, -0.131, 0.015, JOHNSON_VEGA_TO_AB["R"], _TONRY),
        "I": Transformation("i", "g-r", -0.367, -0.149, 0.016, JOHNSON_VEGA_TO_AB["I"], _TONRY),
    },
    "lupton2005": {
        "B": Transformation("g", "g-r", 0.2271, 0.3130, 0.0107, JOHNSON_VEGA_TO_AB["B"], _LUPTON),
        "V": Transformation("g", "g-r", -0.0038, -0.5784, 0.0054, JOHNSON_VEGA_TO_AB["V"], _LUPTON),
        "R": Transformation("r", "r-i", -0.1439, -0.2936, 0.0072, JOHNSON_VEGA_TO_AB["R"], _LUPTON),
        "I": Transformation("i", "i-z", -0.3974, -0.3780, 0.0063, JOHNSON_VEGA_TO_AB["I"], _LUPTON),
    },
}
"""Published relations by name, then by filter (the name a setting's ``transform`` gives)."""


def transformation(name: str, band: str) -> Transformation:
    """The published relation ``name`` for filter ``band``.

    Raises
    ------
    ValueError
        Naming the relations and filters that exist.
    """
    if name not in TRANSFORMATIONS:
        raise ValueError(f"unknown transformation {name!r}; known: {', '.join(sorted(TRANSFORMATIONS))}")
    if band not in TRANSFORMATIONS[name]:
        raise ValueError(f"transformation {name!r} has no filter {band!r}; it has {', '.join(TRANSFORMATIONS[name])}")
    return TRANSFORMATIONS[name][band]
