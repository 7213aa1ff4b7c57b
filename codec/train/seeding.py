"""Seed the residual codebooks with k-means on the untrained encoder's outputs.

An EMA codebook initialised at random starts far from the encoder's latents, so most entries
are never picked and the first thousands of steps only undo that (negative SNR). Fitting each
level on the residuals the levels before it leave puts every entry where frames actually fall.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from codec.config.seed_codebooks import SeedCodebooksConfig
from codec.data.crops import CropBatchSampler, CropDataset, index_split
from codec.model.codec import Codec
from codec.quantization.kmeans import LevelFit, fit_residual_codebooks


class SeedReport(NamedTuple):
    """What seeding did: ``levels[l]`` is level ``l``'s k-means fit; ``num_frames`` frames fitted."""

    levels: tuple[LevelFit, ...]
    num_frames: int
    num_crops: int

    def metrics(self) -> dict:
        """JSON-ready per-level inertia, usage and cumulative quantization error."""
        return {
            "num_frames": self.num_frames,
            "num_crops": self.num_crops,
            "levels": [level._asdict() for level in self.levels],
            "final_quantization_error": self.levels[-1].quantization_error,
            "min_usage_fraction": min(level.usage_fraction for level in self.levels),
        }


@torch.no_grad()
def encoder_frames(codec: Codec, shards: str | Path, config: SeedCodebooksConfig, seed: int) -> tuple[np.ndarray, int]:
    """Latent frames ``[num_frames, D]`` of random training crops through ``codec.encoder``.

    Crops are drawn as the training loader draws them (epoch 0 of a sampler seeded with ``seed``),
    so the sample covers utterances in proportion to their length. Returns the frames and the
    number of crops encoded.
    """
    crop = int(round(config.crop_seconds * codec.sample_rate))
    crop -= crop % codec.hop_length  # whole frames only: no padded frame in the sample
    if crop < codec.hop_length:
        raise ValueError(f"crop_seconds={config.crop_seconds} is shorter than one frame")
    frames_per_crop = crop // codec.hop_length
    index = index_split(shards, "train", codec.sample_rate)
    dataset = CropDataset(index, crop)
    sampler = CropBatchSampler(index, crop, 1, seed=seed)
    keys = sampler.epoch_keys(0)
    wanted = math.ceil(config.num_frames / frames_per_crop)
    keys = keys[:wanted]
    codec.eval()
    chunks = []
    for start in range(0, len(keys), config.batch_size):
        batch = torch.stack([dataset[(int(r), int(s))] for r, s in keys[start : start + config.batch_size]])
        latents = codec.encoder(batch)  # [B, D, F]
        chunks.append(latents.transpose(1, 2).reshape(-1, latents.shape[1]).numpy())
    frames = np.concatenate(chunks)
    if len(frames) > config.num_frames:
        rng = np.random.default_rng(seed)
        frames = frames[np.sort(rng.choice(len(frames), config.num_frames, replace=False))]
    return frames, len(keys)


def seed_codebooks(codec: Codec, shards: str | Path, config: SeedCodebooksConfig, seed: int) -> SeedReport:
    """Fit every level of ``codec.quantizer`` with k-means on encoder frames of the train split."""
    frames, num_crops = encoder_frames(codec, shards, config, seed)
    quantizer = codec.quantizer
    if len(frames) < quantizer.codebook_size:
        raise ValueError(
            f"the train split gives {len(frames)} latent frames, fewer than the codebook size "
            f"{quantizer.codebook_size}: use a larger corpus or a smaller codebook"
        )

    def project(level: int, residual: np.ndarray) -> np.ndarray:
        return quantizer.project(level, torch.from_numpy(residual)).numpy()

    def reconstruct(level: int, entries: np.ndarray) -> np.ndarray:
        return quantizer.reconstruct(level, torch.from_numpy(entries)).numpy()

    factorised = quantizer.factorised  # then each level is fitted in its projected space
    with torch.no_grad():
        fit = fit_residual_codebooks(
            frames,
            quantizer.num_levels,
            quantizer.codebook_size,
            seed,
            minibatch_threshold=config.minibatch_threshold,
            max_iter=config.max_iter,
            project=project if factorised else None,
            reconstruct=reconstruct if factorised else None,
        )
    quantizer.load_centroids(torch.from_numpy(fit.centroids))
    return SeedReport(fit.levels, len(frames), num_crops)
