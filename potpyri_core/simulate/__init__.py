"""Raw-night scene simulator with known truth (images in electrons).

See :mod:`potpyri_core.simulate.scene` for the flux and PSF conventions.
"""

from .flatfield import flat_pattern
from .night import simulate_night
from .refcat import write_reference_catalogs
from .scene import (
    Detector,
    Exposure,
    SceneConfig,
    frame_rng,
    header_wcs,
    make_detector,
    make_truth_catalog,
    psf_stamp,
    render_exposure,
    render_sources,
    true_wcs,
)

__all__ = ["Detector", "Exposure", "SceneConfig", "flat_pattern", "frame_rng", "header_wcs",
           "make_detector", "make_truth_catalog", "psf_stamp", "render_exposure",
           "render_sources", "simulate_night", "true_wcs", "write_reference_catalogs"]
