"""Rebuild the header extracts in this folder from <repo>/../shared/data (see PROVENANCE.md).

Each extract keeps the primary header and the header of extension 1 as header-only HDUs
(no pixel data), gzip-compressed. Run: python tests/data/real/make_extracts.py
"""

from pathlib import Path

from astropy.io import fits

SRC = Path(__file__).resolve().parents[3].parent / "shared" / "data"  # <repo>/../shared/data
DST = Path(__file__).parent

SKIP = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "XTENSION", "PCOUNT",
        "GCOUNT", "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZNAXIS1", "ZNAXIS2", "ZTILE1", "ZTILE2", "ZCMPTYPE",
        "ZNAME1", "ZVAL1", "ZNAME2", "ZVAL2", "ZQUANTIZ", "ZDITHER0", "TFIELDS", "TTYPE1", "TFORM1",
        "TTYPE2", "TFORM2", "TTYPE3", "TFORM3", "ZSIMPLE", "ZEXTEND", "ZTENSION", "ZPCOUNT", "ZGCOUNT",
        "CHECKSUM", "DATASUM", "ZHECKSUM", "ZDATASUM", "BZERO", "BSCALE"}


def copy_cards(src: fits.Header, dst: fits.Header) -> None:
    for card in src.cards:
        if card.keyword in SKIP or not card.keyword:
            continue
        try:
            dst.append(card, end=True)
        except (ValueError, fits.VerifyError):
            continue


def extract(src: Path, dst: Path, n_ext: int = 2) -> None:
    with fits.open(src) as hdul:
        out = fits.HDUList([fits.PrimaryHDU()])
        copy_cards(hdul[0].header, out[0].header)
        for i in range(1, min(n_ext, len(hdul))):
            hdu = fits.ImageHDU()
            copy_cards(hdul[i].header, hdu.header)
            out.append(hdu)
        dst.parent.mkdir(parents=True, exist_ok=True)
        out.writeto(dst, overwrite=True, output_verify="silentfix")


def main() -> None:
    for path in sorted((SRC / "keck_lris_blue").glob("*.fits.gz")):
        extract(path, DST / "keck_lris_blue" / path.name.replace(".fits.gz", ".hdr.fits.gz"))
    for name in ("gmos-n_bpm_HAM_44_12amp_v3.fits", "gmos-s_bpm_HAM_44_12amp_v2.fits"):
        extract(SRC / "gemini_gmos" / name, DST / "gemini_gmos" / name.replace(".fits", ".hdr.fits.gz"))
    extract(SRC / "gemini_f2" / "f2_image_illumination.fits.bz2", DST / "gemini_f2" / "f2_image_illumination.hdr.fits.gz")
    for name in ("bino_proc_left.trim.staticmask.fits.fz", "bino_proc_right.trim.staticmask.fits.fz"):
        extract(SRC / "mmt_binospec" / name, DST / "mmt_binospec" / name.replace(".fits.fz", ".hdr.fits.gz"))
    for name in ("headerL2U2L1U1_1_1.fits", "headerL2U2L1U1_2_2.fits", "headerL1_1_1.fits"):
        extract(SRC / "keck_lris_red_mark4" / name, DST / "keck_lris_red_mark4" / name.replace(".fits", ".fits.gz"), 1)


if __name__ == "__main__":
    main()
