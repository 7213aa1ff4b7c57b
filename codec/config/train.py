"""Hyper-parameters of the training stage (the ``train:`` section of ``params.yaml``).

Batch sizes are per process: with ``torchrun --nproc_per_node N`` the global batch is
``N * batch_size``. Steps count training iterations, skipped (non-finite) ones included,
so step ``s`` always consumes batch ``s`` of the deterministic data stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class OptimizerConfig:
    name: Literal["adam", "adamw"] = "adamw"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.0
    # One kernel over all parameters instead of a loop of about five small ops per tensor: the same update,
    # rounded in another order. AdamW's step on the 8.9 M-parameter codec: 36 -> 10 ms on one core; a whole step
    # 1.03-1.05x faster (benchmarks/step_speed.py).
    fused: bool = True

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {self.betas}")
        if self.weight_decay < 0:
            raise ValueError("weight_decay must be >= 0")


@dataclass(frozen=True)
class ScheduleConfig:
    """Linear warmup from ``lr / warmup_steps`` to ``lr``, then decay to ``lr * min_lr_ratio`` at the last step."""

    warmup_steps: int = 50
    decay: Literal["cosine", "exponential", "constant"] = "cosine"
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise ValueError("warmup_steps must be >= 0")
        if not 0.0 < self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must lie in (0, 1], got {self.min_lr_ratio}")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 8  # crops per process and step
    segment_seconds: float = 0.5  # training crop length
    short_utterances: Literal["pad", "skip"] = "pad"  # utterances shorter than a crop: zero-pad or drop
    num_workers: int = 1  # DataLoader worker processes per rank (0 = load in the training process)
    prefetch_batches: int = 4  # batches each worker keeps ready
    cached_row_groups: int = 0  # Parquet row groups a worker keeps decoded; 0 = the whole split in memory
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    disc_optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=3e-4, betas=(0.5, 0.9)))
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    max_grad_norm: float = 1.0  # 0 = no clipping
    max_bad_steps: int = 10  # this many non-finite steps in a row stop the run
    log_every: int = 10
    validate_every: int = 250
    valid_segment_seconds: float = 4.0  # 64 x 4 s = 12,800 frames: enough to measure the use of 1,024 entries
    valid_max_examples: int = 64  # fixed crops from the valid split, the same at every validation
    valid_batch_size: int = 16
    checkpoint_every: int = 250
    keep_last: int = 2
    best_metric: Literal["snr_db", "mel_distance"] = "snr_db"
    final_weights: Literal["best", "last"] = "best"  # which weights the output model file holds
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    # bf16 autocast on CPU too: on processors with native bf16 (AVX-512 BF16, AMX) a step takes about half the time
    # (benchmarks/step_speed.py); the spectral losses stay float32 either way.
    cpu_bf16: bool = False
    compile: bool = False  # torch.compile the codec (CUDA runs)
    deterministic: bool = True  # torch.use_deterministic_algorithms on CPU
    weight_ema_decay: float = 0.0  # > 0: validate and export an EMA of the weights (codec.train.weight_ema); 0 = off

    def __post_init__(self) -> None:
        positive = (
            "steps",
            "batch_size",
            "prefetch_batches",
            "log_every",
            "validate_every",
            "valid_max_examples",
            "valid_batch_size",
            "checkpoint_every",
            "keep_last",
            "max_bad_steps",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.segment_seconds <= 0 or self.valid_segment_seconds <= 0:
            raise ValueError("segment_seconds and valid_segment_seconds must be positive")
        if self.num_workers < 0 or self.cached_row_groups < 0 or self.max_grad_norm < 0:
            raise ValueError("num_workers, cached_row_groups and max_grad_norm must be >= 0")
        if not 0.0 <= self.weight_ema_decay < 1.0:
            raise ValueError(f"weight_ema_decay must lie in [0, 1), got {self.weight_ema_decay}")
