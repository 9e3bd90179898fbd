"""The truth side's own numbers: the Moffat enclosed fraction by quadrature."""

from __future__ import annotations

import numpy as np
import pytest

from potpyri_core.simulate.truthcheck import moffat_fraction_within


@pytest.mark.parametrize(("alpha", "beta"), [(4.86, 3.0), (2.0, 2.5), (6.0, 4.765)])
def test_moffat_fraction_by_quadrature_matches_the_closed_form(alpha, beta):
    for radius in (0.5 * alpha, alpha, 3.0 * alpha, 20.0 * alpha):
        closed = 1.0 - (1.0 + (radius / alpha) ** 2) ** (1.0 - beta)
        assert moffat_fraction_within(radius, alpha, beta) == pytest.approx(closed, rel=1e-7)
    assert moffat_fraction_within(np.inf, alpha, beta) == pytest.approx(1.0, rel=1e-7)
