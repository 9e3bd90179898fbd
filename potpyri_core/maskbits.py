"""Data-quality mask bits, defined once. Combine them with ``|``; never add them."""

from __future__ import annotations

from enum import IntFlag


class Bit(IntFlag):
    """Named data-quality bits of the ``uint16`` MASK extensions."""

    BAD = 1
    COSMIC_RAY = 2
    SATURATED = 4
    NEIGHBOUR = 8
    NO_DATA = 16
    SATELLITE = 32
    NONLINEAR = 64
    VIGNETTED = 128


MASK_BITS: dict[Bit, tuple[str, str]] = {
    Bit.BAD: ("BAD", "bad pixel (bad-pixel map, dead/hot column)"),
    Bit.COSMIC_RAY: ("CR", "cosmic ray"),
    Bit.SATURATED: ("SAT", "saturated"),
    Bit.NEIGHBOUR: ("GROWN", "neighbour of a bad pixel (grown)"),
    Bit.NO_DATA: ("NODATA", "no data / off detector / chip gap"),
    Bit.SATELLITE: ("SATEL", "satellite trail"),
    Bit.NONLINEAR: ("NONLIN", "non-linear"),
    Bit.VIGNETTED: ("VIGN", "unilluminated / vignetted"),
}
"""Bit -> (short name, description); written to headers as ``MASKBn`` cards."""

UNUSABLE = Bit.BAD | Bit.COSMIC_RAY | Bit.SATURATED | Bit.NO_DATA | Bit.SATELLITE | Bit.VIGNETTED
"""Bits that exclude a pixel from stacking and photometry."""
