"""The VizieR catalog sources: Gaia DR3, Pan-STARRS1, SDSS DR16, SkyMapper DR4 and 2MASS.

Column names were checked against the VizieR tables: Gaia DR3 ``I/355/gaiadr3``
(``RA_ICRS``, ``DE_ICRS``, ``pmRA``, ``pmDE``, ``Gmag``, ``e_Gmag``; positions at epoch
2016.0), PS1 ``II/349/ps1`` (``RAJ2000``, ``DEJ2000``, ``gmag``.. ``ymag`` PSF and
``gKmag``.. ``yKmag`` Kron magnitudes with ``e_`` errors), SDSS DR16 ``V/154/sdss16``
(``RA_ICRS``, ``DE_ICRS``, PSF magnitudes ``upmag``.. ``zpmag`` with ``e_``, ``class`` 6 =
star, ``mode`` 1 = primary), SkyMapper DR4 ``II/379/smssdr4`` (``RAICRS``, ``DEICRS``,
``uPSF``.. ``zPSF`` with ``e_``, ``ClassStar``) and 2MASS ``II/246/out`` (``RAJ2000``,
``DEJ2000``, ``Jmag``, ``Hmag``, ``Kmag`` with ``e_``; Vega).
"""

from __future__ import annotations

from potpyri_catalogs.vizier import VizierSource, psf_minus_kron_cut
from potpyri_core.catalogs.columns import GAIA_DR3_EPOCH, TWOMASS_VEGA_TO_AB


def _ps1() -> VizierSource:
    bands = "grizy"
    psf = {b: f"{b}mag" for b in bands}
    kron = {b: f"{b}Kmag" for b in bands}
    return VizierSource(
        name="ps1",
        title="Pan-STARRS1 DR1 PSF magnitudes of point sources",
        catalog="II/349/ps1",
        band_columns={b: (f"{b}mag", f"e_{b}mag") for b in bands},
        position_columns=["RAJ2000", "DEJ2000"],
        extra_columns=list(kron.values()),
        row_filter=psf_minus_kron_cut(psf, kron),
    )


#: Gaia DR3: astrometry (positions at 2016.0 with proper motions) and G.
gaia = VizierSource(
    name="gaia",
    title="Gaia DR3 positions, proper motions and G",
    catalog="I/355/gaiadr3",
    band_columns={"G": ("Gmag", "e_Gmag")},
    position_columns=["RA_ICRS", "DE_ICRS", "pmRA", "pmDE"],
    ref_epoch=GAIA_DR3_EPOCH,
)
#: Pan-STARRS1 DR1 PSF magnitudes of point sources (PSF - Kron < 0.1), Dec > -30.
ps1 = _ps1()
#: SDSS DR16 PSF magnitudes of primary objects classified as stars.
sdss = VizierSource(
    name="sdss",
    title="SDSS DR16 PSF magnitudes of primary stars",
    catalog="V/154/sdss16",
    band_columns={b: (f"{b}pmag", f"e_{b}pmag") for b in "ugriz"},
    position_columns=["RA_ICRS", "DE_ICRS"],
    column_filters={"class": "=6", "mode": "=1"},
)
#: SkyMapper DR4 PSF magnitudes of star-like objects (ClassStar > 0.9), southern sky.
skymapper = VizierSource(
    name="skymapper",
    title="SkyMapper DR4 PSF magnitudes of star-like objects",
    catalog="II/379/smssdr4",
    band_columns={b: (f"{b}PSF", f"e_{b}PSF") for b in "uvgriz"},
    position_columns=["RAICRS", "DEICRS"],
    column_filters={"ClassStar": ">0.9"},
    renames={"RAICRS": "RA_ICRS", "DEICRS": "DE_ICRS"},
)
#: 2MASS point sources, J H Ks converted from Vega to AB (band ``K`` is Ks).
twomass = VizierSource(
    name="twomass",
    title="2MASS point sources, J H Ks in AB",
    catalog="II/246/out",
    band_columns={"J": ("Jmag", "e_Jmag"), "H": ("Hmag", "e_Hmag"), "K": ("Kmag", "e_Kmag")},
    position_columns=["RAJ2000", "DEJ2000"],
    vega_to_ab=dict(TWOMASS_VEGA_TO_AB),
)

SOURCES: list[VizierSource] = [gaia, ps1, sdss, skymapper, twomass]
