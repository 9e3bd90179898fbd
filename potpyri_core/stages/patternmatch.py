"""Blind matching of two point sets by similarity-invariant triangles.

Source points (detector pixels) and target points (tangent-plane arcsec of catalog stars)
are related by a similarity: any rotation, an optional reflection (parity flip), a scale
known to a few per cent and a shift. Each point forms triangles with its nearest
neighbours; a triangle's sorted side ratios ``(a/c, b/c)`` do not change under such a
transform, so triangles of the two sets are paired through a KD-tree on those ratios.
Every pair proposes a transform; proposals that agree are counted and the best are verified
on all points: a match is accepted only when it pairs far more points than chance would
(Poisson false-alarm probability, corrected for the number of proposals tried).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import poisson


class NoMatchError(RuntimeError):
    """No transform pairs the two point sets beyond chance."""


@dataclass(frozen=True)
class Similarity:
    """``target = matrix @ source + offset``, a scaled rotation with optional reflection."""

    matrix: np.ndarray
    offset: np.ndarray

    @property
    def scale(self) -> float:
        """Target units per source unit."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix))))

    @property
    def flipped(self) -> bool:
        """True when the transform includes a reflection."""
        return bool(np.linalg.det(self.matrix) < 0)

    def apply(self, xy: np.ndarray) -> np.ndarray:
        """Transform ``(n, 2)`` source points."""
        return xy @ self.matrix.T + self.offset


@dataclass
class PatternMatch:
    """Result of :func:`match_points`."""

    transform: Similarity
    source_index: np.ndarray
    target_index: np.ndarray
    n_expected: float
    """Matches expected by chance for the accepted transform."""
    false_alarm: float
    """Probability that a random transform among those tried does as well."""
    n_proposals: int


def triangles(xy: np.ndarray, neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """Triangles of each point with pairs of its nearest neighbours.

    Returns
    -------
    vertices : ndarray of int, shape (m, 3)
        Vertex indices ordered opposite the shortest, middle and longest side.
    invariants : ndarray, shape (m, 2)
        Side ratios ``(a / c, b / c)`` with ``a <= b <= c``.
    """
    n = len(xy)
    if n < 3:
        return np.zeros((0, 3), int), np.zeros((0, 2))
    k = min(neighbours, n - 1)
    _, idx = cKDTree(xy).query(xy, k + 1)
    combos = np.array(list(itertools.combinations(range(1, k + 1), 2)))
    tri = np.column_stack([np.repeat(idx[:, 0], len(combos)), idx[:, combos[:, 0]].ravel(),
                           idx[:, combos[:, 1]].ravel()])
    tri = np.unique(np.sort(tri, axis=1), axis=0)
    p = xy[tri]  # (m, 3, 2)
    # side opposite vertex i joins the other two
    sides = np.stack([np.hypot(*(p[:, 1] - p[:, 2]).T), np.hypot(*(p[:, 0] - p[:, 2]).T),
                      np.hypot(*(p[:, 0] - p[:, 1]).T)], axis=1)
    order = np.argsort(sides, axis=1)
    sides = np.take_along_axis(sides, order, axis=1)
    vertices = np.take_along_axis(tri, order, axis=1)
    ok = sides[:, 0] > 1e-3 * sides[:, 2]
    return vertices[ok], sides[ok, :2] / sides[ok, 2:3]


def fit_similarity(source: np.ndarray, target: np.ndarray, flip: bool) -> Similarity:
    """Least-squares similarity (with a reflection of x when ``flip``) from paired points."""
    zs = source[:, 0] + 1j * source[:, 1]
    if flip:
        zs = np.conj(zs)
    zt = target[:, 0] + 1j * target[:, 1]
    ms, mt = zs.mean(), zt.mean()
    a = np.vdot(zs - ms, zt - mt) / max(np.vdot(zs - ms, zs - ms).real, 1e-300)
    b = mt - a * ms
    matrix = np.array([[a.real, -a.imag], [a.imag, a.real]])
    if flip:
        matrix = matrix @ np.diag([1.0, -1.0])
    return Similarity(matrix=matrix, offset=np.array([b.real, b.imag]))


def _proposals(src: np.ndarray, tgt: np.ndarray, src_tri: np.ndarray, tgt_tri: np.ndarray, pairs: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Complex similarity coefficients (a, b) and parity of each paired triangle."""
    ps = src[src_tri[pairs[:, 0]]]
    pt = tgt[tgt_tri[pairs[:, 1]]]
    zs = ps[..., 0] + 1j * ps[..., 1]
    zt = pt[..., 0] + 1j * pt[..., 1]
    cross_s = np.imag((zs[:, 1] - zs[:, 0]) * np.conj(zs[:, 2] - zs[:, 0]))
    cross_t = np.imag((zt[:, 1] - zt[:, 0]) * np.conj(zt[:, 2] - zt[:, 0]))
    flip = np.sign(cross_s) != np.sign(cross_t)
    zs = np.where(flip[:, None], np.conj(zs), zs)
    ms, mt = zs.mean(axis=1), zt.mean(axis=1)
    ds, dt = zs - ms[:, None], zt - mt[:, None]
    a = (np.conj(ds) * dt).sum(axis=1) / (np.abs(ds) ** 2).sum(axis=1)
    b = mt - a * ms
    return a, b, flip


def match_points(
    source: np.ndarray,
    target: np.ndarray,
    scale: float,
    scale_tolerance: float,
    max_offset: float,
    match_radius: float,
    allow_flip: bool = True,
    max_rotation: float | None = None,
    neighbours: int = 7,
    invariant_tolerance: float = 0.01,
    false_alarm: float = 1e-4,
    min_matched: int = 5,
    max_checked: int = 400,
) -> PatternMatch:
    """Find the similarity mapping ``source`` points onto ``target`` points.

    Parameters
    ----------
    source, target : ndarray, shape (n, 2)
        Points; ``source`` in its own units (pixels, origin at the expected centre),
        ``target`` in target units (origin at the expected place of the source origin).
    scale : float
        Expected target units per source unit.
    scale_tolerance : float
        Allowed fractional deviation of the scale.
    max_offset : float
        Largest distance (target units) of the source origin from the target origin.
    match_radius : float
        Pairing radius (target units) while refining a proposal; the refined transform's
        pairs are counted within a third of it.
    allow_flip : bool
        Also try transforms with a reflection.
    max_rotation : float or None
        Largest rotation (deg) about the expected orientation (the identity, or a reflection
        when flipped); None for any rotation.
    neighbours : int
        Nearest neighbours each point forms triangles with.
    invariant_tolerance : float
        Radius of the KD-tree search on the side ratios.
    false_alarm : float
        Largest accepted false-alarm probability.
    min_matched : int
        Fewest paired points accepted.
    max_checked : int
        Most proposals verified (in order of how many other proposals agree).

    Returns
    -------
    PatternMatch

    Raises
    ------
    NoMatchError
        When no verified transform passes.
    """
    source = np.asarray(source, float)
    target = np.asarray(target, float)
    if len(source) < 3 or len(target) < 3:
        raise NoMatchError(f"too few points for triangles: {len(source)} detected, {len(target)} in the catalog")
    src_tri, src_inv = triangles(source, neighbours)
    tgt_tri, tgt_inv = triangles(target, neighbours + 2)
    found = cKDTree(tgt_inv).query_ball_point(src_inv, invariant_tolerance)
    pairs = np.array([(i, j) for i, js in enumerate(found) for j in js], int).reshape(-1, 2)
    if len(pairs) == 0:
        raise NoMatchError("no triangle of the detections resembles one of the catalog")
    a, b, flip = _proposals(source, target, src_tri, tgt_tri, pairs)
    ok = np.abs(np.abs(a) / scale - 1.0) <= scale_tolerance
    ok &= np.abs(b) <= max_offset
    if not allow_flip:
        ok &= ~flip
    if max_rotation is not None:
        ok &= np.abs(np.degrees(np.angle(a))) <= max_rotation
    a, b, flip = a[ok], b[ok], flip[ok]
    if len(a) == 0:
        raise NoMatchError(f"{len(pairs)} similar triangles, none with the expected scale and pointing")
    # proposals that agree (same parity, rotation within ~1 match radius at the field edge, shift
    # within a match radius) vote for each other
    extent = max(np.ptp(source, axis=0).max(), 1.0) * scale
    keys = np.column_stack([flip, np.angle(a) * extent / match_radius, b.real / match_radius, b.imag / match_radius,
                            np.log(np.abs(a) / scale) * extent / match_radius])
    votes = np.array([len(v) for v in cKDTree(keys).query_ball_point(keys, 1.5)])
    order = np.argsort(-votes)
    tree = cKDTree(target)
    lo, hi = target.min(axis=0) - max_offset, target.max(axis=0) + max_offset
    density = len(target) / max(float(np.prod(target.max(axis=0) - target.min(axis=0))), 1e-12)
    n_tried = len(a)
    best: PatternMatch | None = None
    seen: list[np.ndarray] = []
    for i in order[:max_checked]:
        if any(np.linalg.norm(k - keys[i]) < 1.5 for k in seen):
            continue
        seen.append(keys[i])
        transform = _similarity(a[i], b[i], flip[i])
        for _ in range(3):
            moved = transform.apply(source)
            si, ti = _pairs(tree, moved, match_radius)
            if len(si) < 3:
                break
            transform = fit_similarity(source[si], target[ti], bool(flip[i]))
        # the refined transform is counted with a tighter radius: chance pairs become rarer
        moved = transform.apply(source)
        si, ti = _pairs(tree, moved, match_radius / 3.0)
        inside = np.all((moved > lo) & (moved < hi), axis=1).sum()
        expected = inside * density * np.pi * (match_radius / 3.0) ** 2
        probability = float(poisson.sf(max(len(si) - 3, 0) - 1, expected)) * n_tried
        if best is None or len(si) > len(best.source_index) or (
                len(si) == len(best.source_index) and probability < best.false_alarm):
            best = PatternMatch(transform, si, ti, expected, min(probability, 1.0), n_tried)
        if len(si) >= max(min_matched, 8) and probability < false_alarm * 1e-3:
            break
    assert best is not None
    if len(best.source_index) < min_matched or best.false_alarm > false_alarm:
        raise NoMatchError(
            f"best pattern match pairs {len(best.source_index)} stars ({best.n_expected:.1f} expected by chance,"
            f" false-alarm probability {best.false_alarm:.2g}); need >= {min_matched} and < {false_alarm:g}")
    return best


def _similarity(a: complex, b: complex, flip: bool) -> Similarity:
    matrix = np.array([[a.real, -a.imag], [a.imag, a.real]])
    if flip:
        matrix = matrix @ np.diag([1.0, -1.0])
    return Similarity(matrix=matrix, offset=np.array([b.real, b.imag]))


def _pairs(tree: cKDTree, moved: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one nearest pairs within ``radius`` (closest first)."""
    dist, idx = tree.query(moved, distance_upper_bound=radius)
    ok = np.flatnonzero(np.isfinite(dist))
    ok = ok[np.argsort(dist[ok])]
    _, first = np.unique(idx[ok], return_index=True)
    keep = np.sort(ok[first])
    return keep, idx[keep]
