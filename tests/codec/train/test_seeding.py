import numpy as np
import torch

from codec.config.model import ModelConfig
from codec.config.quantizer import QuantizerConfig
from codec.model.codec import build_codec
from codec.train.seeding import SeedCodebooksConfig, encoder_frames, seed_codebooks

SMALL = ModelConfig(channels=4, latent_dim=16, n_residual_layers=1)


def _codec(levels=3, size=32):
    torch.manual_seed(0)
    return build_codec(SMALL, QuantizerConfig(num_levels=levels, codebook_size=size), 16000)


def test_encoder_frames_are_the_encoder_outputs_of_training_crops(tiny_shards):
    codec = _codec()
    cfg = SeedCodebooksConfig(num_frames=300, crop_seconds=0.5, batch_size=4)
    frames, crops = encoder_frames(codec, tiny_shards, cfg, seed=1)
    assert frames.shape == (300, 16) and frames.dtype == np.float32
    assert crops == int(np.ceil(300 / 25))  # 0.5 s = 25 frames per crop
    again, _ = encoder_frames(codec, tiny_shards, cfg, seed=1)
    np.testing.assert_array_equal(frames, again)
    other, _ = encoder_frames(codec, tiny_shards, cfg, seed=2)
    assert not np.array_equal(frames, other)


def test_seeded_codebooks_quantize_encoder_frames_better_than_random_ones(tiny_shards):
    cfg = SeedCodebooksConfig(num_frames=600, crop_seconds=0.5, batch_size=8, max_iter=30)
    seeded = _codec()
    report = seed_codebooks(seeded, tiny_shards, cfg, seed=3)
    errors = [level.quantization_error for level in report.levels]
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0]
    assert all(level.usage_fraction > 0.5 for level in report.levels)

    frames, _ = encoder_frames(seeded, tiny_shards, cfg, seed=4)  # fresh frames, not the fitted ones
    x = torch.from_numpy(frames).T.unsqueeze(0)  # [1, D, N]
    seeded.quantizer.eval()
    seeded_err = (seeded.quantizer.decode(seeded.quantizer.encode(x)) - x).pow(2).mean()

    unseeded = _codec()  # same encoder weights, codebooks initialised from one batch instead
    unseeded.quantizer.train()
    unseeded.quantizer(x[..., :64])
    unseeded.quantizer.eval()
    random_err = (unseeded.quantizer.decode(unseeded.quantizer.encode(x)) - x).pow(2).mean()
    assert seeded_err < 0.8 * random_err
