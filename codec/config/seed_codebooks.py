"""Settings of the k-means codebook seeding (codec.train.seeding): the ``seed_codebooks:`` section of
params.yaml."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedCodebooksConfig:
    num_frames: int = 20000  # latent frames fitted; must be well above codebook_size
    crop_seconds: float = 2.0  # length of the random training crops fed to the encoder
    batch_size: int = 16  # crops per encoder forward
    minibatch_threshold: int = 50000  # MiniBatchKMeans above this many frames, Lloyd's KMeans below
    max_iter: int = 100  # k-means iterations per level

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.crop_seconds <= 0 or self.batch_size < 1 or self.max_iter < 1:
            raise ValueError("num_frames, crop_seconds, batch_size and max_iter must be positive")
