"""Tiny synthetic shards, a tiny codec seed file and fast configs for the training tests."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from codec.config.loss import DiscriminatorConfig, LossConfig
from codec.config.train import OptimizerConfig, ScheduleConfig, TrainConfig

SAMPLE_RATE = 16000


def tiny_loss(adversarial_start_step: int = 1000) -> LossConfig:
    return LossConfig(
        stft_fft_sizes=[64, 128],
        mel_fft_sizes=[64, 128],
        mel_n_mels=16,
        adversarial_start_step=adversarial_start_step,
        discriminator=DiscriminatorConfig(channels=2, fft_sizes=[64, 128], dilations=[1]),
    )


def tiny_train(**overrides) -> TrainConfig:
    base = dict(
        steps=6,
        batch_size=4,
        segment_seconds=0.032,
        num_workers=0,
        log_every=1,
        validate_every=3,
        valid_segment_seconds=0.032,
        valid_max_examples=8,
        valid_batch_size=8,
        checkpoint_every=2,
        keep_last=2,
        optimizer=OptimizerConfig(lr=3e-3),
        schedule=ScheduleConfig(warmup_steps=2),
        device="cpu",
    )
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture
def tiny(synthetic_shards, tiny_init, tmp_path):
    """Everything a training test needs: ``tiny.run(cfg, loss, **kw)`` trains into ``tmp_path/<name>``."""
    from codec.train.loop import train

    # A tiny model gains nothing from threads, and on a busy 2-core machine each parallel op waits
    # for a time slice: one thread makes these runs about 10x faster.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def run(cfg: TrainConfig, loss: LossConfig | None = None, name: str = "run", **kwargs):
        folder = tmp_path / name
        kwargs.setdefault("seed", 7)
        kwargs.setdefault("progress", False)
        return train(
            cfg,
            loss or tiny_loss(),
            shards=synthetic_shards,
            init=tiny_init,
            checkpoints=folder / "checkpoints",
            **kwargs,
        )

    yield SimpleNamespace(
        run=run,
        shards=synthetic_shards,
        init=tiny_init,
        path=tmp_path,
        sample_rate=SAMPLE_RATE,
        train=tiny_train,
        loss=tiny_loss,
    )
    torch.set_num_threads(threads)
