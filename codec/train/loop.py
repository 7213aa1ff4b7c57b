"""The training loop: codec (+ discriminator once adversarial training starts), checkpoints, resume.

One function, :func:`train`, runs the same code on CPU, one GPU, or ``torchrun`` over many
GPUs and nodes (DDP). Everything a step consumes is deterministic given the seed, so a run
that is killed and resumed from its latest checkpoint ends with the same weights as one that
never stopped (bit for bit on CPU).

A step is atomic: the generator and discriminator gradients are both computed, then either both
optimizers step, or (a non-finite loss or gradient on any rank) neither does, the quantizer's
EMA buffers are put back as they were before the step, and the step counts as bad.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from codec.config.convert import to_dict
from codec.config.loss import LossConfig
from codec.config.train import OptimizerConfig, TrainConfig
from codec.data.crops import CropBatchSampler, CropDataset, build_loader, fixed_crops, index_split
from codec.formats.weights import load_codec, save_codec_weights
from codec.losses.codec_loss import CodecLoss
from codec.losses.discriminator import Discriminator
from codec.model.codec import Codec
from codec.quantization.core_vq import QuantizerStats
from codec.runtime.io import write_json_atomic
from codec.train import checkpoint as ckpt
from codec.train.distributed import (
    DistInfo,
    all_gather_objects,
    any_true,
    average_gradients,
    from_rank0,
    setup_distributed,
    teardown_distributed,
)
from codec.train.fingerprint import run_fingerprint
from codec.train.progress import TrainProgress
from codec.train.resume import resume_point
from codec.train.schedule import lr_factor
from codec.train.validation import BEST_METRICS, validate
from codec.train.weight_ema import WeightEMA

BatchHook = Callable[[int, torch.Tensor], torch.Tensor]


class StepResult(NamedTuple):
    """What one applied training step reports (a skipped step reports None)."""

    losses: dict[str, float]  # the generator loss and its terms, by name ("total", "mel", ...)
    grad_norm: float  # of the codec's gradients, before clipping
    stats: QuantizerStats  # code usage of the step's batch
    disc_loss: float | None = None  # the discriminator's, once adversarial training has started
    disc_grad_norm: float | None = None

    def log_values(self) -> dict[str, float]:
        """The step's figures as logged under ``train/``: losses, gradient norms, and the quantizer's means
        over levels (its per-level figures are logged by validation, over a whole pass)."""
        out = {f"loss/{name}": value for name, value in self.losses.items()}
        out["grad_norm"] = self.grad_norm
        if self.disc_loss is not None:
            out["loss/discriminator"], out["disc_grad_norm"] = self.disc_loss, self.disc_grad_norm
        out.update(self.stats.summary("vq/", per_level=False))
        return out


class TrainingDiverged(RuntimeError):
    """``max_bad_steps`` steps in a row had a non-finite loss or gradient; the run stopped."""


class MetricsLogger(Protocol):
    """What the loop needs from a metrics logger (``dvclive.Live`` fits): set ``step``, log, advance."""

    step: int

    def log_metric(self, name: str, val: float) -> Any: ...

    def next_step(self) -> Any: ...


@dataclass(frozen=True)
class TrainResult:
    step: int  # steps done (the run's end when it finished)
    resumed_from: int | None  # step of the checkpoint the run resumed from
    bad_steps: int  # steps skipped for a non-finite loss or gradient
    best_step: int | None
    best_value: float | None  # of TrainConfig.best_metric
    valid: dict[str, float]  # metrics of the last validation
    output: Path | None  # the exported weights (main rank)
    examples_per_second: float  # of training steps (all ranks; validation and checkpoints excluded), this session
    data_wait_fraction: float  # of that step time spent waiting for a batch
    seconds: float
    peak_gpu_memory_bytes: int | None = None  # torch.cuda.max_memory_allocated over the run (CUDA only)
    ranks: int = 1  # processes that trained together (all ended with the weights of weights_digest)
    weights_digest: str = ""  # sha256 of the final codec state (buffers included: the EMA codebooks)
    model_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)  # final codec weights (CPU)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.name]
    return kind(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def module_generators(module: torch.nn.Module) -> dict[str, torch.Generator]:
    """Every ``torch.Generator`` held as a module attribute (e.g. the quantizer-dropout draws), by path.

    They are not in ``state_dict`` but decide the run, so checkpoints carry their states.
    """
    found = {}
    for name, mod in module.named_modules():
        for attr, value in vars(mod).items():
            if isinstance(value, torch.Generator):
                found[f"{name}.{attr}" if name else attr] = value
    return found


def _set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base_lr * factor


def _grad_norm(params: list[torch.nn.Parameter], max_norm: float, device: torch.device) -> torch.Tensor:
    """Total L2 norm of the gradients (before clipping); clips them to ``max_norm`` when it is > 0."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=device)
    norm = torch.nn.utils.get_total_norm(grads)
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


class _Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        loss_cfg: LossConfig,
        info: DistInfo,
        *,
        shards: Path,
        init: Path,
        checkpoints: Path,
        seed: int,
        logger: MetricsLogger | None,
        progress: bool,
        batch_hook: BatchHook | None,
    ):
        self.cfg, self.loss_cfg, self.info = cfg, loss_cfg, info
        self.device = info.device
        self.checkpoints, self.seed = Path(checkpoints), seed
        self.logger = logger if info.is_main else None
        self.batch_hook = batch_hook
        self.show_progress = progress and info.is_main

        seed_everything(seed)
        self.codec: Codec = load_codec(init, seed=seed).to(self.device)
        self.codec_config = self.codec.config
        self.sample_rate = self.codec.sample_rate
        self.disc = Discriminator(loss_cfg.discriminator).to(self.device)
        self.loss = CodecLoss(loss_cfg, self.sample_rate).to(self.device)
        self.codec_params = [p for p in self.codec.parameters() if p.requires_grad]
        self.disc_params = list(self.disc.parameters())
        self.opt = make_optimizer(self.codec_params, cfg.optimizer)
        self.disc_opt = make_optimizer(self.disc_params, cfg.disc_optimizer)
        self.generators = module_generators(self.codec)
        self.persistent_buffers = set(self.codec.state_dict()) & {n for n, _ in self.codec.named_buffers()}
        self.weight_ema = WeightEMA(self.codec, cfg.weight_ema_decay) if cfg.weight_ema_decay > 0 else None

        self.step = 0
        self.bad_steps = 0
        self.consecutive_bad = 0
        self.best: dict[str, Any] | None = None
        self.resumed_from: int | None = None
        # Everything logged so far, as (step, {name: value}). Checkpoints carry it, so a resumed run
        # replays it into a fresh logger: DVC deletes the logs of a crashed stage, not its checkpoints.
        self.log_history: list[tuple[int, dict[str, float]]] = []
        self.fingerprint = run_fingerprint(cfg, loss_cfg, seed, init, shards)  # which checkpoints are this run's
        self._resume()

        self.model = self.codec
        if info.distributed:
            # The quantizer keeps its EMA buffers in sync itself (one all-reduce per step): no buffer broadcast.
            self.model = DistributedDataParallel(
                self.codec, device_ids=[self.device] if self.device.type == "cuda" else None, broadcast_buffers=False
            )
        if cfg.compile:
            self.model = torch.compile(self.model)

        train_index = index_split(shards, "train", self.sample_rate)
        segment = round(cfg.segment_seconds * self.sample_rate)
        self.sampler = CropBatchSampler(
            train_index,
            segment,
            cfg.batch_size,
            seed=seed,
            rank=info.rank,
            world_size=info.world_size,
            short=cfg.short_utterances,
            locality_groups=cfg.cached_row_groups,
            start_batch=self.step,
        )
        self.loader = build_loader(
            CropDataset(train_index, segment, cfg.cached_row_groups),
            self.sampler,
            num_workers=cfg.num_workers,
            prefetch_batches=cfg.prefetch_batches,
            pin_memory=self.device.type == "cuda",
            seed=seed,
        )
        # Validation crops are taken in row order: one decoded row group at a time is enough.
        valid_set = CropDataset(
            index_split(shards, "valid", self.sample_rate),
            round(cfg.valid_segment_seconds * self.sample_rate),
            cached_row_groups=1,
        )
        self.valid_crops = fixed_crops(valid_set, cfg.valid_max_examples)

    # ------------------------------------------------------------------------------ state

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.cfg.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly: plain tensors, dicts, lists and numbers."""
        return {
            "step": self.step,
            "fingerprint": self.fingerprint.digest,
            "fingerprint_parts": self.fingerprint.parts,
            "codec": {k: v.detach().cpu() for k, v in self.codec.state_dict().items()},
            "codec_config": self.codec_config,
            "discriminator": {k: v.detach().cpu() for k, v in self.disc.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "disc_optimizer": self.disc_opt.state_dict(),
            "weight_ema": None if self.weight_ema is None else self.weight_ema.state_dict(),
            # The schedules are pure functions of the step; the factors are kept for the record.
            "schedule": {"step": self.step, "lr_factor": lr_factor(self.step, self.cfg.steps, self.cfg.schedule)},
            "rng": ckpt.capture_rng_state(),
            "generators": {name: g.get_state() for name, g in self.generators.items()},
            "data": {
                "batches_consumed": self.step,
                "world_size": self.info.world_size,
                "batch_size": self.cfg.batch_size,
                "seed": self.seed,
            },
            "guard": {"bad_steps": self.bad_steps, "consecutive_bad": self.consecutive_bad},
            "best": self.best,
            "log_history": self.log_history,
            "train_config": to_dict(self.cfg),
            "loss_config": to_dict(self.loss_cfg),
        }

    def _resume(self) -> None:
        """Load the checkpoint :func:`codec.train.resume.resume_point` picks (on the main rank) on every rank."""
        path, state = None, None
        if self.info.is_main and (point := resume_point(self.checkpoints, self.fingerprint)) is not None:
            path, state = point
        path = from_rank0(None if path is None else str(path), self.info)
        if path is None:
            return
        if state is None:  # the other ranks read it too; the main rank already has it
            state = ckpt.load_checkpoint(path)
        try:
            self.codec.load_state_dict(state["codec"])
            self.disc.load_state_dict(state["discriminator"])
            self.opt.load_state_dict(state["optimizer"])
            self.disc_opt.load_state_dict(state["disc_optimizer"])
            if self.weight_ema is not None:
                self.weight_ema.load_state_dict(state["weight_ema"])
            for name, g in self.generators.items():
                g.set_state(state["generators"][name])
            ckpt.restore_rng_state(state["rng"])
            self.step = int(state["step"])
            self.bad_steps = int(state["guard"]["bad_steps"])
            self.consecutive_bad = int(state["guard"]["consecutive_bad"])
            self.best = state["best"]
            self.log_history = [(int(step), dict(row)) for step, row in state["log_history"]]
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise ckpt.CheckpointError(f"{path}: does not fit this run's model or optimizers: {exc}") from None
        self.resumed_from = self.step

    def _save(self, best: bool) -> None:
        if not self.info.is_main:
            return
        state = self.state()
        if best:
            ckpt.save_checkpoint(self.checkpoints / ckpt.BEST_NAME, state)
        if self.step % self.cfg.checkpoint_every == 0 or self.step == self.cfg.steps:
            ckpt.save_checkpoint(ckpt.checkpoint_path(self.checkpoints, self.step), state)
            ckpt.prune_checkpoints(self.checkpoints, self.cfg.keep_last)

    # ------------------------------------------------------------------------------- step

    def train_step(self, x: torch.Tensor) -> StepResult | None:
        """One atomic step on batch ``x [B, 1, T]``; None when it was skipped (non-finite loss or gradient)."""
        step = self.step
        _set_lr(self.opt, self.cfg.optimizer.lr, lr_factor(step, self.cfg.steps, self.cfg.schedule))
        _set_lr(self.disc_opt, self.cfg.disc_optimizer.lr, lr_factor(step, self.cfg.steps, self.cfg.schedule))
        adversarial = self.loss.adversarial_active(step)
        # The forward updates the EMA codebooks: keep them to undo a bad step.
        buffers = {name: b.clone() for name, b in self.codec.named_buffers() if name in self.persistent_buffers}
        with self._autocast():
            out = self.model(x)
            self.disc.requires_grad_(False)
            gen = self.loss.generator_loss(
                x, out.reconstruction, out.commitment_loss, step=step, discriminator=self.disc if adversarial else None
            )
        self.disc.requires_grad_(True)
        gen.total.backward()
        watch = [gen.total.detach(), _grad_norm(self.codec_params, self.cfg.max_grad_norm, self.device)]
        if adversarial:
            with self._autocast():
                disc_loss = self.loss.discriminator_loss(self.disc, x, out.reconstruction)
            disc_loss.total.backward()
            average_gradients(self.disc_params, self.info)
            watch += [disc_loss.total.detach(), _grad_norm(self.disc_params, self.cfg.max_grad_norm, self.device)]
        values = torch.stack([w.float() for w in watch]).tolist()
        bad = any_true(not all(math.isfinite(v) for v in values), self.info)
        if bad:
            self.codec.load_state_dict(buffers, strict=False)
        else:
            self.opt.step()
            if self.weight_ema is not None:
                self.weight_ema.update(self.codec, step)
            if adversarial:
                self.disc_opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.disc_opt.zero_grad(set_to_none=True)
        if bad:
            return None
        return StepResult(
            losses=dict(gen.breakdown),
            grad_norm=values[1],
            stats=out.stats,
            disc_loss=values[2] if adversarial else None,
            disc_grad_norm=values[3] if adversarial else None,
        )

    # -------------------------------------------------------------------------------- run

    def run(self, out: Path | None) -> TrainResult:
        cfg = self.cfg
        examples_per_step = cfg.batch_size * self.info.world_size
        bar = TrainProgress(cfg.steps, self.step, examples_per_step, enabled=self.show_progress)
        t0 = time.perf_counter()
        # Throughput is timed over training steps only (batch wait + step), from the session's second
        # step on: the first one pays for the loader's start-up and warm-up allocations.
        timed_steps, step_seconds, waited, first = 0, 0.0, 0.0, True
        last_valid: dict[str, float] = {}
        for step, row in self.log_history:  # a resumed run: its logs so far, as they were written
            self._emit(step, row)
        try:
            batches = iter(self.loader) if self.step < cfg.steps else iter(())
            while self.step < cfg.steps:
                t_wait = time.perf_counter()
                x = next(batches)
                t_got = time.perf_counter()
                x = x.to(self.device, non_blocking=True)
                if self.batch_hook is not None:
                    x = self.batch_hook(self.step, x)
                result = self.train_step(x)  # ends with a host sync (finite check): the time is real
                if not first:
                    timed_steps += 1
                    step_seconds += time.perf_counter() - t_wait
                    waited += t_got - t_wait
                first = False
                self.step += 1
                to_log: dict[str, float] = {}
                if result is None:
                    self.bad_steps += 1
                    self.consecutive_bad += 1
                    if self.consecutive_bad >= cfg.max_bad_steps:
                        first_bad = self.step - self.consecutive_bad + 1
                        latest = ckpt.latest_checkpoint(self.checkpoints)
                        raise TrainingDiverged(
                            f"training diverged: steps {first_bad}..{self.step} ({self.consecutive_bad} in a row) "
                            f"had a non-finite loss or gradient (max_bad_steps={cfg.max_bad_steps}); "
                            f"last good checkpoint: {latest if latest else 'none written yet'}"
                        )
                else:
                    self.consecutive_bad = 0
                    if self.step % cfg.log_every == 0 and self.logger is not None:
                        to_log.update({f"train/{k}": v for k, v in result.log_values().items()})
                        to_log["train/lr"] = self.opt.param_groups[0]["lr"]
                        to_log["train/bad_steps"] = float(self.bad_steps)
                improved = False
                if self.step % cfg.validate_every == 0 or self.step == cfg.steps:
                    last_valid = self.validate()
                    improved = self._update_best(last_valid)
                    bar.snr_db = last_valid["snr_db"]
                    to_log.update({f"valid/{k}": v for k, v in last_valid.items()})
                self._log(to_log)  # before the save: a checkpoint carries its own step's logs
                self._save(best=improved)
                bar.update(self.step, None if result is None else result.losses["total"])
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        digest = ranks_agree(self.codec, self.info)
        if not last_valid:  # nothing trained this session: the checkpoint's last validation, as it was logged
            last_valid = self._last_logged_validation() or self.validate()
        output = self._export(out) if out is not None and self.info.is_main else None
        return TrainResult(
            step=self.step,
            resumed_from=self.resumed_from,
            bad_steps=self.bad_steps,
            best_step=None if self.best is None else self.best["step"],
            best_value=None if self.best is None else self.best["value"],
            valid=last_valid,
            output=output,
            examples_per_second=timed_steps * examples_per_step / step_seconds if step_seconds > 0 else 0.0,
            data_wait_fraction=waited / step_seconds if step_seconds > 0 else 0.0,
            seconds=seconds,
            peak_gpu_memory_bytes=torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None,
            model_state={k: v.detach().cpu().clone() for k, v in self.codec.state_dict().items()},
            ranks=self.info.world_size,
            weights_digest=digest,
        )

    def validate(self) -> dict[str, float]:
        """Validation of the weights the run exports: their EMA when there is one."""
        averaged = contextlib.nullcontext() if self.weight_ema is None else self.weight_ema.applied(self.codec)
        with averaged:
            return validate(
                self.codec, self.loss, self.valid_crops, self.cfg.valid_batch_size, self.device, self._autocast
            )

    def _last_logged_validation(self) -> dict[str, float]:
        for _, row in reversed(self.log_history):
            if any(name.startswith("valid/") for name in row):
                return {name[len("valid/") :]: value for name, value in row.items() if name.startswith("valid/")}
        return {}

    def _update_best(self, metrics: dict[str, float]) -> bool:
        metric = BEST_METRICS[self.cfg.best_metric]
        value = metrics[metric.name]
        if not math.isfinite(value):
            return False
        better = self.best is None or metric.better(value, self.best["value"])
        if better:
            self.best = {"metric": metric.name, "value": float(value), "step": self.step}
        return better

    def _log(self, metrics: dict[str, float]) -> None:
        if not metrics:
            return
        row = {name: float(value) for name, value in metrics.items()}
        self.log_history.append((self.step, row))
        self._emit(self.step, row)

    def _emit(self, step: int, row: dict[str, float]) -> None:
        if self.logger is None:
            return
        self.logger.step = step
        for name, value in row.items():
            self.logger.log_metric(name, value)
        self.logger.next_step()

    def _export(self, out: Path) -> Path:
        """Write the final weights (best on validation, or the last; their EMA when there is one) with their
        config to ``out``."""
        state, source, step = self.codec.state_dict(), "last", self.step
        if self.weight_ema is not None:
            state = self.weight_ema.module_state(self.codec)
        best_path = self.checkpoints / ckpt.BEST_NAME
        if self.cfg.final_weights == "best" and self.best is not None and best_path.is_file():
            best = ckpt.load_checkpoint(best_path)
            state, source, step = best["codec"], "best", int(best["step"])
            if best["weight_ema"] is not None:
                state = {**state, **{k: v.to(state[k].dtype) for k, v in best["weight_ema"].items()}}
        meta = {"stage": "train", "step": str(step), "weights": source}
        if self.weight_ema is not None:
            meta["weight_ema_decay"] = repr(self.cfg.weight_ema_decay)
        if self.best is not None:
            meta[f"valid_{self.best['metric']}"] = repr(self.best["value"])
        return save_codec_weights(out, state, self.codec_config, meta)


def ranks_agree(codec: Codec, info: DistInfo) -> str:
    """The digest of the final codec state, checked equal on every rank: DDP averages the gradients and the
    quantizer all-reduces its EMA statistics, so a difference is a bug (or a rank that read other data), and
    a run must not hand back weights only one rank had. Raises RuntimeError naming the ranks that differ."""
    digest = ckpt.state_digest({k: v.detach().cpu() for k, v in codec.state_dict().items()})
    if not info.distributed:
        return digest
    digests = all_gather_objects(digest, info)
    if len(set(digests)) > 1:
        differ = [rank for rank, d in enumerate(digests) if d != digests[0]]
        raise RuntimeError(f"ranks {differ} ended with other weights than rank 0: the ranks diverged")
    return digest


def train(
    cfg: TrainConfig,
    loss_cfg: LossConfig,
    *,
    shards: str | Path,
    init: str | Path,
    checkpoints: str | Path,
    seed: int,
    out: str | Path | None = None,
    logger: MetricsLogger | None = None,
    summary_path: str | Path | None = None,
    progress: bool = True,
    batch_hook: BatchHook | None = None,
) -> TrainResult:
    """Train the codec in ``init`` (a weights file, see :mod:`codec.formats.weights`) on ``shards``.

    Resumes from the latest checkpoint of the same run in ``checkpoints``, first replaying into ``logger``
    what the run had logged up to that checkpoint: the logs end as an uninterrupted run's. Single process, or
    one process per GPU under ``torchrun`` (only rank 0 logs and writes files). Writes the final
    weights to ``out`` and a summary JSON to ``summary_path`` when given.
    ``batch_hook(step, batch)`` may replace a batch before the step (augmentation, fault injection).
    Raises :class:`TrainingDiverged` after ``max_bad_steps`` non-finite steps in a row,
    :class:`codec.train.checkpoint.CheckpointError` for an unusable checkpoint and
    :class:`codec.formats.weights.WeightsError` for an unusable init file.
    """
    info = setup_distributed(cfg.device)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    matmul_precision = torch.get_float32_matmul_precision()
    try:
        if info.device.type == "cpu" and cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if info.device.type == "cuda":
            torch.set_float32_matmul_precision("high")  # TF32 matmuls
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        trainer = _Trainer(
            cfg,
            loss_cfg,
            info,
            shards=Path(shards),
            init=Path(init),
            checkpoints=Path(checkpoints),
            seed=seed,
            logger=logger,
            progress=progress,
            batch_hook=batch_hook,
        )
        result = trainer.run(None if out is None else Path(out))
        if summary_path is not None and info.is_main:
            write_json_atomic(summary_path, summary_dict(result, cfg))
        return result
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        torch.set_float32_matmul_precision(matmul_precision)
        teardown_distributed(info)


def summary_dict(result: TrainResult, cfg: TrainConfig) -> dict[str, Any]:
    """The run's final figures as plain JSON values; no timings nor whether it was resumed (see
    :func:`timings_dict`), so that a rebuild, or a replay of a finished run, writes the same bytes. The last
    validation is not repeated here: dvclive's ``metrics.json`` beside it holds it (the last logged values)."""
    return {
        "steps": result.step,
        "bad_steps": result.bad_steps,
        "best": {"metric": cfg.best_metric, "value": result.best_value, "step": result.best_step},
        "weights": None if result.output is None else str(result.output),
    }


def timings_dict(result: TrainResult) -> dict[str, Any]:
    """The run's speed and history (resumed or not): kept apart from the reproducible outputs."""
    return {
        "resumed_from": result.resumed_from,
        "examples_per_second": result.examples_per_second,
        "data_wait_fraction": result.data_wait_fraction,
        "seconds": result.seconds,
        "steps": result.step,
        "peak_gpu_memory_bytes": result.peak_gpu_memory_bytes,
    }
