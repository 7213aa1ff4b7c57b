"""Builders of what a training run is made of: the parts a step changes, and the data it reads.

Each builder returns its parts and decides nothing else (audiocraft's solvers build the same way); the
order of the calls in :func:`build_parts` is the order in which the parts draw their initial weights from
torch's global RNG, so it is part of what makes two runs with one seed the same run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from codec.config.loss import LossConfig
from codec.config.train import OptimizerConfig, TrainConfig
from codec.data.crops import CropBatchSampler, CropDataset, build_loader, fixed_crops, index_split
from codec.formats.weights import load_codec
from codec.losses.codec_loss import CodecLoss
from codec.losses.discriminator import Discriminator
from codec.model.codec import Codec
from codec.train.distributed import DistInfo
from codec.train.weight_ema import WeightEMA


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(params: list[nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.name]
    return kind(params, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]), weight_decay=cfg.weight_decay, fused=cfg.fused)


def module_generators(module: nn.Module) -> dict[str, torch.Generator]:
    """Every ``torch.Generator`` held as a module attribute (e.g. the quantizer-dropout draws), by path.

    They are not in ``state_dict`` but decide the run, so checkpoints carry their states.
    """
    found = {}
    for name, mod in module.named_modules():
        for attr, value in vars(mod).items():
            if isinstance(value, torch.Generator):
                found[f"{name}.{attr}" if name else attr] = value
    return found


@dataclass
class TrainingParts:
    """What a training step reads and changes.

    ``model`` is ``codec`` as the step calls it (DDP- and ``torch.compile``-wrapped when asked, see
    :func:`wrap_model`); ``codec`` is the plain module whose weights are checkpointed and exported.
    ``persistent_buffers``: the codec's buffers in its state dict (the quantizer's EMA codebooks), which a
    bad step puts back; ``generators``: the RNGs held by modules (see :func:`module_generators`).
    """

    codec: Codec
    model: nn.Module
    discriminator: Discriminator
    loss: CodecLoss
    optimizer: torch.optim.Optimizer
    disc_optimizer: torch.optim.Optimizer
    weight_ema: WeightEMA | None
    codec_params: list[nn.Parameter]
    disc_params: list[nn.Parameter]
    generators: dict[str, torch.Generator]
    persistent_buffers: set[str]


def build_parts(cfg: TrainConfig, loss_cfg: LossConfig, device: torch.device, init: Path, seed: int) -> TrainingParts:
    """The codec from ``init``, the discriminator, the losses, both optimizers and the weight EMA, on ``device``."""
    seed_everything(seed)
    codec = load_codec(init, seed=seed).to(device)
    discriminator = Discriminator(loss_cfg.discriminator).to(device)
    loss = CodecLoss(loss_cfg, codec.sample_rate).to(device)
    codec_params = [p for p in codec.parameters() if p.requires_grad]
    disc_params = list(discriminator.parameters())
    return TrainingParts(
        codec=codec,
        model=codec,
        discriminator=discriminator,
        loss=loss,
        optimizer=make_optimizer(codec_params, cfg.optimizer),
        disc_optimizer=make_optimizer(disc_params, cfg.disc_optimizer),
        weight_ema=WeightEMA(codec, cfg.weight_ema_decay) if cfg.weight_ema_decay > 0 else None,
        codec_params=codec_params,
        disc_params=disc_params,
        generators=module_generators(codec),
        persistent_buffers=set(codec.state_dict()) & {n for n, _ in codec.named_buffers()},
    )


def wrap_model(codec: Codec, cfg: TrainConfig, info: DistInfo) -> nn.Module:
    """The codec as the training step calls it: in DDP across ranks, compiled when ``cfg.compile``."""
    model: nn.Module = codec
    if info.distributed:
        # The quantizer keeps its EMA buffers in sync itself (one all-reduce per step): no buffer broadcast.
        device_ids = [info.device] if info.device.type == "cuda" else None
        model = DistributedDataParallel(codec, device_ids=device_ids, broadcast_buffers=False)
    if cfg.compile:
        model = torch.compile(model)  # type: ignore[assignment]  # a compiled module is called like the module
    return model


@dataclass(frozen=True)
class TrainingData:
    """The training batches from ``start_batch`` on (``loader``, drawn by ``sampler``) and the fixed
    validation crops ``[N, 1, T]``."""

    loader: torch.utils.data.DataLoader
    sampler: CropBatchSampler
    valid_crops: torch.Tensor


def build_data(
    cfg: TrainConfig, shards: Path, sample_rate: int, info: DistInfo, seed: int, start_batch: int
) -> TrainingData:
    """Random crops of the train split for this rank, from batch ``start_batch`` (a resumed run's step) on:
    batch ``b`` is a pure function of (seed, epoch, rank); and the validation crops, in row order."""
    train_index = index_split(shards, "train", sample_rate)
    segment = round(cfg.segment_seconds * sample_rate)
    sampler = CropBatchSampler(
        train_index,
        segment,
        cfg.batch_size,
        seed=seed,
        rank=info.rank,
        world_size=info.world_size,
        short=cfg.short_utterances,
        locality_groups=cfg.cached_row_groups,
        start_batch=start_batch,
    )
    loader = build_loader(
        CropDataset(train_index, segment, cfg.cached_row_groups),
        sampler,
        num_workers=cfg.num_workers,
        prefetch_batches=cfg.prefetch_batches,
        pin_memory=info.device.type == "cuda",
        seed=seed,
    )
    # Validation crops are taken in row order: one decoded row group at a time is enough.
    valid_set = CropDataset(
        index_split(shards, "valid", sample_rate), round(cfg.valid_segment_seconds * sample_rate), cached_row_groups=1
    )
    return TrainingData(loader, sampler, fixed_crops(valid_set, cfg.valid_max_examples))
