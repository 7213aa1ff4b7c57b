"""Helpers of the evaluation tests: a speech-like signal and a tiny codec with fitted codebooks."""

import numpy as np
import torch

from codec.config.model import ModelConfig
from codec.config.quantizer import QuantizerConfig
from codec.model.codec import build_codec

RATE = 16000


def speechlike(seconds: float = 1.0, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """Voiced harmonics with a syllable-rate envelope and a little noise, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(130 * (1 + 0.1 * np.sin(2 * np.pi * 1.7 * t))) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0.05, None)
    return (0.3 * voiced * envelope + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


def tiny_codec(seed: int = 0, num_levels: int = 4):
    """An untrained ``num_levels``-level, 32-entry codec (hop 320, 50 frames/s at 16 kHz), codebooks fitted by
    k-means."""
    torch.manual_seed(seed)
    codec = build_codec(
        ModelConfig(channels=4, latent_dim=16, n_residual_layers=1),
        QuantizerConfig(num_levels=num_levels, codebook_size=32),
        RATE,
    )
    # Fresh EMA codebooks are all zero (every frame would pick entry 0): fit them on the untrained
    # encoder's latents of a few seconds of speech-like audio, as the seed_codebooks stage does.
    from codec.quantization.kmeans import fit_residual_codebooks

    with torch.no_grad():
        audio = np.concatenate([speechlike(1.0, seed) for seed in range(2)])  # 100 frames
        latents = codec.encoder(torch.from_numpy(audio).view(1, 1, -1))[0].T.numpy()
    centroids, _ = fit_residual_codebooks(latents, num_levels, 32, seed=0, max_iter=5)
    codec.quantizer.load_centroids(centroids)
    return codec
