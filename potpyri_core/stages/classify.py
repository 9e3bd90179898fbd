"""Read the classification header of a raw file and classify it from the instrument's rules."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

from astropy.io import fits
from astropy.time import Time
from astropy.utils.exceptions import AstropyUserWarning

from potpyri_core.frames import Classification
from potpyri_core.settings import InstrumentSettings

N_DATA_KEY = "POTNDATA"
"""Pseudo-keyword: number of HDUs with a 2-D image (0 for header-only extracts)."""
N_EXTENSIONS_KEY = "POTNEXT"
"""Pseudo-keyword added to the classification header: number of extensions (1 for a
single-HDU file with data)."""


class MissingKeywordError(KeyError):
    """A keyword the instrument needs is missing from a file's header."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def read_header(instrument: InstrumentSettings, path: Path) -> fits.Header:
    """Read the header used for classification.

    The header of ``keywords.header_ext`` is merged with the scalar keywords of
    ``keywords.merge_ext`` (the main header wins) and with the binning extension; the
    number of image extensions is recorded as ``POTNEXT``.

    Parameters
    ----------
    instrument : InstrumentSettings
        The instrument the file should belong to.
    path : Path
        The raw file (plain, .gz, .bz2 or .fz).

    Returns
    -------
    astropy.io.fits.Header
        A new header; the file is opened read-only and never modified.
    """
    with warnings.catch_warnings():
        # astropy only warns about a truncated file; for sorting that is an error
        warnings.simplefilter("error", AstropyUserWarning)
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)  # non-standard cards in real headers
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            return merged_header(instrument, hdul)


def merged_header(instrument: InstrumentSettings, hdul: fits.HDUList) -> fits.Header:
    """The classification header of an open raw file (see :func:`read_header`)."""
    kw = instrument.keywords
    header = hdul[kw.header_ext].header.copy()
    for ext in (kw.merge_ext, kw.binning_ext):
        if ext is not None and ext != kw.header_ext and ext < len(hdul):
            for card in hdul[ext].header.cards:
                if card.keyword and card.keyword not in header and card.keyword not in ("COMMENT", "HISTORY"):
                    header[card.keyword] = card.value
    n_extensions = sum(1 for _ in hdul) - 1
    n_data = sum(1 for hdu in hdul if hdu.header.get("NAXIS", 0) >= 2)
    header[N_EXTENSIONS_KEY] = n_extensions or int(n_data > 0)
    header[N_DATA_KEY] = n_data
    return header


def first_value(header: fits.Header, keys: list[str]) -> object | None:
    """Return the value of the first keyword of ``keys`` present and not blank."""
    for key in keys:
        if key in header:
            value = header[key]
            if value is not None and str(value).strip() != "":
                return value
    return None


def require(header: fits.Header, keys: list[str], what: str, path: Path) -> object:
    """Like :func:`first_value`, but a missing value raises :class:`MissingKeywordError`."""
    value = first_value(header, keys)
    if value is None:
        raise MissingKeywordError(
            f"{path.name}: missing keyword for the {what}: expected one of {', '.join(keys)}"
        )
    return value


def exposure_time(instrument: InstrumentSettings, header: fits.Header, path: Path) -> float:
    """Return the exposure time in seconds (with multipliers and date fallbacks)."""
    kw = instrument.keywords
    value = first_value(header, kw.exptime)
    if value is None:
        for pair in kw.exptime_from_dates:
            start, end = (first_value(header, [k]) for k in pair)
            if start is not None and end is not None:
                return float((Time(str(end)) - Time(str(start))).sec)
        names = kw.exptime + [k for pair in kw.exptime_from_dates for k in pair]
        raise MissingKeywordError(
            f"{path.name}: missing keyword for the exposure time: expected one of {', '.join(names)}"
        )
    seconds = float(value)
    for key in kw.exptime_multiply:
        seconds *= float(require(header, [key], f"exposure multiplier {key}", path))
    return seconds


def filter_band(instrument: InstrumentSettings, header: fits.Header, path: Path) -> str:
    """Return the band of the filter in the beam (the first wheel that is not open)."""
    kw = instrument.keywords
    seen = []
    for key in kw.filter:
        if key in header and str(header[key]).strip():
            value = str(header[key]).strip()
            seen.append(value)
            if not any(ignore in value.lower() for ignore in kw.filter_ignore):
                return instrument.band_of(value)
    if not seen:
        raise MissingKeywordError(f"{path.name}: missing keyword for the filter: expected one of {', '.join(kw.filter)}")
    return "open"


def observation_mjd(instrument: InstrumentSettings, header: fits.Header) -> float:
    """Return the MJD of the observation start, NaN when the header has no time."""
    kw = instrument.keywords
    value = first_value(header, kw.mjd)
    if value is not None:
        try:
            return float(value)
        except ValueError:
            pass
    if kw.date_time:
        date, clock = (first_value(header, [k]) for k in kw.date_time)
        if date is not None:
            text = str(date) if clock is None or "T" in str(date) else f"{date}T{clock}"
            try:
                return float(Time(text, format="isot", scale="utc").mjd)
            except ValueError:
                return math.nan
    return math.nan


def binning(instrument: InstrumentSettings, header: fits.Header) -> str:
    """Return the binning as ``"NxM"`` (``"1x1"`` when the header does not say)."""
    value = first_value(header, instrument.keywords.binning)
    if value is None:
        return "1x1"
    numbers = re.findall(r"\d+", str(value))
    return "x".join(numbers[:2]) if len(numbers) >= 2 else f"{numbers[0]}x{numbers[0]}" if numbers else "1x1"


def amplifiers(instrument: InstrumentSettings, header: fits.Header) -> str:
    """Return the amplifier mode (keyword value, or the count of image extensions)."""
    value = first_value(header, instrument.keywords.amp)
    if value is None:
        value = header.get(N_EXTENSIONS_KEY, 1)
    return re.sub(r"[^A-Za-z0-9:+\-]", "", str(value)) or "1"


def clean_target(value: object) -> str:
    """Make a target name safe for file names and the whitespace-separated file list."""
    text = re.sub(r"[^A-Za-z0-9.+\-]+", "_", str(value).strip()).strip("_")
    return text or "unknown"


def frame_type(instrument: InstrumentSettings, header: fits.Header) -> tuple[str, str]:
    """Return ``(type, reason)`` from the instrument's frame-typing rules."""
    for name, rules in instrument.frame_types.rules_in_order():
        for rule in rules:
            if rule.matches(header):
                return name, rule.describe() if name in ("BAD", "SPEC") else ""
    return "BAD", "matches no frame-typing rule of " + instrument.name


def classify(instrument: InstrumentSettings, header: fits.Header, path: Path) -> Classification:
    """Classify one file from its header.

    Parameters
    ----------
    instrument : InstrumentSettings
        The instrument's validated settings.
    header : astropy.io.fits.Header
        The classification header (:func:`read_header`).
    path : Path
        The file, for the file name and messages.

    Returns
    -------
    Classification
        A BAD classification with the reason when a required keyword is missing or the file
        belongs to another instrument; never raises for a readable header.
    """
    instrument = instrument.for_header(header)
    inst_value = first_value(header, instrument.keywords.instrument)
    target = clean_target(first_value(header, instrument.keywords.target) or "unknown")
    base = {"file": path.name, "target": target, "amp": amplifiers(instrument, header), "binning": binning(instrument, header)}
    if inst_value is None or not instrument.identifies(str(inst_value)):
        reason = f"instrument keyword {'/'.join(instrument.keywords.instrument)}={inst_value!r} is not {instrument.name}"
        return Classification(**base, filter="?", exptime=math.nan, type="BAD", time=math.nan, reason=reason)
    kind, reason = frame_type(instrument, header)
    expected = sum(1 for a in instrument.detector.amplifiers if isinstance(a.hdu, int) and a.applies_to(header))
    found = header.get(N_DATA_KEY, 0)
    if 0 < found < expected:
        reason = f"{path.name}: {found} image extensions, {instrument.name} writes {expected} (incomplete file)"
        return Classification(**base, filter="?", exptime=math.nan, type="BAD", time=math.nan, reason=reason)
    try:
        band = "none" if kind in ("BIAS", "DARK") else filter_band(instrument, header, path)
        exptime = exposure_time(instrument, header, path)
    except (MissingKeywordError, ValueError) as exc:
        return Classification(**base, filter="?", exptime=math.nan, type="BAD", time=math.nan, reason=str(exc))
    if kind == "SCIENCE" and exptime < instrument.min_science_exptime:
        kind, reason = "BAD", f"exposure {exptime:g} s < {instrument.min_science_exptime:g} s (acquisition)"
    return Classification(
        **base, filter=band, exptime=exptime, type=kind, time=observation_mjd(instrument, header), reason=reason
    )
