"""Raw format, both ways: assemble amplifiers into a frame in electrons, and pack a
simulated frame into amplifiers.

Both directions use one description of the geometry (:class:`AmpPlacement`), built from
the instrument settings and, when present, the per-extension section keywords, so that the
simulator and the reduction cannot disagree about where a pixel goes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from potpyri_core.frames import NO_AMP, AmpFacts, Frame
from potpyri_core.maskbits import Bit
from potpyri_core.settings import Amplifier, InstrumentSettings, parse_section
from potpyri_core.stages import nir


@dataclass(frozen=True)
class AmpPlacement:
    """Where one amplifier's pixels are in its raw extension and in the mosaic (binned px).

    Slices are 0-based numpy slices ``[y, x]``.
    """

    amp: Amplifier
    data_y: slice
    data_x: slice
    bias_x: slice | None
    mosaic_y: slice
    mosaic_x: slice
    flip_x: bool
    flip_y: bool
    raw_shape: tuple[int, int]


def _binned(lo: int, hi: int, factor: int) -> slice:
    """Convert a 1-based inclusive unbinned range to a 0-based binned slice."""
    lo, hi = min(lo, hi), max(lo, hi)
    return slice((lo - 1) // factor, hi // factor)


def parse_binning(text: str) -> tuple[int, int]:
    """Parse ``"2x2"`` into ``(bx, by)``."""
    bx, by = (int(v) for v in text.split("x"))
    return bx, by


def placements(
    instrument: InstrumentSettings, header: Any, ext_headers: dict[int | str, Any], binning: tuple[int, int]
) -> list[AmpPlacement]:
    """Compute the placement of every amplifier that applies to a frame.

    Parameters
    ----------
    instrument : InstrumentSettings
        The instrument's settings.
    header : Mapping
        The merged main header (selects amplifiers with ``Amplifier.when``).
    ext_headers : dict
        Header of each amplifier's extension keyed by ``Amplifier.hdu`` (may be empty
        mappings when packing: the settings' sections are used).
    binning : tuple of int
        ``(bx, by)``.
    """
    det = instrument.detector
    bx, by = binning
    amps = [a for a in det.amplifiers if a.applies_to(header)]
    if not amps:
        raise ValueError(f"no amplifier of {instrument.name} applies to this frame (check Amplifier.when)")
    offsets = {ccd: tuple(off) for ccd, off in enumerate(det.ccd_offsets)}
    used = [offsets.get(a.ccd, (0.0, 0.0)) for a in amps]
    min_x, min_y = min(o[0] for o in used), min(o[1] for o in used)
    out = []
    for amp, offset in zip(amps, used, strict=True):
        h = ext_headers.get(amp.hdu, {})
        use_header = det.sections_from_header

        def section(key: str, fallback: str | None, h: Any = h, use_header: bool = use_header):
            """Return (section, came from the header) for a section keyword."""
            if use_header and key in h:
                return parse_section(h[key]), True
            return (parse_section(fallback) if fallback is not None else None), False

        data, data_from_header = section("DATASEC", amp.datasec)
        if data is None:
            raise ValueError(f"{instrument.name} amplifier {amp.name}: no DATASEC in the header or the settings")
        fx, fy = (1, 1) if data_from_header else (bx, by)
        data_x, data_y = _binned(data[0], data[1], fx), _binned(data[2], data[3], fy)
        bias, bias_from_header = section("BIASSEC", amp.biassec)
        bias_x = None
        if bias is not None:
            bias_x = _binned(bias[0], bias[1], 1 if bias_from_header else bx)
        det_sec, _ = section("DETSEC", amp.detsec)
        if det_sec is None:
            det_sec = (1, (data_x.stop - data_x.start) * bx, 1, (data_y.stop - data_y.start) * by)
        x1, x2, y1, y2 = det_sec
        mx = round_half_up((min(x1, x2) - 1 + offset[0] - min_x) / bx)
        my = round_half_up((min(y1, y2) - 1 + offset[1] - min_y) / by)
        mosaic_x = slice(mx, mx + (data_x.stop - data_x.start))
        mosaic_y = slice(my, my + (data_y.stop - data_y.start))
        width = max(data_x.stop, bias_x.stop if bias_x else 0)
        out.append(
            AmpPlacement(amp, data_y, data_x, bias_x, mosaic_y, mosaic_x, x1 > x2, y1 > y2, (data_y.stop, width))
        )
    # a window (region of interest) starts the mosaic at its first row and column
    x0, y0 = min(p.mosaic_x.start for p in out), min(p.mosaic_y.start for p in out)
    return [replace(p, mosaic_x=slice(p.mosaic_x.start - x0, p.mosaic_x.stop - x0),
                    mosaic_y=slice(p.mosaic_y.start - y0, p.mosaic_y.stop - y0)) for p in out]


def round_half_up(value: float) -> int:
    """Round to the nearest integer, halves up (the convention for placing CCDs on a binned grid)."""
    return int(np.floor(value + 0.5 + 1e-9))


def mosaic_shape(places: list[AmpPlacement]) -> tuple[int, int]:
    """Shape ``(ny, nx)`` of the mosaic that holds all placements."""
    return max(p.mosaic_y.stop for p in places), max(p.mosaic_x.stop for p in places)


def overscan_level(raw: np.ndarray, place: AmpPlacement, order: int = 3) -> np.ndarray:
    """Per-row overscan level: clipped row medians smoothed by a Legendre fit.

    Returns one value per row of the data section (zeros when the amplifier has no
    overscan; NIR reference pixels are :func:`potpyri_core.stages.nir.reference_level`).
    """
    nrows = place.data_y.stop - place.data_y.start
    if place.bias_x is None:
        return np.zeros(nrows, dtype=np.float32)
    cols = raw[place.data_y, place.bias_x]
    # the first two overscan columns next to the data carry charge-transfer tails
    if place.bias_x.start >= place.data_x.stop and cols.shape[1] > 6:
        cols = cols[:, 2:]
    elif cols.shape[1] > 6:
        cols = cols[:, :-2]
    rows = np.median(cols, axis=1)
    x = np.linspace(-1, 1, rows.size)
    keep = np.ones(rows.size, bool)
    for _ in range(3):
        coef = np.polynomial.legendre.legfit(x[keep], rows[keep], order)
        fit = np.polynomial.legendre.legval(x, coef)
        resid = rows - fit
        sigma = 1.4826 * np.median(np.abs(resid[keep])) + 1e-6
        keep = np.abs(resid) < 4 * sigma
    return fit.astype(np.float32)


def _ext_headers(instrument: InstrumentSettings, hdul: fits.HDUList) -> dict[int | str, fits.Header]:
    headers: dict[int | str, fits.Header] = {}
    for amp in instrument.detector.amplifiers:
        try:
            headers[amp.hdu] = hdul[amp.hdu].header
        except (KeyError, IndexError):
            continue
    return headers


def assemble(instrument: InstrumentSettings, hdul: fits.HDUList, path: Path, header: fits.Header) -> Frame:
    """Assemble a raw file into one mosaic frame in electrons.

    Parameters
    ----------
    instrument : InstrumentSettings
        The instrument's settings.
    hdul : astropy.io.fits.HDUList
        The open raw file.
    path : Path
        The raw file, for messages.
    header : astropy.io.fits.Header
        The merged classification header.

    Returns
    -------
    Frame
        Overscan-subtracted, trimmed, gain-corrected mosaic (e-), with saturated and no-data
        pixels flagged, the read-noise map, and the header WCS moved to mosaic pixels.
    """
    from potpyri_core.stages.classify import binning as binning_of

    det = instrument.detector
    binning = parse_binning(binning_of(instrument, header))
    ext_headers = _ext_headers(instrument, hdul)
    places = placements(instrument, header, ext_headers, binning)
    shape = mosaic_shape(places)
    data = np.zeros(shape, np.float32)
    amp_map = np.full(shape, NO_AMP, np.uint8)
    mask = np.full(shape, int(Bit.NO_DATA), np.uint16)
    amps: list[AmpFacts] = []
    sums = det.saturation_times_nreads
    n_coadds = nir.coadds(det, header)
    reads = (float(header[sums]) if sums and sums in header else 1.0) * n_coadds
    wcs_header = None
    for index, place in enumerate(places):
        ext = hdul[place.amp.hdu]
        if ext.data is None:
            raise ValueError(f"{path.name}: extension {place.amp.hdu} has no pixels")
        raw = np.asarray(ext.data, dtype=np.float32)
        if raw.ndim == 3:  # NIR up-the-ramp cubes: the last read
            raw = raw[-1]
        facts, sat_adu, nonlin_adu = amplifier_facts(instrument, place.amp, ext.header, header, reads)
        amps.append(facts)
        pix = raw[place.data_y, place.data_x]
        if place.bias_x is None and det.reference_rows > 0:
            level = nir.reference_level(raw, place.data_y, place.data_x, det.reference_rows, det.output_channels)
        else:
            level = overscan_level(raw, place)[:, None]
        electrons = nir.linearise(pix - level, det.nonlinearity, n_coadds) * facts.gain
        bits = np.where(pix >= sat_adu, int(Bit.SATURATED), 0).astype(np.uint16)
        if nonlin_adu is not None:
            bits |= np.where((pix >= nonlin_adu) & (bits == 0), int(Bit.NONLINEAR), 0).astype(np.uint16)
        bits[: place.amp.readout_start_rows] |= int(Bit.BAD)
        if place.flip_x:
            electrons, bits = electrons[:, ::-1], bits[:, ::-1]
        if place.flip_y:
            electrons, bits = electrons[::-1], bits[::-1]
        data[place.mosaic_y, place.mosaic_x] = electrons
        amp_map[place.mosaic_y, place.mosaic_x] = index
        mask[place.mosaic_y, place.mosaic_x] = bits
        h = ext.header
        if wcs_header is None and not (place.flip_x or place.flip_y) and "CTYPE1" in h:
            wcs = WCS(h, relax=True, naxis=2)  # a cube of reads: the image axes only
            wcs.wcs.crpix[0] += place.mosaic_x.start - place.data_x.start
            wcs.wcs.crpix[1] += place.mosaic_y.start - place.data_y.start
            wcs_header = wcs.to_header(relax=True)
    mask |= saturation_halo(mask)
    if det.illuminated_radius is not None:
        mask |= outside_circle(shape, det.illuminated_radius / binning[0])
    out_header = fits.Header()
    for key in ("INSTRUME", "OBJECT", "TELESCOP", "OBSERVAT", "DATE-OBS", "TIME-OBS", "MJD-OBS", "RA", "DEC", "AIRMASS"):
        if key in header:
            out_header[key] = header[key]
    if wcs_header is None and "CTYPE1" in header:
        wcs_header = WCS(header, relax=True, naxis=2).to_header(relax=True)
    if wcs_header is not None:
        out_header.update(wcs_header)
    out_header["BUNIT"] = "electron"
    out_header["RAWFILE"] = path.name
    out_header["BINNING"] = f"{binning[0]}x{binning[1]}"
    return Frame(data=data, variance=np.zeros_like(data), mask=mask, header=out_header, name=path.name,
                 amps=amps, amp_map=amp_map)


def amplifier_facts(instrument: InstrumentSettings, amp: Amplifier, ext_header: Any, header: Any,
                    reads: float) -> tuple[AmpFacts, float, float | None]:
    """Gain, read noise and saturation of one amplifier for one frame.

    Header keywords (``keywords.gain/readnoise/saturate``) win over the settings; the read
    noise comes from ``detector.readnoise_by_reads`` when the frame says how many reads it
    took, times the square root of the number of coadds summed; saturation and non-linearity levels are multiplied by the number of coadded reads.

    Returns
    -------
    facts : AmpFacts
    saturation_adu, nonlinear_adu : float
        Raw levels at which pixels are flagged (nonlinear None when not set).
    """
    kw, det = instrument.keywords, instrument.detector
    gain = float(ext_header[kw.gain]) if kw.gain and kw.gain in ext_header else amp.gain
    readnoise = float(ext_header[kw.readnoise]) if kw.readnoise and kw.readnoise in ext_header else amp.readnoise
    if det.readnoise_by_reads and det.reads_keyword in header:
        nreads = float(header[det.reads_keyword])
        nearest = min(det.readnoise_by_reads, key=lambda n: abs(np.log(n) - np.log(max(nreads, 1.0))))
        readnoise = det.readnoise_by_reads[nearest]
    readnoise *= float(np.sqrt(nir.coadds(det, header)))
    sat_adu = float(ext_header[kw.saturate]) if kw.saturate and kw.saturate in ext_header else det.saturation_adu
    sat_adu *= reads
    nonlin = det.nonlinear_adu * reads if det.nonlinear_adu is not None else None
    return AmpFacts(amp.name, gain, readnoise, sat_adu * gain), sat_adu, nonlin


def saturation_halo(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """NEIGHBOUR bits for pixels within ``radius`` of a saturated pixel."""
    from potpyri_core.stages.mask import grow

    return grow(mask, Bit.SATURATED, radius).astype(np.uint16) * np.uint16(Bit.NEIGHBOUR)


def outside_circle(shape: tuple[int, int], radius: float) -> np.ndarray:
    """VIGNETTED bits outside a circle of ``radius`` (px) around the centre of ``shape``."""
    yy, xx = np.indices(shape)
    r = np.hypot(xx - (shape[1] - 1) / 2, yy - (shape[0] - 1) / 2)
    return np.where(r > radius, int(Bit.VIGNETTED), 0).astype(np.uint16)


def _iso(mjd: float) -> tuple[str, str]:
    t = Time(mjd, format="mjd", scale="utc").isot
    return t[:10], t[11:]


def pack(instrument: InstrumentSettings, exposure: Any, binning: int, rng: np.random.Generator) -> fits.HDUList:
    """Pack a simulated exposure into the instrument's raw format (multi-extension or single-HDU).

    Parameters
    ----------
    instrument : InstrumentSettings
        Settings with a ``simulation`` section.
    exposure : potpyri_core.simulate.scene.Exposure
        Electrons on the focal-plane grid (the assembled-mosaic geometry).
    binning : int
        On-chip binning (same in x and y).
    rng : numpy.random.Generator
        For read noise and bias structure.

    Returns
    -------
    astropy.io.fits.HDUList
        Primary header (no data) plus one uint16 extension per amplifier; an amplifier with
        ``hdu = 0`` puts its pixels (and its extension cards) in the primary HDU instead, as
        single-HDU cameras write.

    Notes
    -----
    With ``simulation.geometry`` the amplifiers are cut as that published description says
    (:mod:`potpyri_core.simulate.geometry`), independently of :func:`placements`; without it
    they are cut as the reduction's own settings describe.
    """
    sim = instrument.simulation
    if sim is None:
        raise ValueError(f"{instrument.name} has no simulation format in its settings")
    kw = instrument.keywords
    primary = fits.Header()
    primary.update({k: v for k, v in sim.primary.items()})
    primary.update({k: v for k, v in sim.kinds.get(exposure.kind, {}).items()})
    if exposure.kind != "flat" or kw.target[0] not in sim.kinds.get("flat", {}):
        primary[kw.target[0]] = exposure.object_name
    primary[kw.exptime[0]] = float(exposure.exptime)
    band = getattr(exposure, "band", "r")
    primary[kw.filter[0]] = sim.filter_names.get(band, band) if exposure.kind in ("flat", "science") else "Dark"
    date, clock = _iso(exposure.mjd)
    if kw.date_time:
        primary[kw.date_time[0]] = date
        primary[kw.date_time[1]] = clock
    primary[kw.mjd[0]] = float(exposure.mjd)
    if exposure.header_wcs is not None:
        ra, dec = exposure.header_wcs.wcs.crval
        primary["RA"], primary["DEC"] = float(ra), float(dec)
    if sim.geometry is not None:
        from potpyri_core.simulate.geometry import pack_amplifiers

        if kw.binning:
            primary[kw.binning[0]] = sim.geometry.binning_format.format(b=binning)
        return fits.HDUList(pack_amplifiers(instrument, primary, exposure, binning, rng))
    bin_text = f"{binning} {binning}"
    ext_headers: dict[int | str, Any] = {}
    places = placements(instrument, primary, ext_headers, (binning, binning))
    hdus = [fits.PrimaryHDU(header=primary)]
    image = exposure.image
    for i, place in enumerate(places):
        amp = place.amp
        ny, nx = place.raw_shape
        level = sim.bias_level_adu * (0.8 + 0.05 * i)
        row_ramp = np.linspace(0.0, 3.0, ny, dtype=np.float32)[:, None]  # gentle bias drift along rows
        raw = np.full((ny, nx), level, np.float32) + row_ramp
        electrons = image[place.mosaic_y, place.mosaic_x]
        if place.flip_x:
            electrons = electrons[:, ::-1]
        if place.flip_y:
            electrons = electrons[::-1]
        raw[place.data_y, place.data_x] += electrons / amp.gain
        raw += rng.normal(0.0, amp.readnoise / amp.gain, raw.shape).astype(np.float32)
        raw = np.clip(np.round(raw), 0, min(instrument.detector.saturation_adu, 65535))
        h = fits.Header()
        h.update({k: v for k, v in sim.extension.items()})
        if amp.hdu != 0:
            h["EXTNAME"] = "SCI"
            h["EXTVER"] = i + 1
        h[kw.binning[0] if kw.binning else "CCDSUM"] = bin_text
        if kw.gain:
            h[kw.gain] = amp.gain
        if kw.readnoise:
            h[kw.readnoise] = amp.readnoise
        h["DATASEC"] = f"[{place.data_x.start + 1}:{place.data_x.stop},{place.data_y.start + 1}:{place.data_y.stop}]"
        if place.bias_x is not None:
            h["BIASSEC"] = f"[{place.bias_x.start + 1}:{place.bias_x.stop},{place.data_y.start + 1}:{place.data_y.stop}]"
        if amp.detsec:
            h["DETSEC"] = amp.detsec
        if exposure.header_wcs is not None and not (place.flip_x or place.flip_y):
            wcs = exposure.header_wcs.deepcopy()
            wcs.wcs.crpix[0] -= place.mosaic_x.start - place.data_x.start
            wcs.wcs.crpix[1] -= place.mosaic_y.start - place.data_y.start
            h.update(wcs.to_header())
        if amp.hdu == 0:
            primary.update(h)
            hdus[0] = fits.PrimaryHDU(raw.astype(np.uint16), header=primary)
        else:
            hdus.append(fits.ImageHDU(raw.astype(np.uint16), header=h))
    return fits.HDUList(hdus)
