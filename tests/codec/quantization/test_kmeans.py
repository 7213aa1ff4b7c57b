"""k-means seeding: planted clusters are found, residual levels lower the error, results repeat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.config.quantizer import QuantizerConfig
from codec.quantization.core_vq import ResidualVectorQuantizer
from codec.quantization.kmeans import fit_residual_codebooks


def planted(num_clusters: int = 8, dim: int = 4, per_cluster: int = 60, noise: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=5.0, size=(num_clusters, dim)).astype(np.float32)
    frames = np.repeat(centers, per_cluster, axis=0) + rng.normal(scale=noise, size=(num_clusters * per_cluster, dim))
    return centers, frames.astype(np.float32)


def test_recovers_planted_clusters():
    centers, frames = planted()
    centroids, levels = fit_residual_codebooks(frames, num_levels=1, codebook_size=8, seed=0)
    assert centroids.shape == (1, 8, 4) and centroids.dtype == np.float32
    # Every planted centre has a centroid next to it, one-to-one.
    distances = np.linalg.norm(centers[:, None] - centroids[0][None], axis=-1)
    assert distances.min(axis=1).max() < 0.05
    assert sorted(distances.argmin(axis=1).tolist()) == list(range(8))
    assert levels[0].usage_fraction == 1.0
    assert levels[0].quantization_error < 1e-3


def test_residual_levels_lower_the_error_level_by_level():
    rng = np.random.default_rng(1)
    frames = rng.normal(size=(600, 6)).astype(np.float32)
    centroids, levels = fit_residual_codebooks(frames, num_levels=3, codebook_size=16, seed=0)
    errors = [level.quantization_error for level in levels]
    assert errors[0] < 1.0 and errors[1] < errors[0] and errors[2] < errors[1]
    assert all(level.inertia > 0 for level in levels)
    # The quantizer seeded with them reproduces the same error on the same frames.
    quantizer = ResidualVectorQuantizer(6, QuantizerConfig(num_levels=3, codebook_size=16), frame_rate=50.0).eval()
    quantizer.load_centroids(centroids)
    x = torch.from_numpy(frames).T[None]
    stats = quantizer(x).stats
    np.testing.assert_allclose(stats.quantization_error.numpy(), errors, rtol=0.05)


def test_deterministic_given_seed_and_minibatch_variant():
    _, frames = planted(per_cluster=40)
    first = fit_residual_codebooks(frames, 2, 8, seed=5, minibatch_threshold=100, batch_size=128)
    second = fit_residual_codebooks(frames, 2, 8, seed=5, minibatch_threshold=100, batch_size=128)
    np.testing.assert_array_equal(first.centroids, second.centroids)
    assert first.levels == second.levels
    assert first.levels[0].quantization_error < 0.01  # MiniBatchKMeans also finds the clusters


def test_rejects_too_few_frames():
    with pytest.raises(ValueError, match="at least codebook_size"):
        fit_residual_codebooks(np.zeros((10, 3), np.float32), 1, 16, seed=0)
