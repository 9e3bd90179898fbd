"""The data model: a classified raw file and a frame of pixels in electrons."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from potpyri_core import __version__
from potpyri_core.maskbits import MASK_BITS


@dataclass
class Classification:
    """What a raw file is, as written to one row of ``file_list.txt``."""

    file: str
    target: str
    filter: str
    amp: str
    binning: str
    exptime: float
    type: str
    """SCIENCE, FLAT, BIAS, DARK, SPEC or BAD."""
    time: float
    """MJD of the start of the exposure (NaN when unknown)."""
    reason: str = ""
    """Why a file is BAD or SPEC."""
    coadds: int = 1
    """Coadds summed into the file (``detector.coadds_keyword``; 1 without)."""

    @property
    def targtype(self) -> str:
        """Group of frames stacked together: target, filter, amplifiers, binning."""
        return f"{self.target}_{self.filter}_{self.amp}_{self.binning}"

    @property
    def caltype(self) -> str:
        """Calibration group the file belongs to (or needs)."""
        if self.type == "BIAS":
            return f"bias_{self.amp}_{self.binning}"
        if self.type == "DARK":
            coadds = f"_{self.coadds}coadds" if self.coadds > 1 else ""
            return f"dark_{self.exptime:g}{coadds}_{self.amp}_{self.binning}"
        if self.type in ("FLAT", "SCIENCE"):
            prefix = "flat" if self.type == "FLAT" else "sci"
            return f"{prefix}_{self.filter}_{self.amp}_{self.binning}"
        return self.type.lower()


@dataclass(frozen=True)
class AmpFacts:
    """Detector numbers of one amplifier, resolved once at assembly (header over settings)."""

    name: str
    gain: float
    """e-/ADU"""
    readnoise: float
    """e-"""
    saturation_e: float
    """Level (e-, above bias) at which this amplifier's pixels saturate."""


NO_AMP = 255
"""Value of :attr:`Frame.amp_map` for pixels that no amplifier covers (chip gaps)."""


@dataclass
class Frame:
    """Pixels in electrons with their error, mask and header.

    Attributes
    ----------
    data : ndarray
        float32 image in electrons (e-), or e-/s for stacks (see ``header['BUNIT']``).
    variance : ndarray
        float32 variance in the same units squared.
    mask : ndarray
        uint16 data-quality bits (:mod:`potpyri_core.maskbits`).
    header : astropy.io.fits.Header
        Header with the WCS and processing keywords.
    """

    data: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    header: fits.Header
    name: str = ""
    amps: list[AmpFacts] = field(default_factory=list)
    """The amplifiers the pixels came from, with their gain, read noise and saturation."""
    amp_map: np.ndarray | None = None
    """uint8 index into :attr:`amps` per pixel (:data:`NO_AMP` where no amplifier)."""
    meta: dict[str, Any] = field(default_factory=dict)

    def _per_pixel(self, attribute: str) -> np.ndarray | None:
        if self.amp_map is None or not self.amps:
            return None
        values = np.array([getattr(a, attribute) for a in self.amps] + [0.0], np.float32)
        return values[np.minimum(self.amp_map, len(self.amps))]

    @property
    def readnoise(self) -> np.ndarray | None:
        """Per-pixel read noise (e-) of the amplifier each pixel came from (0 in gaps)."""
        return self._per_pixel("readnoise")

    @property
    def saturation_e(self) -> float | None:
        """Lowest saturation level (e-) of the frame's amplifiers."""
        return min(a.saturation_e for a in self.amps) if self.amps else None

    def amp_cards(self) -> dict[str, tuple[Any, str]]:
        """Header cards that record the amplifiers (read back by :meth:`from_file`)."""
        cards: dict[str, tuple[Any, str]] = {"NAMPS": (len(self.amps), "amplifiers in AMPMAP")}
        for i, a in enumerate(self.amps):
            cards[f"AMPNAM{i}"] = (a.name[:60], f"amplifier {i}")
            cards[f"AMPGAI{i}"] = (a.gain, f"gain of amplifier {i} (e-/ADU)")
            cards[f"AMPRN{i}"] = (a.readnoise, f"read noise of amplifier {i} (e-)")
            cards[f"AMPSAT{i}"] = (a.saturation_e, f"saturation of amplifier {i} (e-)")
        return cards

    @property
    def wcs(self) -> WCS:
        """The frame's current WCS."""
        return WCS(self.header, relax=True)

    def to_hdul(self, extra: list[fits.BinTableHDU] | None = None) -> fits.HDUList:
        """Return SCI, MASK, ERROR extensions (plus ``extra``) as an HDU list."""
        primary = fits.PrimaryHDU(self.data.astype(np.float32), header=self.header)
        primary.header["EXTNAME"] = "SCI"
        primary.header["POTPYRI"] = (__version__, "potpyri-core version that wrote this file")
        mask_header = fits.Header()
        for bit, (name, text) in MASK_BITS.items():
            mask_header[f"MASKB{bit.bit_length() - 1}"] = (f"{bit}={name}", text[:50])
        mask_hdu = fits.ImageHDU(self.mask.astype(np.uint16), header=mask_header, name="MASK")
        error = np.sqrt(np.clip(self.variance, 0, None)).astype(np.float32)
        err_hdu = fits.ImageHDU(error, name="ERROR")
        err_hdu.header["BUNIT"] = self.header.get("BUNIT", "electron")
        hdus: list[Any] = [primary, mask_hdu, err_hdu]
        if self.amp_map is not None and self.amps:
            amp_hdu = fits.ImageHDU(self.amp_map.astype(np.uint8), name="AMPMAP")
            amp_hdu.header.update(self.amp_cards())
            hdus.append(amp_hdu)
        return fits.HDUList([*hdus, *(extra or [])])

    @classmethod
    def from_file(cls, path: Path) -> Frame:
        """Read a frame written by :meth:`to_hdul`."""
        with fits.open(path) as hdul:
            data = hdul[0].data.astype(np.float32)
            mask = hdul["MASK"].data.astype(np.uint16)
            error = hdul["ERROR"].data.astype(np.float32)
            header = hdul[0].header.copy()
            amps, amp_map = [], None
            if "AMPMAP" in hdul:
                amp_map = hdul["AMPMAP"].data.astype(np.uint8)
                h = hdul["AMPMAP"].header
                amps = [AmpFacts(h[f"AMPNAM{i}"], h[f"AMPGAI{i}"], h[f"AMPRN{i}"], h[f"AMPSAT{i}"])
                        for i in range(int(h["NAMPS"]))]
        return cls(data=data, variance=error**2, mask=mask, header=header, name=Path(path).name, amps=amps,
                   amp_map=amp_map)
