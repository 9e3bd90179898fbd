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

from potpyri_core.catalogs.columns import TWOMASS_VEGA_TO_AB, Y_VEGA_TO_AB

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
    readout_start_rows: int = Field(default=0, ge=0)
    """Raw data rows (as read, at any binning) at the start of each readout whose level does
    not follow the overscan; flagged BAD at assembly."""

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
    ccd_offsets: list[tuple[float, float]] = []
    """Per CCD (``Amplifier.ccd`` index): ``(x, y)`` offset in unbinned pixels of the CCD from
    its place in the gapless DETSEC mosaic (chip gaps and vertical shifts, e.g. from the
    observatory's geometry tables). Mosaic positions are rounded to whole binned pixels
    (half up); CCDs not listed have no offset."""
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
    coadds_keyword: str | None = None
    """Header keyword with the number of coadds summed into the frame (e.g. COADDONE): the
    read noise is multiplied by its square root, the saturation and non-linearity levels by
    it (each coadd saturates on its own)."""
    output_channels: int = Field(default=1, ge=1)
    """Equal-width column channels each amplifier is read out through (H2RG: 32); with
    ``reference_rows``, the reference-pixel level is taken per channel."""
    nonlinearity: list[float] = []
    """Published non-linearity correction: coefficients ``c2, c3, ...`` of
    ``true = raw (1 + c2 raw + c3 raw^2 ...)`` (raw in ADU per coadd above the reference
    level); empty: no correction."""

    @model_validator(mode="after")
    def _reads(self) -> Detector:
        if self.readnoise_by_reads and not self.reads_keyword:
            raise ValueError("readnoise_by_reads needs reads_keyword (the header keyword with the number of reads)")
        return self


class ZeroPointSource(StrictModel):
    """Which catalog calibrates one filter, and how its magnitudes become the filter's.

    The reference magnitude of a star in the filter is
    ``m_cat(band) + offset + term * (colour)`` (AB), and the zero point is the clipped mean of
    that minus the instrumental magnitude. Three ways to set the colour term:

    - ``transform``: a published relation (:data:`potpyri_core.catalogs.transforms.TRANSFORMATIONS`)
      gives the band, colour, offset and term (e.g. Johnson V from PS1 g, r: ``"tonry2012"``);
    - ``colour`` with ``term`` and ``term_source``: a fixed coefficient from a publication;
    - ``colour`` with ``fit = true``: the coefficient is fitted to the field's stars when at least
      ``fit_min_stars`` stars span at least ``fit_min_span`` mag of colour, else the published or
      fixed term (0 without one) is used and the header says why.
    """

    catalog: str
    """Catalog source name (``ps1``, ``skymapper``, ``sdss``, ``twomass``)."""
    band: str | None = None
    """Catalog band; default the filter's own (or the transformation's)."""
    transform: str | None = None
    """Name of a published transformation to the filter (with ``band``/``colour``/``term`` unset)."""
    colour: str | None = None
    """Catalog colour of the term, ``"g-r"``."""
    term: float | None = None
    """Fixed colour-term coefficient (needs ``colour`` and ``term_source``)."""
    term_source: str = ""
    """Publication of ``term`` (written to the header, ZPTCSRC)."""
    fit: bool = False
    """Fit the coefficient to the field's stars (needs ``colour`` or ``transform``)."""
    fit_min_stars: int = Field(default=20, ge=3)
    """Least number of matched stars for a fitted term."""
    fit_min_span: float = Field(default=0.3, gt=0.0)
    """Least colour range (5th to 95th percentile of the stars used, mag) for a fitted term."""

    @model_validator(mode="after")
    def _consistent(self) -> ZeroPointSource:
        from potpyri_core.catalogs.transforms import TRANSFORMATIONS, colour_bands
        if self.transform is not None:
            if self.transform not in TRANSFORMATIONS:
                raise ValueError(f"unknown transform {self.transform!r}; known: {', '.join(sorted(TRANSFORMATIONS))}")
            if self.band is not None or self.colour is not None or self.term is not None:
                raise ValueError("transform gives the band, colour and term: leave band, colour and term unset")
            return self
        if (self.term is not None or self.fit) and self.colour is None:
            raise ValueError("a colour term (term or fit) needs colour, e.g. colour = \"g-r\"")
        if self.colour is not None:
            colour_bands(self.colour)
            if self.term is None and not self.fit:
                raise ValueError("colour is set but neither term nor fit: give term (with term_source) or fit = true")
        if self.term is not None and not self.term_source.strip():
            raise ValueError("a fixed term needs term_source (the publication it comes from)")
        return self

    def catalog_bands(self, band: str) -> tuple[str, ...]:
        """Catalog bands filter ``band`` needs: the zero-point band first, then the colour's."""
        from potpyri_core.catalogs.transforms import colour_bands, transformation
        if self.transform is not None:
            return transformation(self.transform, band).bands
        extra = colour_bands(self.colour) if self.colour else ()
        return tuple(dict.fromkeys((self.band or band, *extra)))


def _sources(mapping: Any) -> Any:
    """A bare catalog name (``r = "ps1"``) is a source with no colour term."""
    if isinstance(mapping, dict):
        return {band: {"catalog": value} if isinstance(value, str) else value for band, value in mapping.items()}
    return mapping


class ZeroPointCatalogs(StrictModel):
    """Which photometric catalog calibrates which filter, with its colour term."""

    north: dict[str, ZeroPointSource]
    """Band -> source (a catalog name or a :class:`ZeroPointSource` table), for fields north of
    ``south_limit_dec``."""
    south: dict[str, ZeroPointSource] = {}
    """Band -> source, south of ``south_limit_dec`` (falls back to north)."""
    south_limit_dec: float = -30.0
    vega_to_ab: dict[str, float] = Field(default_factory=lambda: {**TWOMASS_VEGA_TO_AB, "Y": Y_VEGA_TO_AB})
    """Offsets added to Vega catalog magnitudes to make them AB; default the 2MASS offsets
    (:data:`potpyri_core.catalogs.columns.TWOMASS_VEGA_TO_AB`) and the VISTA Y offset for Y
    made from 2MASS J and H (:data:`~potpyri_core.catalogs.columns.Y_VEGA_TO_AB`)."""

    @field_validator("north", "south", mode="before")
    @classmethod
    def _as_sources(cls, value: Any) -> Any:
        return _sources(value)

    @model_validator(mode="after")
    def _transforms_exist(self) -> ZeroPointCatalogs:
        from potpyri_core.catalogs.transforms import transformation
        for side, mapping in (("north", self.north), ("south", self.south)):
            for band, source in mapping.items():
                if source.transform is not None:
                    try:
                        transformation(source.transform, band)
                    except ValueError as exc:
                        raise ValueError(f"zeropoint.{side}.{band}: {exc}") from exc
        return self

    def source_for(self, band: str, dec: float) -> ZeroPointSource | None:
        """Return the zero-point source for ``band`` at declination ``dec`` (None: no catalog)."""
        if dec < self.south_limit_dec and band in self.south:
            return self.south[band]
        return self.north.get(band)

    def catalog_for(self, band: str, dec: float) -> str | None:
        """Return the catalog source name for ``band`` at declination ``dec``."""
        source = self.source_for(band, dec)
        return source.catalog if source is not None else None


class CalibrationRule(StrictModel):
    """How the frames of one calibration kind are grouped into masters and matched to the
    frames they calibrate."""

    keys: list[Literal["amp", "binning", "filter", "coadds"]]
    """File-list columns that must agree between a master and the frame it calibrates
    (``coadds``: the number of coadds, ``detector.coadds_keyword``)."""
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
    sky_flat_fallback: bool = False
    """When a filter has no FLAT frames, build its flat from the night's science frames of
    that filter (an object-masked sky flat; ``flat_source = "sky"`` always does)."""

    @field_validator("rules", mode="after")
    @classmethod
    def _complete(cls, value: dict[str, CalibrationRule]) -> dict[str, CalibrationRule]:
        return {**_default_rules(), **value}


HeaderValue = str | float | int | bool


class GeometryCCD(StrictModel):
    """One CCD of the simulator's own description of the published focal-plane geometry."""

    name: str
    shape: tuple[int, int]
    """``(nx, ny)`` unbinned pixels."""
    detsec_origin: tuple[int, int]
    """0-based ``(x, y)`` of the CCD's first pixel in the gapless DETSEC mosaic the
    raw headers use (e.g. ``(2048, 0)`` for the second of three 2048-px CCDs)."""
    shift: tuple[float, float] = (0.0, 0.0)
    """Centre of the CCD minus the centre of the reference CCD in unbinned pixels: the
    published centre-to-centre offset (DRAGONS convention)."""
    rotation_deg: float = 0.0
    """Published rotation about the CCD centre (counter-clockwise). The simulator does not
    render rotations and refuses one that moves a pixel by more than 0.25 binned px."""


class GeometryBinning(StrictModel):
    """Raw extension layout at one binning, in binned columns."""

    prescan: int = Field(default=0, ge=0)
    """Columns before the data (after the overscan when ``overscan_first``)."""
    overscan: int = Field(default=0, ge=0)
    rows_before: int = Field(default=0, ge=0)
    """Raw rows below the data rows (not read from the light-sensitive area the amplifier
    covers, e.g. the unilluminated rows a pre-processed frame keeps)."""
    rows_after: int = Field(default=0, ge=0)
    """Raw rows above the data rows."""


class GeometryAmplifier(StrictModel):
    """How one amplifier reads its part of a CCD into its raw extension (simulator side)."""

    hdu: int | str
    ccd: int = Field(ge=0)
    columns: tuple[int, int]
    """First and last CCD column (1-based, unbinned) the amplifier reads."""
    rows: tuple[int, int]
    """First and last CCD row (1-based, unbinned)."""
    flip_x: bool = False
    """Raw columns run from the highest CCD column to the lowest (DETSEC written reversed)."""
    flip_y: bool = False
    """Raw rows run from the highest CCD row to the lowest (DETSEC written reversed)."""
    overscan_first: bool = False
    """Overscan columns come before the data columns in the raw extension."""
    gain: float = Field(gt=0)
    readnoise: float = Field(ge=0)
    bias_adu: float
    """Bias level (ADU) of this amplifier."""
    when: dict[str, str] = {}
    """Header patterns that select this amplifier (as ``Amplifier.when``)."""
    cards: dict[str, HeaderValue] = {}
    """Extra cards of this amplifier's extension (EXTNAME, AMPNAME, ...)."""
    layout: dict[int, GeometryBinning] = {}
    """This amplifier's raw layout per binning when it differs from the geometry's
    ``binnings`` (e.g. the two sides of a camera with the unread columns on opposite sides)."""


class SimulationGeometry(StrictModel):
    """The simulator's own description of the published detector geometry.

    Read only by :mod:`potpyri_core.simulate.geometry` (never by the reduction), so that a
    wrong gap, flip or section in the reduction's settings does not cancel out in a simulated
    night; ``tests/optical/test_geometry.py`` compares the two descriptions.
    """

    source: str
    """Where the numbers come from (document, table, header)."""
    reference_ccd: int = 0
    """CCD whose centre the ``shift`` of every CCD is measured from."""
    ccds: list[GeometryCCD] = Field(min_length=1)
    amplifiers: list[GeometryAmplifier] = Field(min_length=1)
    binnings: dict[int, GeometryBinning]
    """Binnings with published raw layouts; others cannot be simulated."""
    section_cards: list[Literal["DATASEC", "BIASSEC", "DETSEC", "CCDSEC"]] = ["DATASEC", "BIASSEC", "DETSEC"]
    """Section keywords the real raw extensions carry."""
    binning_format: str = "{b} {b}"
    """How the raw files write the binning keyword (``b``: the binning), e.g. ``"{b},{b}"``."""

    @model_validator(mode="after")
    def _ccds_exist(self) -> SimulationGeometry:
        for amp in self.amplifiers:
            if amp.ccd >= len(self.ccds):
                raise ValueError(f"amplifier {amp.hdu}: ccd {amp.ccd} is not in ccds (0..{len(self.ccds) - 1})")
            if set(amp.layout) - set(self.binnings):
                raise ValueError(f"amplifier {amp.hdu}: layout for binnings {sorted(set(amp.layout) - set(self.binnings))} "
                                 f"not in binnings {sorted(self.binnings)}")
        return self


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
    data_cube: bool = False
    """Write the pixels as a cube of one read ``(1, ny, nx)``, as some NIR archives do (F2)."""
    file_name: str = "{kind}{number:04d}.fits"
    """Raw file name pattern; fields ``kind``, ``number``, ``date`` (YYYYMMDD)."""
    geometry: SimulationGeometry | None = None
    """The published geometry the simulator packs raw frames with; without it the frames
    are cut as the reduction's own settings describe (no independent check of them)."""


class HeaderRule(StrictModel):
    """Values one raw header keyword may take (``[header_rules.EXPTIME]`` in the TOML).

    A file whose value breaks the rule is BAD, the reason naming the file, the keyword, the
    value and the rule; a file without the keyword is not checked by it (missing
    classification keywords are reported by the classification itself). Numeric bounds make
    the value a finite number; ``allowed`` and ``pattern`` check it as text.
    """

    gt: float | None = None
    """The value must be greater than this."""
    ge: float | None = None
    """The value must be at least this."""
    lt: float | None = None
    """The value must be less than this."""
    le: float | None = None
    """The value must be at most this."""
    allowed: list[str | float] | None = None
    """The only values allowed: numbers compared as numbers, text case-insensitively."""
    pattern: str | None = None
    """Regular expression the whole (stripped) text value must match."""
    each: bool = False
    """The value is a list (``CCDSUM = '2 2'``, ``'2x2'``, ``'2,2'``): check every item."""
    kinds: list[Literal["bias", "dark", "flat", "science", "spec"]] = []
    """Frame types the rule applies to (empty: all)."""

    @field_validator("allowed")
    @classmethod
    def _one_kind(cls, value: list[str | float] | None) -> list[str | float] | None:
        if value and len({isinstance(v, str) for v in value}) > 1:
            raise ValueError(f"allowed values {value} mix numbers and text")
        return value

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern {value!r} is not a regular expression: {exc}") from exc
        return value

    def numeric(self) -> bool:
        """True when the rule bounds the value as a number."""
        return any(bound is not None for bound in (self.gt, self.ge, self.lt, self.le)) or any(
            not isinstance(v, str) for v in self.allowed or [])

    def applies_to(self, kind: str) -> bool:
        """True when the rule checks frames of type ``kind`` (``SCIENCE``, ``BIAS``, ...)."""
        return not self.kinds or kind.lower() in self.kinds


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
    fringe_bands: list[str] = []
    """Bands (names :meth:`band_of` gives) whose science frames fringe: the fringe stage
    builds a fringe frame for them and subtracts it; frames of other bands are untouched."""
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
    header_rules: dict[str, HeaderRule] = {}
    """Keyword -> the values it may take: a raw file whose value breaks a rule is BAD."""
    astrometry_per_ccd: bool = False
    """Give every CCD of a frame its own pixel map before the frame's WCS (shift, rotation and
    scale fitted against the catalog after the frame's solution): for mosaics whose CCDs are
    rotated or offset by more than the astrometric tolerance (DEIMOS). The frames of a target
    and filter are then stacked into one mosaic whatever their CCD (chip-per-file cameras)."""

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
