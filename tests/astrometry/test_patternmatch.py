"""Triangle pattern matching: recover random similarities, with flips, missing and extra points."""

from __future__ import annotations

import numpy as np
import pytest

from potpyri_core.stages.patternmatch import NoMatchError, fit_similarity, match_points, triangles


def _transform(xy, angle_deg, scale, flip, offset):
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    matrix = scale * np.array([[c, -s], [s, c]])
    if flip:
        matrix = matrix @ np.diag([-1.0, 1.0])
    return xy @ matrix.T + offset, matrix


def test_triangle_invariants_survive_similarity():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-500, 500, (30, 2))
    moved, _ = _transform(xy, 123.0, 0.16, True, np.array([40.0, -70.0]))
    _, inv_a = triangles(xy, 5)
    vertices, inv_b = triangles(moved, 5)
    assert np.allclose(np.sort(inv_a, axis=0), np.sort(inv_b, axis=0))
    assert np.all(inv_b <= 1.0) and vertices.shape[1] == 3


def test_fit_similarity_exact():
    rng = np.random.default_rng(1)
    xy = rng.uniform(-100, 100, (10, 2))
    moved, matrix = _transform(xy, -37.0, 2.5, True, np.array([3.0, 4.0]))
    fitted = fit_similarity(xy, moved, flip=True)
    assert np.allclose(fitted.matrix, matrix)
    assert np.allclose(fitted.offset, [3.0, 4.0])
    assert fitted.flipped and fitted.scale == pytest.approx(2.5)


@pytest.mark.parametrize("seed", range(8))
def test_random_rotation_flip_offset_recovered(seed):
    rng = np.random.default_rng(seed)
    n_cat = int(rng.integers(8, 15))
    # a sparse catalog: stars on the frame plus many outside it (pointing errors up to 10')
    frame = rng.uniform(-150, 150, (n_cat, 2))  # arcsec
    outside = rng.uniform(-900, 900, (8 * n_cat, 2))
    outside = outside[np.max(np.abs(outside), axis=1) > 200]
    catalog = np.vstack([frame, outside])
    angle, flip = rng.uniform(0, 360), bool(rng.integers(2))
    scale = 0.16 * rng.uniform(0.96, 1.04)
    offset = rng.uniform(-400, 400, 2)
    # detections: all but two catalog stars on the frame, plus faint non-catalog sources,
    # expressed in pixels through the inverse transform, with 0.05 px noise
    _, matrix = _transform(np.zeros((1, 2)), angle, scale, flip, offset)
    keep = frame[2:]
    extra = rng.uniform(-150, 150, (10, 2))
    pixels = (np.vstack([keep, extra]) - offset) @ np.linalg.inv(matrix).T + rng.normal(0, 0.05, (len(keep) + 10, 2))
    match = match_points(pixels, catalog, scale=0.16, scale_tolerance=0.05, max_offset=600.0,
                         match_radius=1.0)
    assert match.transform.flipped == flip
    assert np.allclose(match.transform.matrix, matrix, atol=2e-4 * scale / 0.16)
    assert np.allclose(match.transform.offset, offset, atol=0.05)
    assert len(match.source_index) >= len(keep) - 1
    assert match.false_alarm < 1e-3


def test_unrelated_point_sets_do_not_match():
    rng = np.random.default_rng(5)
    with pytest.raises(NoMatchError):
        match_points(rng.uniform(-900, 900, (15, 2)), rng.uniform(-150, 150, (12, 2)), scale=0.16,
                     scale_tolerance=0.05, max_offset=600.0, match_radius=1.0)
