"""Offline k-means seeding of the residual codebooks.

Level ``l`` is fitted (k-means++ init) on the residuals the levels before it leave, exactly as the
quantizer will see them, so each level starts where it is needed. Load the result with
:meth:`ResidualVectorQuantizer.load_centroids`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans, kmeans_plusplus


class LevelFit(NamedTuple):
    """How one level's k-means fit went.

    inertia: sum over frames of the squared distance to the assigned centroid (on that level's input).
    usage_fraction: fraction of the K centroids with at least one frame assigned.
    quantization_error: ``||frames - sum of centroids of levels <= l||^2 / ||frames||^2`` (cumulative).
    """

    inertia: float
    usage_fraction: float
    quantization_error: float


LevelMap = Callable[[int, np.ndarray], np.ndarray]  # (level, vectors) -> vectors, e.g. a factorised level's projection


class ResidualKMeans(NamedTuple):
    """centroids ``[L, K, d]`` float32 and one :class:`LevelFit` per level (unpacks as a pair)."""

    centroids: np.ndarray
    levels: tuple[LevelFit, ...]


def fit_residual_codebooks(
    frames: np.ndarray,
    num_levels: int,
    codebook_size: int,
    seed: int,
    *,
    minibatch_threshold: int = 100_000,
    batch_size: int = 4096,
    max_iter: int = 100,
    init_trials: int | None = 1,
    project: LevelMap | None = None,
    reconstruct: LevelMap | None = None,
) -> ResidualKMeans:
    """Fit ``num_levels`` codebooks of ``codebook_size`` entries on ``frames [N, D]`` level by level.

    KMeans (Lloyd) when ``N <= minibatch_threshold``, else MiniBatchKMeans with ``batch_size``
    (full-batch Lloyd is O(N K D) per iteration). Both start from k-means++ centres drawn with
    ``init_trials`` candidates per centre: 1 is Arthur & Vassilvitskii's k-means++, None is
    scikit-learn's greedy default (2 + log K candidates, about 4x slower at K = 1024, and at this
    stage the seeding only has to land every entry among the frames). Level ``l`` uses
    ``random_state = seed + l``; the result is deterministic given ``seed``.

    A factorised quantizer passes its maps: level ``l`` is then fitted on ``project(l, residual)`` (unit
    vectors ``[N, d]``), its centroids are L2-normalised (spherical k-means: the nearest unit centroid is
    the most similar direction) and the residual loses ``reconstruct(l, centroid of each frame)``.
    """
    if (project is None) != (reconstruct is None):
        raise ValueError("give both project and reconstruct, or neither")
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or not np.isfinite(frames).all():
        raise ValueError(f"frames must be a finite [N, D] array, got shape {frames.shape}")
    if num_levels < 1 or codebook_size < 2:
        raise ValueError(f"need num_levels >= 1 and codebook_size >= 2, got {num_levels}, {codebook_size}")
    if frames.shape[0] < codebook_size:
        raise ValueError(f"k-means needs at least codebook_size={codebook_size} frames, got {frames.shape[0]}")

    energy = max(float(np.square(frames, dtype=np.float64).sum()), np.finfo(np.float64).tiny)
    residual = frames.copy()
    centroids, levels = [], []
    for level in range(num_levels):
        vectors = residual if project is None else np.asarray(project(level, residual), dtype=np.float32)
        init, _ = kmeans_plusplus(vectors, codebook_size, random_state=seed + level, n_local_trials=init_trials)
        kwargs = dict(n_clusters=codebook_size, init=init, n_init=1, max_iter=max_iter, random_state=seed + level)
        if frames.shape[0] > minibatch_threshold:
            model = MiniBatchKMeans(batch_size=batch_size, **kwargs)
        else:
            model = KMeans(**kwargs)
        model.fit(vectors)
        level_centroids = model.cluster_centers_.astype(np.float32)
        if project is None:
            labels = model.predict(vectors)
            # Recomputed from the final centroids so both k-means variants report the same quantity.
            residual = residual - level_centroids[labels]
        else:
            norms = np.linalg.norm(level_centroids, axis=1, keepdims=True)
            level_centroids = level_centroids / np.maximum(norms, 1e-12)
            labels = np.argmax(vectors @ level_centroids.T, axis=1)  # highest cosine similarity
            assert reconstruct is not None  # given together with project (checked above)
            residual = residual - np.asarray(reconstruct(level, level_centroids[labels]), dtype=np.float32)
        inertia = float(np.square(residual, dtype=np.float64).sum())
        levels.append(
            LevelFit(
                inertia=inertia,
                usage_fraction=np.unique(labels).size / codebook_size,
                quantization_error=inertia / energy,
            )
        )
        centroids.append(level_centroids)
    return ResidualKMeans(np.stack(centroids), tuple(levels))
