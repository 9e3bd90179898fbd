"""Compare the reduction of a simulated night with the simulator's truth.

Used by the end-to-end tests (which assert tolerances on these figures) and by
``benchmarks/truth_report.py`` (which prints them), so the figures quoted in notes are the
ones the tests check.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy.integrate import quad
from scipy.spatial import cKDTree

from potpyri_core.maskbits import UNUSABLE, Bit


def moffat_fraction_within(radius: float, alpha: float, beta: float) -> float:
    """Fraction of a Moffat profile's light within ``radius``, by numerical integration.

    Computed from the surface brightness ``(beta - 1) / (pi alpha^2) (1 + r^2/alpha^2)^-beta``
    (unit total flux) with quadrature, independently of the pipeline's closed form, so that
    an error in the pipeline's aperture correction cannot hide in the truth-based depth.
    """

    def ring(r: float) -> float:
        return 2.0 * math.pi * r * (beta - 1.0) / (math.pi * alpha**2) * (1.0 + (r / alpha) ** 2) ** (-beta)

    value, _ = quad(ring, 0.0, radius)
    return float(value)


def isolated_stars(catalog: Table, radius_arcsec: float = 2.5, contrast: float = 4.0) -> Table:
    """Stars with no object brighter than ``mag + contrast`` within ``radius_arcsec``.

    A blend has no single true position or flux to compare a measurement with.
    """
    xyz = SkyCoord(catalog["ra"], catalog["dec"], unit="deg").cartesian.xyz.value.T
    pairs = cKDTree(xyz).query_pairs(np.radians(radius_arcsec / 3600.0), output_type="ndarray")
    mag = np.asarray(catalog["mag"])
    spoiled = np.zeros(len(catalog), bool)
    spoiled[pairs[:, 0][mag[pairs[:, 1]] < mag[pairs[:, 0]] + contrast]] = True
    spoiled[pairs[:, 1][mag[pairs[:, 0]] < mag[pairs[:, 1]] + contrast]] = True
    return catalog[~spoiled & ~np.asarray(catalog["is_galaxy"])]


@dataclass
class TruthCheck:
    """A reduced simulated night: ``root`` holds ``truth/`` and the reduction's ``red/``.

    Parameters
    ----------
    root : Path
        The simulated night's folder.
    stack_path : Path
        The stack to check.
    workspace : dict
        Raw file name -> calibrated frame (``red/workspace``) of each science frame.
    read_noise : float
        Read noise (e-) of the detector, for the truth-based depth.
    """

    root: Path
    stack_path: Path
    workspace: dict[str, Path]
    read_noise: float

    @cached_property
    def truth(self) -> dict[str, Any]:
        """``truth.json``."""
        return json.loads((self.root / "truth" / "truth.json").read_text())

    @cached_property
    def catalog(self) -> Table:
        """The truth catalog (stars and galaxies)."""
        return Table.read(self.root / "truth" / "truth_catalog.ecsv")

    @cached_property
    def stack(self) -> dict[str, tuple[Any, fits.Header]]:
        """Every extension of the stack: name -> (data, header)."""
        with fits.open(self.stack_path) as hdul:
            return {h.name: (h.data.copy() if h.data is not None else None, h.header.copy()) for h in hdul}

    @property
    def header(self) -> fits.Header:
        """The stack's SCI header."""
        return self.stack["SCI"][1]

    @property
    def science(self) -> list[dict[str, Any]]:
        """Truth records of the science frames."""
        return [f for f in self.truth["frames"] if f["kind"] == "science"]

    @staticmethod
    def true_wcs(frame: dict[str, Any]) -> WCS:
        """The true WCS of a science frame."""
        return WCS(fits.Header.fromstring(frame["true_wcs_header"], sep="\n"))

    # ------------------------------------------------------------------ figures
    def astrometric_snr_floor(self, snr_min: float = 20.0, max_centroid_error: float = 0.02) -> float:
        """Lowest S/N of a star in :meth:`astrometric_rms`: ``snr_min`` or the S/N at which the
        expected centroid error per axis, ``SEEING / (2.35 S/N)``, is ``max_centroid_error``
        (arcsec), whichever is higher (S/N 38 in 1.8" seeing, 17 in 0.8")."""
        return max(snr_min, float(self.header["SEEING"]) / (2.35 * max_centroid_error))

    def astrometric_rms(self, table: str = "APPPHOT", snr_min: float = 20.0, max_centroid_error: float = 0.02
                        ) -> tuple[float, int]:
        """RMS (arcsec) of stack positions minus true positions of isolated stars, and how many.

        Only stars whose expected centroid error is below ``max_centroid_error`` count
        (:meth:`astrometric_snr_floor`), so that the figure measures the WCS, not the
        centroid noise of faint stars in poor seeing: on the simulated BINOSPEC stack (1.8")
        the RMS is 0.078" at S/N 20-40 and 0.023" at 80-200 with CCD offsets below 0.001".
        """
        measured, true = self._matched_isolated(table, self.astrometric_snr_floor(snr_min, max_centroid_error))
        dra, ddec = measured.spherical_offsets_to(true)
        return math.sqrt(float(np.mean(dra.arcsec**2 + ddec.arcsec**2))), len(true)

    def _matched_isolated(self, table: str, snr_min: float) -> tuple[SkyCoord, SkyCoord]:
        """Stack sources above ``snr_min`` without flags, paired (within 0.5") with isolated
        truth stars: (measured, true) positions."""
        phot = Table(self.stack[table][0])
        good = phot[(phot["snr"] > snr_min) & (phot["flags"] == 0)]
        stars = isolated_stars(self.catalog)
        measured = SkyCoord(good["ra"], good["dec"], unit="deg")
        true = SkyCoord(stars["ra"], stars["dec"], unit="deg")
        idx, sep, _ = measured.match_to_catalog_sky(true)
        ok = sep.arcsec < 0.5
        return measured[ok], true[idx[ok]]

    def chip_offsets(self, table: str = "APPPHOT", snr_min: float = 20.0, margin_px: int = 10
                     ) -> dict[str, tuple[float, float, int]]:
        """Per CCD of the simulated geometry: mean stack-minus-true offset (east, north; arcsec)
        of isolated stars that fall on that CCD (``margin_px`` inside it) in every science
        frame, and how many. Empty when the night has no ``ccd_regions`` in its truth."""
        regions = self.truth.get("ccd_regions")
        if not regions:
            return {}
        measured, true = self._matched_isolated(table, snr_min)
        on = {ccd: np.ones(len(true), bool) for ccd in regions}
        for frame in self.science:
            x, y = self.true_wcs(frame).world_to_pixel(true)
            for ccd, (x0, x1, y0, y1) in regions.items():
                on[ccd] &= (x >= x0 + margin_px) & (x < x1 - margin_px) & (y >= y0 + margin_px) & (y < y1 - margin_px)
        dra, ddec = measured.spherical_offsets_to(true)
        return {ccd: (float(-np.mean(dra.arcsec[sel])), float(-np.mean(ddec.arcsec[sel])), int(sel.sum()))
                for ccd, sel in on.items() if sel.any()}

    def zero_point_error(self) -> float:
        """ZPTMAG minus the true zero point (mag)."""
        return float(self.header["ZPTMAG"] - self.truth["zeropoint"])

    def m5_truth(self, sky_frames: float | None = None) -> float:
        """5-sigma point-source limit from first principles for the stack's aperture, where
        the stack has its full depth.

        Sky + read noise per native pixel and frame, averaged over the frames, summed over
        the aperture, divided by the true Moffat PSF's enclosed fraction in that aperture,
        for the number of frames where the stack measured its depth (``DEPTHNFR``; without
        it, every science frame): frames left out of the stack (a failed astrometry) do
        not deepen it.

        Parameters
        ----------
        sky_frames : float, optional
            Frames whose (clipped) mean made each frame's sky, when the sky came from the
            dithered frames themselves (the reduction's ``SKYNFRM``). That sky carries the
            noise of those frames: ``1 / sky_frames`` of a frame's variance per pixel, at
            detector pixels that the dithers put at different places on the sky, so the
            term adds to each frame's variance independently. None: a smooth 2-D sky
            (no added noise).
        """
        frames = self.science
        exptime = frames[0]["exptime"]
        pixel_var = np.mean([f["sky_e_per_pix"] for f in frames]) + self.read_noise**2
        if sky_frames:
            pixel_var *= 1.0 + 1.0 / sky_frames
        radius = self.header["APRAD"]
        n_frames = int(self.header.get("DEPTHNFR") or len(frames))
        sigma_ap = math.sqrt(math.pi * radius**2 * pixel_var / n_frames) / exptime
        enclosed = moffat_fraction_within(radius, self.truth["moffat_alpha_px"], self.truth["moffat_beta"])
        return self.truth["zeropoint"] - 2.5 * math.log10(5 * sigma_ap / enclosed)

    def master_flat(self) -> tuple[np.ndarray, np.ndarray]:
        """The reduction's master flat and its mask (the only ``red/cals/mflat_*.fits``)."""
        paths = sorted((self.root / "red" / "cals").glob("mflat_*.fits"))
        if len(paths) != 1:
            raise ValueError(f"expected one master flat in red/cals, found {len(paths)}")
        with fits.open(paths[0]) as hdul:
            return hdul[0].data.astype(float), hdul["MASK"].data.copy()

    def flat_error(self) -> tuple[float, float]:
        """Median and robust RMS of master flat / true flat pattern over unflagged pixels.

        The true pattern is on the focal-plane grid, so a misplaced amplifier or CCD shows
        as a large RMS (the pixel-to-pixel structure no longer lines up).
        """
        true = fits.getdata(self.root / "truth" / "flat_pattern.fits").astype(float)
        flat, mask = self.master_flat()
        if flat.shape != true.shape:
            raise ValueError(f"master flat {flat.shape} and true flat {true.shape} differ in shape")
        good = (mask == 0) & (true > 0.2)
        ratio = flat[good] / true[good]
        center = float(np.median(ratio))
        return center, float(1.4826 * np.median(np.abs(ratio - center)))

    def dead_columns_flagged(self) -> float:
        """Fraction of the true dead-column pixels (outside chip gaps) flagged BAD in the master flat."""
        _, mask = self.master_flat()
        columns = mask[:, self.truth["detector"]["dead_columns"]]
        judged = (columns & Bit.NO_DATA) == 0
        return float(((columns & Bit.BAD) > 0)[judged].mean())

    def cosmic_ray_recall(self) -> dict[str, float]:
        """Per science frame: fraction of injected > 5 sigma CR pixels flagged (gaps and
        saturated pixels excluded)."""
        out = {}
        with fits.open(self.root / "truth" / "cr_masks.fits") as crs:
            for frame in self.science:
                injected = crs[frame["file"]].data.astype(bool)
                mask = fits.getdata(self.workspace[frame["file"]], "MASK")
                judged = injected & ((mask & (Bit.NO_DATA | Bit.SATURATED)) == 0)
                out[frame["file"]] = float(((mask & Bit.COSMIC_RAY) > 0)[judged].mean())
        return out

    def isolated_stack_pixels(self, sky: SkyCoord, wings: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Stack pixels (iy, ix) of ``sky`` positions, usable and > 4 FWHM from any source.

        With ``wings``, brighter sources are avoided out to where their Moffat wing (intensity
        ~ r^-2beta) falls to what a 25.5 mag source has at 4 FWHM: 4 FWHM x (flux
        ratio)^(1/2beta), at most 20 FWHM (a 15 mag star with beta 3). Used where single pixels
        are judged (cosmic-ray residuals: a bright star's wing once counted as one); the noise
        statistics keep the plain 4 FWHM (in a crowded field the wings leave no sky).
        """
        data, header = self.stack["SCI"]
        mask = self.stack["MASK"][0]
        wcs = WCS(header)
        x, y = wcs.world_to_pixel(sky)
        ix, iy = np.round(x).astype(int), np.round(y).astype(int)
        inside = (ix >= 0) & (iy >= 0) & (ix < data.shape[1]) & (iy < data.shape[0])
        ix, iy = ix[inside], iy[inside]
        cat = self.catalog
        sx, sy = wcs.world_to_pixel(SkyCoord(cat["ra"], cat["dec"], unit="deg"))
        bright = np.asarray(cat["mag"] < 25.5)
        beta = float(self.truth.get("moffat_beta", 3.0))
        growth = 10 ** (-0.4 * (np.asarray(cat["mag"])[bright] - 25.5) / (2 * beta)) if wings else 1.0
        radius = 4 * header["FWHM"] * np.clip(growth, 1.0, 5.0) * np.ones(int(bright.sum()))
        tree = cKDTree(np.column_stack([sx[bright], sy[bright]]))
        points = np.column_stack([ix, iy])
        near = np.zeros(len(points), bool)
        for k, neighbours in enumerate(tree.query_ball_point(points, float(radius.max()) if radius.size else 0.0)):
            if neighbours:
                d = np.hypot(sx[bright][neighbours] - ix[k], sy[bright][neighbours] - iy[k])
                near[k] = bool(np.any(d <= radius[neighbours]))
        keep = ~near & ((mask[iy, ix] & UNUSABLE) == 0)
        return iy[keep], ix[keep]

    @cached_property
    def snr(self) -> np.ndarray:
        """Stack S/N per pixel."""
        data, error = self.stack["SCI"][0], self.stack["ERROR"][0]
        return data / np.where(error > 0, error, np.inf)

    def cosmic_ray_residuals(self) -> dict[str, tuple[float, int]]:
        """Per science frame: the largest stack S/N at its CR pixels away from sources, and
        how many such pixels there are."""
        out = {}
        with fits.open(self.root / "truth" / "cr_masks.fits") as crs:
            for frame in self.science:
                y, x = np.nonzero(crs[frame["file"]].data)
                iy, ix = self.isolated_stack_pixels(self.true_wcs(frame).pixel_to_world(x, y), wings=True)
                out[frame["file"]] = (float(self.snr[iy, ix].max()) if iy.size else math.nan, int(iy.size))
        return out

    def satellite(self) -> dict[str, tuple[float, float, float, int]]:
        """Per frame with a trail: fraction masked, median and max stack S/N on its path
        (away from sources), and the number of path pixels checked."""
        out = {}
        with fits.open(self.root / "truth" / "satellite_mask.fits") as trails:
            for frame in (f for f in self.science if f["has_satellite"]):
                trail = trails[frame["file"]].data.astype(bool)
                mask = fits.getdata(self.workspace[frame["file"]], "MASK")
                judged = trail & ((mask & Bit.NO_DATA) == 0)
                masked = float(((mask & Bit.SATELLITE) > 0)[judged].mean())
                y, x = np.nonzero(trail)
                iy, ix = self.isolated_stack_pixels(self.true_wcs(frame).pixel_to_world(x, y))
                values = self.snr[iy, ix]
                out[frame["file"]] = (masked, float(np.median(values)), float(values.max()), int(iy.size))
        return out

    def error_over_noise(self, samples: int = 40000, seed: int = 0) -> float:
        """Robust std of blank-sky stack pixels, each divided by its own ERROR.

        Per pixel, so that the shallower edges of a dithered stack (fewer frames) count at
        their own depth.
        """
        data, header = self.stack["SCI"]
        error = self.stack["ERROR"][0]
        rng = np.random.default_rng(seed)
        ys, xs = rng.integers(0, data.shape[0], samples), rng.integers(0, data.shape[1], samples)
        iy, ix = self.isolated_stack_pixels(WCS(header).pixel_to_world(xs, ys))
        good = error[iy, ix] > 0
        values = data[iy, ix][good] / error[iy, ix][good]
        return 1.4826 * float(np.median(np.abs(values - np.median(values))))

    def flux_ratio(self, table: str, snr_min: float = 50.0) -> tuple[float, float, int]:
        """Median measured/true flux of isolated stars (S/N > ``snr_min``, flags 0), the
        median |difference| / error, and how many."""
        phot = Table(self.stack[table][0])
        good = phot[(phot["snr"] > snr_min) & (phot["flags"] == 0)]
        stars = isolated_stars(self.catalog)
        idx, sep, _ = SkyCoord(good["ra"], good["dec"], unit="deg").match_to_catalog_sky(
            SkyCoord(stars["ra"], stars["dec"], unit="deg"))
        ok = sep.arcsec < 0.3
        true = np.asarray(stars["flux_e_per_s"])[idx[ok]]
        flux, err = np.asarray(good["flux"])[ok], np.asarray(good["flux_err"])[ok]
        return float(np.median(flux / true)), float(np.median(np.abs(flux - true) / err)), int(ok.sum())

    def report(self) -> dict[str, Any]:
        """Every figure, for printing."""
        rms, n_astro = self.astrometric_rms()
        return {
            "astrometric RMS of isolated stack stars (arcsec, n, S/N floor)": (round(rms, 4), n_astro,
                                                                              round(self.astrometric_snr_floor(), 1)),
            "stack - true offset per CCD (east, north arcsec, n)": {
                k: (round(v[0], 4), round(v[1], 4), v[2]) for k, v in self.chip_offsets().items()},
            "ZPTMAG - true zero point (mag)": round(self.zero_point_error(), 4),
            "M5SIGMA, truth-based 5-sigma limit (mag)": (round(self.header["M5SIGMA"], 3), round(self.m5_truth(), 3)),
            "CR pixel recall per frame": {k: round(v, 4) for k, v in self.cosmic_ray_recall().items()},
            "largest stack S/N at CR pixels per frame": {k: round(v[0], 2) for k, v in
                                                          self.cosmic_ray_residuals().items()},
            "satellite: masked fraction, median/max stack S/N on path": {
                k: tuple(round(x, 3) for x in v[:3]) for k, v in self.satellite().items()},
            "measured sky noise / ERROR": round(self.error_over_noise(), 4),
            "master flat / true flat (median, robust RMS)": tuple(round(x, 4) for x in self.flat_error()),
            "dead-column pixels flagged BAD": round(self.dead_columns_flagged(), 4),
            "aperture flux / truth (median, |d|/sigma, n)": tuple(round(x, 4) for x in self.flux_ratio("APPPHOT")),
            **({"PSF flux / truth (median, |d|/sigma, n)": tuple(round(x, 4) for x in self.flux_ratio("PSFPHOT"))}
               if "PSFPHOT" in self.stack else {}),
        }
