"""Instrument settings: the validated data that describes one instrument.

An instrument plugin ships its facts as data (TOML files in the plugin package) and the
core validates them with the pydantic models below when the plugin is loaded. A wrong
setting fails at load time with the plugin, the instrument and the field named
(see :func:`potpyri_core.plugins.PluginManager`).

Conventions
-----------
- Header patterns: a frame-typing rule maps a keyword to a pattern, matched against the
  lower-cased, stripped header value: ``"val"`` means "contains val", ``"!val"`` means
  "does not contain val", ``"=val"`` means "equals val", ``"*"`` means "present".
- Sections are FITS 1-based inclusive ``[x1:x2,y1:y2]`` strings, given at 1x1 binning
  unless the field says otherwise.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FRAME_TYPES = ("BAD", "SPEC", "BIAS", "DARK", "FLAT", "SCIENCE")
"""Frame types in the order their rules are tried; the first that matches wins."""

_SECTION_RE = re.compile(r"^\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]$")


def parse_section(text: str) -> tuple[int, int, int, int]:
    """Parse a FITS section string.

    Parameters
    ----------
    text : str
        A section such as ``"[1:256,1:2112]"``; a reversed range (``[2048:1025,...]``)
        is allowed and kept as written.

    Returns
    -------
    tuple of int
        ``(x1, x2, y1, y2)``, 1-based and inclusive, in the order written.

    Raises
    ------
    ValueError
        If the string is not a FITS section.
    """
    match = _SECTION_RE.match(str(text).strip())
    if not match:
        raise ValueError(f"not a FITS section [x1:x2,y1:y2]: {text!r}")
    x1, x2, y1, y2 = (int(g) for g in match.groups())
    return x1, x2, y1, y2


class StrictModel(BaseModel):
    """Base model that rejects unknown fields, so a misspelt setting is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FrameRule(StrictModel):
    """One way a frame can be recognised: every keyword pattern in ``when`` must hold."""

    when: dict[str, str] = Field(min_length=1)
    reason: str | None = None

    def matches(self, header: Any) -> bool:
        """Return True when every pattern of the rule holds for ``header``.

        Parameters
        ----------
        header : Mapping
            A FITS header (or any mapping of keyword to value).
        """
        for key, pattern in self.when.items():
            present = key in header
            value = str(header[key]).strip().lower() if present else ""
            if pattern == "*":
                ok = present
            elif pattern.startswith("!"):
                ok = pattern[1:].lower() not in value
            elif pattern.startswith("="):
                ok = present and value == pattern[1:].lower()
            else:
                ok = present and pattern.lower() in value
            if not ok:
                return False
        return True

    def describe(self) -> str:
        """Return the rule as readable text, for reasons and messages."""
        if self.reason:
            return self.reason
        return ", ".join(f"{k}~{v}" for k, v in self.when.items())


class FrameTyping(StrictModel):
    """Frame-typing rules per type; within a type, any rule may match."""

    bad: list[FrameRule] = []
    spec: list[FrameRule] = []
    bias: list[FrameRule] = []
    dark: list[FrameRule] = []
    flat: list[FrameRule] = []
    science: list[FrameRule] = []

    @model_validator(mode="after")
    def _science_needed(self) -> FrameTyping:
        if not self.science:
            raise ValueError("at least one science rule is required")
        return self

    def rules_in_order(self) -> list[tuple[str, list[FrameRule]]]:
        """Return ``(frame type, rules)`` pairs in the order they are tried."""
        return [(name, getattr(self, name.lower())) for name in FRAME_TYPES]


class KeywordOverride(StrictModel):
    """Keyword lists used instead of the defaults for frames whose header matches ``when``."""

    when: dict[str, str] = Field(min_length=1)
    target: list[str] | None = None
    exptime: list[str] | None = None
    filter: list[str] | None = None
    binning: list[str] | None = None
    amp: list[str] | None = None


class Keywords(StrictModel):
    """Where each piece of metadata lives in the header.

    Each list names alternatives; the first keyword present (and not empty) wins.
    """

    header_ext: int = 0
    """Extension whose header is the main header."""
    merge_ext: int | None = None
    """Extension whose scalar keywords are merged in (main header wins) when classifying."""
    instrument: list[str] = ["INSTRUME"]
    target: list[str]
    exptime: list[str]
    exptime_multiply: list[str] = []
    """Keywords the exposure time is multiplied by (e.g. coadds)."""
    exptime_from_dates: list[tuple[str, str]] = []
    """Fallbacks, in order: the exposure is the difference of two ISO dates (start, end)."""
    filter: list[str]
    filter_ignore: list[str] = ["open", "none", "clear", "empty"]
    """Filter values (substrings, lower case) that mean "no filter in this wheel"."""
    mjd: list[str] = ["MJD-OBS", "MJD"]
    date_time: tuple[str, str] | None = None
    """Fallback for the time: an ISO date keyword and a time-of-day keyword."""
    binning: list[str] = []
    binning_ext: int | None = None
    """Extension that holds the binning keyword, if not the merged header."""
    amp: list[str] = []
    """Keyword with the amplifier count/mode; if absent, the count of image extensions."""
    gain: str | None = None
    """Per-extension gain keyword (e-/ADU), used over the settings value when present."""
    readnoise: str | None = None
    """Per-extension read-noise keyword (e-), used over the settings value when present."""
    saturate: str | None = None
    """Header keyword with the saturation level in ADU, used over the settings value."""
    overrides: list[KeywordOverride] = []
    """Keyword lists that replace the ones above for frames matching a header pattern
    (e.g. the filter keyword of each side of a two-sided instrument); first match wins."""

    def for_header(self, header: Any) -> Keywords:
        """The keyword map for one frame: the first matching override applied."""
        for override in self.overrides:
            if FrameRule(when=override.when).matches(header):
                changes = override.model_dump(exclude={"when"}, exclude_none=True)
                return self.model_copy(update=changes)
        return self


class Amplifier(StrictModel):
    """One amplifier (readout) of the detector."""

    name: str
    hdu: int | str
    """Extension (index or EXTNAME) that holds this amplifier's pixels."""
    when: dict[str, str] = {}
    """Header patterns (as in frame rules) that select this amplifier, for instruments whose
    readout mode or side changes the amplifiers (e.g. AMPMODE, INSTRUME); empty: always."""
    ccd: int = 0
    gain: float = Field(gt=0)
    readnoise: float = Field(ge=0)
    datasec: str | None = None
    """Illuminated pixels in the raw extension (1x1 binning); None: header DATASEC."""
    biassec: str | None = None
    """Overscan/reference pixels in the raw extension (1x1); None: header BIASSEC or none."""
    detsec: str | None = None
    """Place in the detector mosaic without gaps (1x1, may be reversed); None: header DETSEC."""

    def applies_to(self, header: Any) -> bool:
        """Return True when this amplifier is part of a frame with ``header``."""
        return not self.when or FrameRule(when=self.when).matches(header)

    @field_validator("datasec", "biassec", "detsec")
    @classmethod
    def _section(cls, value: str | None) -> str | None:
        if value is not None:
            parse_section(value)
        return value


class Detector(StrictModel):
    """Detector geometry and numbers."""

    amplifiers: list[Amplifier] = Field(min_length=1)
    sections_from_header: bool = True
    """Use the DATASEC/BIASSEC/DETSEC keywords of each extension when present (binned
    pixels); the settings' sections (1x1, scaled by the binning) are the fallback."""
    ccd_gaps: list[float] = []
    """Gap (unbinned pixels) inserted in x between consecutive CCDs of the mosaic."""
    saturation_adu: float = Field(gt=0)
    """Raw level (ADU) at which pixels are SATURATED (the header's ``keywords.saturate`` wins)."""
    nonlinear_adu: float | None = None
    """Raw level (ADU) above which pixels are flagged NONLINEAR; None: no such flag."""
    saturation_times_nreads: str | None = None
    """Header keyword (coadds, e.g. COADDS) the raw saturation and non-linearity levels are
    multiplied by, for frames that sum several reads on the detector."""
    reference_rows: int = Field(default=0, ge=0)
    """NIR arrays without overscan columns: this many reference-pixel rows at the bottom
    and top of each amplifier give its bias level (the rows are trimmed by DATASEC)."""
    illuminated_radius: float | None = None
    """Radius (unbinned px) of a circular illuminated field around the mosaic centre;
    pixels outside are flagged VIGNETTED."""
    readnoise_by_reads: dict[int, float] = {}
    """Read noise (e-) by number of non-destructive reads (Fowler / up-the-ramp); the entry
    for the nearest number of reads in the header is used over the amplifier value."""
    reads_keyword: str | None = None
    """Header keyword giving the number of reads, for ``readnoise_by_reads``."""

    @model_validator(mode="after")
    def _reads(self) -> Detector:
        if self.readnoise_by_reads and not self.reads_keyword:
            raise ValueError("readnoise_by_reads needs reads_keyword (the header keyword with the number of reads)")
        return self


class ZeroPointCatalogs(StrictModel):
    """Which photometric catalog calibrates which filter."""

    north: dict[str, str]
    """Band -> catalog source name, for fields north of ``south_limit_dec``."""
    south: dict[str, str] = {}
    """Band -> catalog source name, south of ``south_limit_dec`` (falls back to north)."""
    south_limit_dec: float = -30.0
    vega_to_ab: dict[str, float] = {}
    """Offsets added to Vega catalog magnitudes to make them AB (2MASS: J 0.91, H 1.39, K 1.85)."""

    def catalog_for(self, band: str, dec: float) -> str | None:
        """Return the catalog source name for ``band`` at declination ``dec``."""
        if dec < self.south_limit_dec and band in self.south:
            return self.south[band]
        return self.north.get(band)


class CalibrationRule(StrictModel):
    """How the frames of one calibration kind are grouped into masters and matched to the
    frames they calibrate."""

    keys: list[Literal["amp", "binning", "filter"]]
    """File-list columns that must agree between a master and the frame it calibrates."""
    exptime: Literal["any", "exact", "nearest", "scale"] = "any"
    """``any``: exposure time does not matter (bias, flat); ``exact``: masters per exposure
    time, only an equal one is used; ``nearest``: masters per exposure time, the nearest is
    used; ``scale``: one master per group in e-/s, scaled to the frame's exposure time
    (dark current linear in time)."""


def _default_rules() -> dict[str, CalibrationRule]:
    return {
        "bias": CalibrationRule(keys=["amp", "binning"]),
        "dark": CalibrationRule(keys=["amp", "binning"], exptime="scale"),
        "flat": CalibrationRule(keys=["filter", "amp", "binning"]),
    }


class Calibrations(StrictModel):
    """Calibration frames the instrument needs and how masters are matched to frames."""

    needed: list[Literal["bias", "dark", "flat"]]
    flat_source: Literal["dome", "twilight", "sky", "lamp"] = "twilight"
    """What the night's FLAT frames are (written to the master flat's FLATSRC card)."""
    min_frames: int = Field(default=3, ge=1)
    rules: dict[Literal["bias", "dark", "flat"], CalibrationRule] = Field(default_factory=_default_rules)
    """Grouping and matching rule per kind; kinds not given keep the default rule."""

    @field_validator("rules", mode="after")
    @classmethod
    def _complete(cls, value: dict[str, CalibrationRule]) -> dict[str, CalibrationRule]:
        return {**_default_rules(), **value}


HeaderValue = str | float | int | bool


class SimulationFormat(StrictModel):
    """Real keyword values the simulator writes into raw files of this instrument.

    The frame-typing rules must classify what is written here as the intended kind; a test
    checks this round trip for every instrument that has a simulation format.
    """

    primary: dict[str, HeaderValue] = {}
    """Cards of the main header common to every frame."""
    extension: dict[str, HeaderValue] = {}
    """Cards of every amplifier extension."""
    kinds: dict[Literal["bias", "dark", "flat", "science"], dict[str, HeaderValue]] = {}
    """Cards that make a frame of each kind (e.g. OBSTYPE, OBSCLASS, SHUTTER)."""
    filter_names: dict[str, str] = {}
    """Band -> raw filter name written to the first filter keyword (e.g. r -> r_G0303)."""
    bias_level_adu: float = 1000.0
    file_name: str = "{kind}{number:04d}.fits"
    """Raw file name pattern; fields ``kind``, ``number``, ``date`` (YYYYMMDD)."""


class HeaderWCS(StrictModel):
    """How to build a starting WCS from a raw header (the blind solver's first guess).

    A header WCS whose CTYPE is celestial (``RA---``/``DEC--`` ...) is used as it is when
    ``celestial_wcs`` is true; a detector WCS (``PANE_X``, ``AMPLIFIER_X``, ``BINO_X``, ...)
    never is. Otherwise the WCS is built from the pointing keywords, the pixel scale and the
    position angle: ``PA = pa_sign * header[pa_keyword] + pa_offset`` (deg, east of north).
    """

    celestial_wcs: bool = True
    """The raw header WCS, when celestial, describes the sky (False: ignore it)."""
    ra_keyword: str = "RA"
    """Pointing RA: degrees (number) or sexagesimal hours (string ``hh:mm:ss.s``)."""
    dec_keyword: str = "DEC"
    """Pointing Dec: degrees (number) or sexagesimal degrees (string)."""
    ra_unit: Literal["auto", "deg", "hourangle"] = "auto"
    """``auto``: numbers are degrees, sexagesimal strings are hours."""
    pa_keyword: str | None = None
    """Keyword of the position angle (None: PA = ``pa_offset``)."""
    pa_sign: Literal[1, -1] = 1
    pa_offset: float = 0.0
    flip: bool = False
    """True when the detector is mirrored: north up gives east right instead of left."""
    reference_pixel: tuple[float, float] | None = None
    """Unbinned mosaic pixel (x, y, 1-based) the pointing refers to; None: mosaic centre."""
    chip_keyword: str | None = None
    """Keyword naming the chip of a one-file-per-chip instrument (e.g. IMACS ``CHIP``)."""
    chip_offsets: dict[str, tuple[float, float]] = {}
    """Chip value -> (x, y) offset in unbinned pixels of the chip's reference pixel from the
    pointing position on the sky, along the detector axes."""
    pixel_scale: float | None = None
    """Arcsec per unbinned pixel for the starting WCS (None: the instrument's ``pixel_scale``)."""
    distortion_k3: float = 0.0
    """Known radial distortion about the reference pixel: a pixel at radius ``r`` (unbinned px)
    lies ``k3 * r**3`` px outward of its undistorted place (SIP A_3_0 = A_1_2 = B_0_3 = B_2_1)."""


class InstrumentSettings(StrictModel):
    """Everything the core needs to know about one instrument."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    aliases: list[str] = []
    observatory: str
    telescope: str
    instrument_values: list[str] = Field(min_length=1)
    """Values of the instrument keyword that identify this instrument (case-insensitive,
    substring match; ``=`` prefix for equality)."""
    band: Literal["optical", "nir"]
    pixel_scale: float = Field(gt=0)
    """Arcsec per unbinned pixel."""
    keywords: Keywords
    frame_types: FrameTyping
    detector: Detector
    calibrations: Calibrations
    min_science_exptime: float = 0.0
    """Science frames shorter than this (s) are acquisition frames: BAD."""
    filters: dict[str, str] = {}
    """Regular expression (full match on the lower-cased value) -> band name."""
    params: dict[str, dict[str, Any]] = {}
    """Step parameters that differ from the core defaults (``[params.cosmic_rays]`` ...;
    the steps and names of :mod:`potpyri_core.params`), validated when the plugin loads."""
    hooks: str | None = None
    """Importable module with hook implementations for this instrument only (the steps that
    really differ); the core calls them only when this instrument is reduced."""
    out_size: int = Field(gt=0)
    """Side of the output stack grid at 1x1 binning (divided by the binning)."""
    zeropoint: ZeroPointCatalogs
    raw_glob: list[str] = ["*.fits", "*.fits.gz", "*.fits.bz2", "*.fits.fz", "*.fz", "*.fit", "*.fit.gz", "*.fts"]
    """File-name patterns of raw files in a night's folder (matched case-insensitively)."""
    simulation: SimulationFormat | None = None
    header_wcs: HeaderWCS = HeaderWCS()
    """Starting WCS from the raw header (pointing, scale, position angle, distortion)."""

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from potpyri_core.params import CORE_STEPS, ParameterError, resolve

        core = {step: values for step, values in value.items() if step in CORE_STEPS}
        try:
            resolve([("params", core)])
        except ParameterError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("filters")
    @classmethod
    def _regex(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"filter pattern {pattern!r} is not a regular expression: {exc}") from exc
        return value

    def identifies(self, instrument_value: str) -> bool:
        """Return True when a header's instrument value belongs to this instrument."""
        value = instrument_value.strip().lower()
        for ref in self.instrument_values:
            ref = ref.lower()
            if (ref.startswith("=") and value == ref[1:]) or (not ref.startswith("=") and ref in value):
                return True
        return False

    def for_header(self, header: Any) -> InstrumentSettings:
        """These settings with the keyword map resolved for one frame's header."""
        keywords = self.keywords.for_header(header)
        return self if keywords is self.keywords else self.model_copy(update={"keywords": keywords})

    def band_of(self, filter_value: str) -> str:
        """Map a raw filter name to a band (``r_G0303`` -> ``r``); unmapped names pass through."""
        value = filter_value.strip().lower()
        for pattern, band in self.filters.items():
            if re.fullmatch(pattern, value):
                return band
        return filter_value.strip()


def settings_from_package(package: str, folder: str = "instruments") -> list[dict[str, Any]]:
    """Read the raw settings of every ``*.toml`` file in a plugin package folder.

    Plugins return these from their ``potpyri_instruments`` hook; the core validates them,
    so that a wrong setting is reported with the plugin's name.

    Parameters
    ----------
    package : str
        Importable package name of the plugin (e.g. ``"potpyri_gemini"``).
    folder : str
        Folder inside the package that holds one TOML file per instrument.

    Returns
    -------
    list of dict
        One raw settings mapping per file, with ``"_source"`` naming the file.
    """
    out = []
    root = resources.files(package) / folder
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text(encoding="utf-8"))
            data["_source"] = f"{package}/{folder}/{entry.name}"
            out.append(data)
    return out
