"""Read the classification header of a raw file and classify it from the instrument's rules.

Every header value the classification uses is read through :mod:`potpyri_core.headervalues`:
a missing, unparsable or impossible value makes the file BAD with a reason naming the file,
the keyword and the value, and never raises out of :func:`classify`.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from astropy.io import fits
from astropy.time import Time

from potpyri_core import headervalues as hv
from potpyri_core.frames import Classification
from potpyri_core.headervalues import HeaderValueError
from potpyri_core.rawio import read_headers
from potpyri_core.safenames import safe_component
from potpyri_core.settings import InstrumentSettings

N_DATA_KEY = "POTNDATA"
"""Pseudo-keyword: number of HDUs with a 2-D image (0 for header-only extracts)."""
N_EXTENSIONS_KEY = "POTNEXT"
"""Pseudo-keyword added to the classification header: number of extensions (1 for a
single-HDU file with data)."""
FINGERPRINT_KEY = "POTFPRNT"
"""Pseudo-keyword: digest of the file's headers and data sizes (duplicate candidates)."""
MAX_EXPTIME = 86400.0
"""Longest exposure (s) accepted: one exposure cannot outlast a day."""


def read_header(instrument: InstrumentSettings, path: Path) -> fits.Header:
    """Read the header used for classification.

    The header of ``keywords.header_ext`` is merged with the keywords of
    ``keywords.merge_ext`` (the main header wins) and with the binning extension; the
    number of image extensions is recorded as ``POTNEXT``, the number of image HDUs as
    ``POTNDATA`` and a content fingerprint as ``POTFPRNT``. The file is read once
    (:func:`potpyri_core.rawio.read_headers`: compressed streams are checksum-verified,
    data are skipped, truncation is detected).

    Parameters
    ----------
    instrument : InstrumentSettings
        The instrument the file should belong to.
    path : Path
        The raw file (plain, .gz, .bz2 or .fz).

    Returns
    -------
    astropy.io.fits.Header
        A new header; the file is opened read-only and never modified. Card values are
        parsed lazily, so an unparsable card is reported by :func:`classify`.

    Raises
    ------
    potpyri_core.rawio.RawReadError
        Damaged compression (bad CRC), truncation, not a FITS file.
    """
    raw = read_headers(path)
    header = merge_headers(instrument, [h.header for h in raw.hdus], sum(h.is_image for h in raw.hdus))
    header[FINGERPRINT_KEY] = raw.fingerprint
    return header


def merged_header(instrument: InstrumentSettings, hdul: fits.HDUList) -> fits.Header:
    """The classification header of an open raw file (see :func:`read_header`)."""
    return merge_headers(instrument, [hdu.header for hdu in hdul],
                         sum(1 for hdu in hdul if hdu.header.get("NAXIS", 0) >= 2))


def merge_headers(instrument: InstrumentSettings, headers: list[fits.Header], n_data: int) -> fits.Header:
    """Merge the main header with ``merge_ext`` and ``binning_ext`` (the main header wins).

    Cards are copied as written, so an unparsable card is carried, not parsed, here.

    Parameters
    ----------
    instrument : InstrumentSettings
        Names the extensions.
    headers : list of astropy.io.fits.Header
        Every HDU's header, in file order.
    n_data : int
        Number of HDUs holding an image.
    """
    kw = instrument.keywords
    header = headers[kw.header_ext].copy() if kw.header_ext < len(headers) else fits.Header()
    for ext in (kw.merge_ext, kw.binning_ext):
        if ext is not None and ext != kw.header_ext and ext < len(headers):
            for card in headers[ext].cards:
                if card.keyword and card.keyword not in header and card.keyword not in ("COMMENT", "HISTORY"):
                    header.append(copy.copy(card))
    n_extensions = len(headers) - 1
    header[N_EXTENSIONS_KEY] = n_extensions or int(n_data > 0)
    header[N_DATA_KEY] = n_data
    return header


def keywords_read(instrument: InstrumentSettings) -> list[str]:
    """Every keyword the classification of ``instrument`` reads (keyword lists, overrides,
    frame-typing rules), in a stable order."""
    kw = instrument.keywords
    names: list[str] = [*kw.instrument, *kw.target, *kw.exptime, *kw.exptime_multiply, *kw.filter, *kw.mjd,
                        *kw.binning, *kw.amp]
    if instrument.detector.coadds_keyword:
        names.append(instrument.detector.coadds_keyword)
    names += [k for pair in kw.exptime_from_dates for k in pair] + list(kw.date_time or ())
    for override in kw.overrides:
        names += list(override.when)
        names += [k for field in ("target", "exptime", "filter", "binning", "amp") for k in getattr(override, field) or []]
    for _, rules in instrument.frame_types.rules_in_order():
        names += [k for rule in rules for k in rule.when]
    return list(dict.fromkeys(names))


def _missing(path: Path, keys: Iterable[str], what: str) -> HeaderValueError:
    return HeaderValueError.missing(path.name, list(keys), what)


def exposure_time(instrument: InstrumentSettings, header: Mapping[str, Any], path: Path, kind: str) -> float:
    """Return the exposure time in seconds (with multipliers and date fallbacks).

    Science, flat and dark exposures must be > 0 s, every exposure finite and at most
    :data:`MAX_EXPTIME`; a logical or non-numeric value is refused.

    Raises
    ------
    HeaderValueError
        Missing, unparsable or impossible value (the message names file, keyword, value).
    """
    kw = instrument.keywords
    positive = kind in ("SCIENCE", "FLAT", "DARK")
    found = hv.first_value(header, kw.exptime, path.name)
    if found is None:
        for pair in kw.exptime_from_dates:
            start, end = (hv.first_value(header, [k], path.name) for k in pair)
            if start is not None and end is not None:
                seconds = _seconds_between(start, end, path)
                return hv.number(seconds, "/".join(pair), path.name, 0.0, positive, MAX_EXPTIME)
        raise _missing(path, kw.exptime + [k for pair in kw.exptime_from_dates for k in pair], "exposure time")
    key, value = found
    seconds = hv.number(value, key, path.name, 0.0, positive, MAX_EXPTIME)
    for factor_key in kw.exptime_multiply:
        factor = hv.first_value(header, [factor_key], path.name)
        if factor is None:
            raise _missing(path, [factor_key], f"exposure multiplier {factor_key}")
        seconds *= hv.number(factor[1], factor_key, path.name, 0.0, True)
    return hv.number(seconds, key, path.name, 0.0, positive, MAX_EXPTIME)


def _seconds_between(start: tuple[str, Any], end: tuple[str, Any], path: Path) -> float:
    times = []
    for key, value in (start, end):
        try:
            times.append(Time(hv.text(value, key, path.name)))
        except ValueError as exc:
            raise HeaderValueError(path.name, key, repr(hv.printable(str(value))), "expected an ISO date") from exc
    return float((times[1] - times[0]).sec)


def filter_band(instrument: InstrumentSettings, header: Mapping[str, Any], path: Path) -> str:
    """Return the band of the filter in the beam (the first wheel that is not open), as a
    safe name component (:func:`potpyri_core.safenames.safe_component`)."""
    kw = instrument.keywords
    seen = False
    for key in kw.filter:
        found = hv.first_value(header, [key], path.name)
        if found is None:
            continue
        value = hv.text(found[1], key, path.name)
        seen = True
        if not any(ignore in value.lower() for ignore in kw.filter_ignore):
            return safe_component(instrument.band_of(value))
    if not seen:
        raise _missing(path, kw.filter, "filter")
    return "open"


def observation_mjd(instrument: InstrumentSettings, header: Mapping[str, Any], path: Path) -> float:
    """Return the MJD of the observation start, NaN when the header has no time.

    Raises
    ------
    HeaderValueError
        An unparsable or non-finite MJD, or a date that is not ISO.
    """
    kw = instrument.keywords
    found = hv.first_value(header, kw.mjd, path.name)
    if found is not None:
        return hv.number(found[1], found[0], path.name, 0.0, False, 1e6)
    if kw.date_time:
        date = hv.first_value(header, [kw.date_time[0]], path.name)
        clock = hv.first_value(header, [kw.date_time[1]], path.name)
        if date is not None:
            day = hv.text(date[1], date[0], path.name)
            text = day if clock is None or "T" in day else f"{day}T{hv.text(clock[1], clock[0], path.name)}"
            try:
                return float(Time(text, format="isot", scale="utc").mjd)
            except ValueError as exc:
                keys = "/".join(kw.date_time)
                raise HeaderValueError(path.name, keys, repr(hv.printable(text)), "expected an ISO date and time") from exc
    return math.nan


def binning(instrument: InstrumentSettings, header: Mapping[str, Any], path: Path | None = None) -> str:
    """Return the binning as ``"NxM"``; ``"1x1"`` only for instruments that name no binning
    keyword. ``path`` names the file in messages (assembly calls this without one).

    Raises
    ------
    HeaderValueError
        The instrument's binning keyword is missing, unparsable or not a binning.
    """
    keys = instrument.keywords.binning
    if not keys:
        return "1x1"
    name = path.name if path is not None else "header"
    found = hv.first_value(header, keys, name)
    if found is None:
        raise HeaderValueError.missing(name, keys, "binning (not assumed 1x1)")
    return hv.binning(found[1], found[0], name)


def amplifiers(instrument: InstrumentSettings, header: Mapping[str, Any], path: Path) -> str:
    """Return the amplifier mode (keyword value, or the count of image extensions)."""
    found = hv.first_value(header, instrument.keywords.amp, path.name)
    value = hv.text(found[1], found[0], path.name) if found is not None else header.get(N_EXTENSIONS_KEY, 1)
    return re.sub(r"[^A-Za-z0-9:+\-]", "", str(value)) or "1"


def target_name(instrument: InstrumentSettings, header: Mapping[str, Any], path: Path) -> str:
    """Return the target as a safe name component (``unknown`` when the header has none)."""
    found = hv.first_value(header, instrument.keywords.target, path.name)
    return safe_component(hv.text(found[1], found[0], path.name)) if found is not None else "unknown"


def frame_type(instrument: InstrumentSettings, header: fits.Header) -> tuple[str, str]:
    """Return ``(type, reason)`` from the instrument's frame-typing rules."""
    for name, rules in instrument.frame_types.rules_in_order():
        for rule in rules:
            if rule.matches(header):
                return name, rule.describe() if name in ("BAD", "SPEC") else ""
    return "BAD", "matches no frame-typing rule of " + instrument.name


def classify(instrument: InstrumentSettings, header: Mapping[str, Any], path: Path) -> Classification:
    """Classify one file from its header.

    Parameters
    ----------
    instrument : InstrumentSettings
        The instrument's validated settings.
    header : astropy.io.fits.Header or Mapping
        The classification header (:func:`read_header`).
    path : Path
        The file, for the file name and messages.

    Returns
    -------
    Classification
        A BAD classification with the reason when a value the classification reads is
        missing, unparsable or impossible, or the file belongs to another instrument;
        never raises for a header.
    """
    try:
        return _classify(instrument, header, path)
    except HeaderValueError as exc:
        return Classification(path.name, "unknown", "?", "?", "?", math.nan, "BAD", math.nan, str(exc))


def _classify(instrument: InstrumentSettings, header: Mapping[str, Any], path: Path) -> Classification:
    hv.check_parsable(header, keywords_read(instrument), path.name)  # rules and overrides read these raw
    instrument = instrument.for_header(header)
    found = hv.first_value(header, instrument.keywords.instrument, path.name)
    inst_value = None if found is None else hv.text(found[1], found[0], path.name)
    target = target_name(instrument, header, path)
    amp = amplifiers(instrument, header, path)
    if inst_value is None or not instrument.identifies(inst_value):
        reason = f"instrument keyword {'/'.join(instrument.keywords.instrument)}={inst_value!r} is not {instrument.name}"
        return Classification(path.name, target, "?", amp, "?", math.nan, "BAD", math.nan, reason)
    base = {"file": path.name, "target": target, "amp": amp, "binning": binning(instrument, header, path)}
    kind, reason = frame_type(instrument, header)
    expected = sum(1 for a in instrument.detector.amplifiers if isinstance(a.hdu, int) and a.applies_to(header))
    found_data = header.get(N_DATA_KEY, 0)
    if 0 < found_data < expected:
        reason = f"{path.name}: {found_data} image extensions, {instrument.name} writes {expected} (incomplete file)"
        return Classification(**base, filter="?", exptime=math.nan, type="BAD", time=math.nan, reason=reason)
    band = "none" if kind in ("BIAS", "DARK") else filter_band(instrument, header, path)
    exptime = exposure_time(instrument, header, path, kind)
    if kind == "SCIENCE" and exptime < instrument.min_science_exptime:
        kind, reason = "BAD", f"exposure {exptime:g} s < {instrument.min_science_exptime:g} s (acquisition)"
    if kind != "BAD":
        for keyword, rule in instrument.header_rules.items():
            if rule.applies_to(kind):
                hv.check_rule(header, keyword, rule, path.name, instrument.name)
    return Classification(**base, filter=band, exptime=exptime, type=kind,
                          time=observation_mjd(instrument, header, path), reason=reason,
                          coadds=coadd_count(instrument, header, path))


def coadd_count(instrument: InstrumentSettings, header: Mapping[str, Any], path: Path) -> int:
    """Coadds summed into the file (``detector.coadds_keyword``; 1 without the keyword in
    the settings or the header).

    Raises
    ------
    HeaderValueError
        Unparsable or non-positive value.
    """
    key = instrument.detector.coadds_keyword
    found = hv.first_value(header, [key], path.name) if key else None
    if found is None:
        return 1
    value = hv.number(found[1], key, path.name, 1.0)
    if value != int(value):
        raise HeaderValueError(path.name, key, hv.printable(str(found[1])), "expected a whole number of coadds")
    return int(value)
