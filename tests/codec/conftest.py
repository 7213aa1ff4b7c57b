"""A tiny codec with seeded codebooks, and its export, for the export/streaming/CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from codec.config.model import ModelConfig
from codec.config.quantizer import QuantizerConfig
from codec.data.tone_shards import write_synthetic_shards
from codec.formats.export import ExportConfig, export_codec
from codec.formats.weights import save_codec_weights
from codec.model.codec import Codec, build_codec

SAMPLE_RATE = 16000
TINY_MODEL = ModelConfig(channels=4, latent_dim=16, n_residual_layers=1)  # hop 320: 50 frames/s
TINY_QUANTIZER = QuantizerConfig(num_levels=4, codebook_size=32)


def make_tiny_codec(seed: int = 0) -> Codec:
    """Random weights; codebooks seeded (one training forward) from the encoder's latents of noise, so
    codes vary and decoding is not trivially zero. Eval mode."""
    torch.manual_seed(seed)
    codec = build_codec(TINY_MODEL, TINY_QUANTIZER, SAMPLE_RATE, seed=seed)
    codec.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see `single_thread`
    try:
        codec(0.3 * torch.randn(4, 1, SAMPLE_RATE), n_q=TINY_QUANTIZER.num_levels)
    finally:
        torch.set_num_threads(threads)
    return codec.eval()


def speechlike(seconds: float, rate: int = SAMPLE_RATE, channels: int = 1, seed: int = 0) -> np.ndarray:
    """``(frames, channels)`` float32: a gliding harmonic tone with syllable-rate envelope, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 * (1 + 0.1 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 5)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    x = 0.3 * voiced[:, None] + 0.01 * rng.standard_normal((t.size, channels))
    return (x / np.abs(x).max() * 0.8).astype(np.float32)


@pytest.fixture
def single_thread():
    """One torch thread: the tiny convolutions gain nothing from two, and on a loaded 2-core machine
    OpenMP's spinning threads make them up to 100x slower. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_codec() -> Codec:
    """Shared: do not modify (deep-copy it first)."""
    return make_tiny_codec()


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_codec):
    path = tmp_path_factory.mktemp("export") / "tiny.safetensors"
    export_codec(tiny_codec, path, ExportConfig())
    return path


@pytest.fixture
def speech_wav(tmp_path):
    """Writer of speech-like WAV files: ``speech_wav(name, seconds, rate, channels, subtype)`` -> path."""

    def write(
        name: str = "in.wav", seconds: float = 1.0, rate: int = SAMPLE_RATE, channels: int = 1, subtype: str = "PCM_16"
    ):
        path = tmp_path / name
        sf.write(path, speechlike(seconds, rate, channels), rate, subtype=subtype)
        return path

    return write


@pytest.fixture(scope="session")
def tiny_init(tmp_path_factory) -> Path:
    """A 2-level, 16-entry codec whose codebooks are seeded from the first training batch."""
    torch.manual_seed(0)
    codec = build_codec(
        ModelConfig(channels=4, latent_dim=8, strides=[2, 4], n_residual_layers=1),
        QuantizerConfig(num_levels=2, codebook_size=16),
        SAMPLE_RATE,
    )
    path = tmp_path_factory.mktemp("init") / "seed.safetensors"
    return save_codec_weights(path, codec.state_dict(), codec.config, {"stage": "test"})


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory) -> Path:
    """Shards of random-tone rows straight from ``codec.data.tone_shards`` (no prepare run): data and training tests."""
    return write_synthetic_shards(tmp_path_factory.mktemp("shards"), sample_rate=SAMPLE_RATE)
