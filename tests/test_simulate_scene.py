"""Tests of the raw-night scene simulator (potpyri_core.simulate)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table

from potpyri_core.simulate import (
    SceneConfig,
    frame_rng,
    header_wcs,
    make_detector,
    make_truth_catalog,
    psf_stamp,
    render_exposure,
    render_sources,
    simulate_night,
    true_wcs,
)
from potpyri_core.simulate.artifacts import cosmic_ray_image


def small_cfg(**kw) -> SceneConfig:
    base = {"shape": (600, 800), "pixel_scale": 0.25, "ra": 150.0, "dec": 2.2,
            "gap_columns": [(395, 405)], "n_science": 2, "n_flats": 2, "n_bias": 2,
            "n_darks": 1, "dark_e_per_s": 0.01, "saturation_e": 60000.0, "seed": 7,
            "cosmic_ray_rate_per_cm2_s": 0.5}  # 10x the ground rate: enough hits in a small frame
    base.update(kw)
    return SceneConfig(**base)


@pytest.fixture(scope="module")
def cfg() -> SceneConfig:
    return small_cfg()


@pytest.fixture(scope="module")
def truth(cfg: SceneConfig) -> Table:
    return make_truth_catalog(cfg, np.random.default_rng([cfg.seed, 1]))


@pytest.fixture(scope="module")
def detector(cfg: SceneConfig):
    return make_detector(cfg)


@pytest.fixture(scope="module")
def science(cfg, truth, detector):
    return render_exposure(cfg, "science", 1, truth, frame_rng(cfg, "science", 1),
                           detector=detector)


def test_truth_catalog(cfg, truth):
    assert {"id", "ra", "dec", "ra_ref", "dec_ref", "pmra", "pmdec", "mag",
            "is_galaxy"} <= set(truth.colnames)
    assert len(np.unique(truth["id"])) == len(truth)
    # proper motion propagation: |pos - pos_ref| = |pm| * dt
    dt = cfg.epoch - cfg.ref_epoch
    sep = SkyCoord(truth["ra"], truth["dec"], unit="deg").separation(
        SkyCoord(truth["ra_ref"], truth["dec_ref"], unit="deg")).mas
    np.testing.assert_allclose(sep, np.hypot(truth["pmra"], truth["pmdec"]) * dt, rtol=1e-4,
                               atol=1e-3)
    assert np.median(np.hypot(truth["pmra"], truth["pmdec"])) < 15.0
    assert truth["mag"].min() >= cfg.mag_bright and truth["mag"].max() <= cfg.mag_faint
    # power-law counts: more faint than bright stars
    assert np.sum(truth["mag"] > 23) > 5 * np.sum(truth["mag"] < 19)


def test_star_flux_and_centroid(cfg):
    w = true_wcs(cfg, 0)
    t = make_truth_catalog(cfg, np.random.default_rng(3))[:1]
    ra, dec = w.all_pix2world(300.37, 250.81, 0)
    t["ra"], t["dec"], t["mag"] = float(ra), float(dec), 18.0
    t["flux_e_per_s"] = 10 ** (-0.4 * (18.0 - cfg.zeropoint))
    img, x, y = render_sources(cfg, t, w, cfg.exptime)
    expected = 10 ** (-0.4 * (18.0 - cfg.zeropoint)) * cfg.exptime
    assert abs(img.sum() / expected - 1) < 0.005
    assert img.sum() <= expected
    assert abs(x[0] - 300.37) < 1e-6 and abs(y[0] - 250.81) < 1e-6
    yy, xx = np.mgrid[:cfg.ny, :cfg.nx]
    assert abs((img * xx).sum() / img.sum() - 300.37) < 0.01
    assert abs((img * yy).sum() / img.sum() - 250.81) < 0.01
    # FWHM of the pixel-integrated stamp is close to the configured one
    stamp, _, _ = psf_stamp(cfg, 100.0, 100.0)
    c = stamp.shape[0] // 2
    row = stamp[c] / stamp[c, c]
    half = np.interp(0.5, row[c:][::-1], np.arange(c + 1)[::-1])
    assert abs(2 * half / cfg.fwhm_px - 1) < 0.1


def test_a_rotated_ccd_records_its_stars_on_its_own_rotated_pixels():
    # CCD 1 rotated by 0.5 deg about (600, -500), a centre outside its (windowed) box
    frames = [(0, 390, 0, 600, 195.0, 300.0, 0.0), (410, 800, 0, 600, 600.0, -500.0, 0.5)]
    cfg = small_cfg(ccd_frames=frames)
    w = true_wcs(cfg, 0)
    t = make_truth_catalog(cfg, np.random.default_rng(3))[:2]
    ra, dec = w.all_pix2world([120.3, 650.6], [250.8, 420.2], 0)
    t["ra"], t["dec"], t["is_galaxy"] = ra, dec, False
    t["flux_e_per_s"] = 10 ** (-0.4 * (18.0 - cfg.zeropoint))
    img, x, y = render_sources(cfg, t, w, cfg.exptime)
    c, s = math.cos(math.radians(0.5)), math.sin(math.radians(0.5))
    dx, dy = 650.6 - 600.0, 420.2 + 500.0
    expected = [(120.3, 250.8), (600.0 + c * dx + s * dy, -500.0 - s * dx + c * dy)]
    assert abs(expected[1][0] - 650.6) > 5  # the rotation moves the star by pixels
    yy, xx = np.mgrid[:cfg.ny, :cfg.nx]
    for (ex, ey), half, rx, ry in zip(expected, (slice(0, 390), slice(410, 800)), x, y, strict=True):
        part = np.zeros_like(img)
        part[:, half] = img[:, half]
        assert abs((part * xx).sum() / part.sum() - ex) < 0.01
        assert abs((part * yy).sum() / part.sum() - ey) < 0.01
        assert abs(rx - ex) < 1e-6 and abs(ry - ey) < 1e-6


@pytest.mark.parametrize("shape", [(600, 800), (2112, 3140)])
def test_true_wcs_sip(shape):
    cfg = small_cfg(shape=shape)
    w = true_wcs(cfg, 2)
    yy, xx = np.mgrid[0:cfg.ny:37, 0:cfg.nx:37]
    x, y = xx.ravel().astype(float), yy.ravel().astype(float)
    ra, dec = w.all_pix2world(x, y, 0)
    x2, y2 = w.all_world2pix(ra, dec, 0, tolerance=1e-8)
    assert np.max(np.hypot(x2 - x, y2 - y)) < 0.01
    # AP/BP inverse alone
    foc = w.sip_pix2foc(np.c_[x, y] + 1, 1)
    back = w.sip_foc2pix(foc, 1) - 1
    assert np.max(np.hypot(back[:, 0] - x, back[:, 1] - y)) < 0.01
    # corner distortion between 1 and 3 px, zero at the centre
    corner = np.array([[0.0, 0.0], [cfg.nx - 1.0, cfg.ny - 1.0]]) + 1
    disp = w.sip_pix2foc(corner, 1) - (corner - w.wcs.crpix)
    assert np.all((np.hypot(*disp.T) > 1.0) & (np.hypot(*disp.T) < 3.0))
    centre = np.array([w.wcs.crpix])
    assert np.allclose(w.sip_pix2foc(centre, 1), 0.0, atol=1e-9)
    # pixel scale and north-up orientation
    c0 = SkyCoord(*w.all_pix2world(cfg.nx / 2, cfg.ny / 2, 0), unit="deg")
    c1 = SkyCoord(*w.all_pix2world(cfg.nx / 2, cfg.ny / 2 + 10, 0), unit="deg")
    assert abs(c0.separation(c1).arcsec / 10 - cfg.pixel_scale) < 1e-3 * cfg.pixel_scale
    assert abs(c0.position_angle(c1).deg - 0.05) < 0.02


def test_header_wcs_offset(cfg):
    for i in range(4):
        wt = true_wcs(cfg, i)
        wh = header_wcs(cfg, i, np.random.default_rng(i))
        xc, yc = cfg.centre_px
        ct = SkyCoord(*wt.all_pix2world(xc, yc, 0), unit="deg")
        ch = SkyCoord(*wh.all_pix2world(xc, yc, 0), unit="deg")
        assert abs(ct.separation(ch).arcsec / cfg.header_offset_arcsec - 1) < 0.2
        rot = math.degrees(math.atan2(wh.wcs.cd[0, 1], -wh.wcs.cd[0, 0])
                           - math.atan2(wt.wcs.cd[0, 1], -wt.wcs.cd[0, 0]))
        assert abs(abs(rot) - cfg.header_rotation_deg) < 1e-6
        assert "SIP" not in wh.wcs.ctype[0]


def test_flat_and_gaps(cfg, truth, detector, science):
    gap = cfg.gap_mask()
    flat = detector.flat
    assert flat.dtype == np.float32
    assert abs(np.median(flat[:, ~gap]) - 1) < 1e-6
    assert np.all(flat[:, gap] == 0)
    for col in detector.dead_columns:
        assert 0.03 < np.median(flat[:, col]) < 0.07
    good = flat[:, ~gap]
    assert 0.005 < np.std(np.diff(good, axis=0)) / np.sqrt(2) < 0.02   # pixel-to-pixel ~1 %
    assert 0.02 < 1 - np.median(flat[:20, 20:60]) < 0.06               # vignetting at corner
    for kind in ("bias", "dark", "flat"):
        e = render_exposure(cfg, kind, 0, None, frame_rng(cfg, kind, 0), detector=detector)
        assert e.image.dtype == np.float32 and e.image.shape == cfg.shape
        assert np.all(e.image[:, gap] == 0)
        for col, charge in detector.hot_columns.items():
            assert np.median(e.image[:, col]) > np.median(e.image) + 0.5 * charge
        if kind == "flat":
            ratio = e.image[:, ~gap] / np.where(good > 0, good, 1)
            assert 0.7 * cfg.flat_level_e < np.median(ratio) < 1.3 * cfg.flat_level_e
            assert np.std(ratio[200:400, 100:300]) / np.median(ratio) < 0.015
    assert np.all(science.image[:, gap] == 0)


def test_science_sky_crs_satellite(cfg, truth, detector, science):
    sky = 10 ** (-0.4 * (cfg.sky_mag_per_arcsec2 - cfg.zeropoint)) * cfg.pixel_scale**2 * cfg.exptime
    assert abs(science.sky_e_per_pix / sky - 1) < 1e-9
    src, _, _ = render_sources(cfg, truth, science.true_wcs, cfg.exptime)
    clean = ((src < 1.0) & (detector.flat > 0.5) & ~science.cr_mask & ~science.satellite_mask)
    measured = np.median(science.image[clean] / detector.flat[clean])
    assert abs(measured / sky - 1) < 0.02
    # cosmic rays: present, far above the noise, roughly the expected number
    assert science.cr_mask.sum() > 20
    expected_model = (sky + src) * detector.flat
    excess = science.image - expected_model
    sig = np.sqrt(expected_model + cfg.read_noise_e**2)
    assert np.median(excess[science.cr_mask] / sig[science.cr_mask]) > 5
    assert np.all(~science.cr_mask[:, cfg.gap_mask()])
    # satellite trail in frame 1 only, bright, narrow
    assert science.satellite_mask.sum() > cfg.nx
    assert science.satellite_mask.sum() < 0.05 * science.image.size
    tr = science.satellite_mask & (src < 1.0) & (detector.flat > 0.5) & ~science.cr_mask
    assert np.median(science.image[tr] / detector.flat[tr]) > sky + 3 * math.sqrt(sky)
    other = render_exposure(cfg, "science", 0, truth, frame_rng(cfg, "science", 0),
                            detector=detector)
    assert not other.satellite_mask.any()
    assert other.dither_offset_arcsec == (0.0, 0.0) and science.dither_offset_arcsec != (0, 0)
    # saturated list consistent with peak model
    assert len(science.saturated_star_ids) >= 1


def test_cosmic_ray_morphology():
    cr = cosmic_ray_image((200, 300), 100, np.random.default_rng(5))
    from scipy import ndimage
    lab, n = ndimage.label(cr > 0)
    sizes = np.bincount(lab.ravel())[1:]
    assert 60 <= n <= 110
    assert np.median(sizes) <= 4 and sizes.max() >= 5
    assert 100 < np.median(ndimage.sum(cr, lab, np.arange(1, n + 1))) < 1e4


def test_reproducible(cfg, truth, detector, science):
    again = render_exposure(cfg, "science", 1, truth, frame_rng(cfg, "science", 1),
                            detector=make_detector(cfg))
    assert np.array_equal(again.image, science.image)
    assert np.array_equal(again.cr_mask, science.cr_mask)
    t2 = make_truth_catalog(cfg, np.random.default_rng([cfg.seed, 1]))
    assert np.array_equal(t2["ra"], truth["ra"])
    other = render_exposure(small_cfg(seed=8), "science", 1, truth,
                            frame_rng(small_cfg(seed=8), "science", 1))
    assert not np.array_equal(other.image, science.image)


def test_render_speed_full_grid():
    cfg = small_cfg(shape=(2112, 3140), pixel_scale=0.105, gap_columns=[(1040, 1060)])
    t = make_truth_catalog(cfg, np.random.default_rng(0))
    w = true_wcs(cfg, 0)
    t0 = time.perf_counter()
    render_sources(cfg, t, w, cfg.exptime)
    assert time.perf_counter() - t0 < 3.0
    assert len(t) > 1000


def test_simulate_night(tmp_path):
    cfg = small_cfg(shape=(300, 400), gap_columns=[(195, 205)], star_density_per_arcmin2=200.0,
                    mag_bright=13.0, galaxies=True)

    def pack(e):
        return fits.HDUList([fits.PrimaryHDU(e.image)])

    def name_for(e):
        return f"{e.kind}_{e.index:03d}.fits"

    paths = simulate_night(cfg, tmp_path, pack, name_for)
    n_frames = cfg.n_bias + cfg.n_darks + cfg.n_flats + cfg.n_science
    assert len(paths["raw"]) == n_frames and all(p.exists() for p in paths["raw"])
    info = json.loads(paths["truth_json"].read_text())
    assert info["zeropoint"] == cfg.zeropoint and len(info["frames"]) == n_frames
    sci = [f for f in info["frames"] if f["kind"] == "science"]
    hdr = fits.Header.fromstring(sci[0]["true_wcs_header"], sep="\n")
    assert hdr["CTYPE1"] == "RA---TAN-SIP" and hdr["A_3_0"] > 0
    assert info["psf_stamp_fraction"] > 0.995
    with fits.open(paths["cr_masks"]) as h:
        assert [x.name for x in h[1:]] == [f["file"].upper() for f in sci]
        assert h[1].data.sum() == sci[0]["n_cr_pixels"] > 0
    with fits.open(paths["satellite_mask"]) as h:
        assert h[2].data.sum() > 0 and h[1].data.sum() == 0
    assert fits.getdata(paths["flat_pattern"]).shape == cfg.shape
    # reproducible: rerunning into the same directory finds identical files
    simulate_night(cfg, tmp_path, pack, name_for)
    with pytest.raises(FileExistsError):
        simulate_night(small_cfg(shape=(300, 400), gap_columns=[(195, 205)], seed=9), tmp_path,
                       pack, name_for)

    truth = Table.read(paths["truth_catalog"])
    by_id = {int(i): k for k, i in enumerate(truth["id"])}
    ps1 = Table.read(paths["refcat"]["ps1"])
    ids = Table.read(tmp_path / "truth" / "ps1_truth_ids.ecsv")["truth_id"]
    tm = truth["mag"][[by_id[int(i)] for i in ids]]
    pull = (np.asarray(ps1["rmag"]) - tm) / np.asarray(ps1["e_rmag"])
    assert len(pull) > 30
    assert abs(np.mean(pull)) < 0.4 and 0.7 < np.std(pull) < 1.3
    assert ps1["rmag"].min() >= 13.9 and np.max(tm) < 23.0
    assert not np.any(truth["is_galaxy"][[by_id[int(i)] for i in ids]])
    gaia = Table.read(paths["refcat"]["gaia"])
    gid = Table.read(tmp_path / "truth" / "gaia_dr3_truth_ids.ecsv")["truth_id"]
    rows = [by_id[int(i)] for i in gid]
    dra = (gaia["ra"] - truth["ra_ref"][rows]) * np.cos(np.radians(gaia["dec"])) * 3.6e6
    assert np.std(dra / gaia["ra_error"]) == pytest.approx(1.0, abs=0.3)
    assert gaia["phot_g_mean_mag"].max() < 21.0 and np.all(gaia["ref_epoch"] == 2016.0)
    assert "twomass" not in paths["refcat"]
    assert truth["is_galaxy"].sum() > 10
    assert not np.any(truth["is_galaxy"][rows])


def test_galaxy_flux(cfg):
    gcfg = small_cfg(galaxies=True)
    t = make_truth_catalog(gcfg, np.random.default_rng(4))
    g = t[t["is_galaxy"]][:1]
    w = true_wcs(gcfg, 0)
    ra, dec = w.all_pix2world(400.3, 300.6, 0)
    g["ra"], g["dec"] = float(ra), float(dec)
    img, _, _ = render_sources(gcfg, g, w, gcfg.exptime)
    assert img.sum() == pytest.approx(g["flux_e_per_s"][0] * gcfg.exptime, rel=1e-6)
    # extended: peak fraction below that of a point source
    star, _, _ = psf_stamp(gcfg, 400.3, 300.6)
    assert img.max() / img.sum() < star.max()


def test_nir_refcat(tmp_path):
    from potpyri_core.simulate import write_reference_catalogs
    cfg = small_cfg(band="J", nir=True, sky_variation=0.05, star_density_per_arcmin2=300.0,
                    mag_bright=12.0)
    truth = make_truth_catalog(cfg, np.random.default_rng(2))
    paths = write_reference_catalogs(truth, tmp_path, cfg, np.random.default_rng(3),
                                     truth_dir=tmp_path)
    tm = Table.read(paths["twomass"])
    ids = Table.read(tmp_path / "twomass_truth_ids.ecsv")["truth_id"]
    true_ab = truth["mag"][np.searchsorted(truth["id"], ids)]
    resid = np.asarray(tm["Jmag"]) - (true_ab - 0.91)
    assert len(tm) > 10 and abs(np.median(resid)) < 0.05
    assert np.all(np.abs(resid) < 5 * np.asarray(tm["e_Jmag"]) + 1e-6)
