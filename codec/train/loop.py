"""The training loop: codec (+ discriminator once adversarial training starts), checkpoints, resume.

One function, :func:`train`, runs the same code on CPU, one GPU, or ``torchrun`` over many
GPUs and nodes (DDP). Everything a step consumes is deterministic given the seed, so a run
that is killed and resumed from its latest checkpoint ends with the same weights as one that
never stopped (bit for bit on CPU). A run asked to stop (SIGTERM: a cluster's time limit, ``kill``; SIGINT:
Ctrl-C) finishes the step it is in, writes a checkpoint of it and stops: nothing is lost, and the same command
resumes there (a second signal stops at once, from the last periodic checkpoint).

The parts are built by :mod:`codec.train.parts`, a step is :func:`codec.train.step.train_step` (atomic: both
optimizers step or neither), the checkpoint content is :mod:`codec.train.run_state`'s; this module only
sequences them: resume, the steps with the bad-step guard, logging, validation, checkpoints and the export.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from codec.config.loss import LossConfig
from codec.config.train import TrainConfig
from codec.formats.weights import save_codec_weights
from codec.model.codec import Codec
from codec.runtime.interrupts import StopRequest, deferred_stop
from codec.runtime.io import write_json_atomic
from codec.train import checkpoint as ckpt
from codec.train.distributed import (
    DistInfo,
    all_gather_objects,
    any_true,
    from_rank0,
    setup_distributed,
    teardown_distributed,
)
from codec.train.fingerprint import RunFingerprint, run_fingerprint
from codec.train.parts import TrainingData, TrainingParts, build_data, build_parts, wrap_model
from codec.train.progress import TrainProgress
from codec.train.resume import resume_point
from codec.train.run_state import RunState, checkpoint_state, restore
from codec.train.step import Autocast, StepResult, autocast_for, train_step
from codec.train.validation import BEST_METRICS, validate

__all__ = ["BatchHook", "MetricsLogger", "StepResult", "TrainResult", "TrainingDiverged", "train"]

BatchHook = Callable[[int, torch.Tensor], torch.Tensor]


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
    seconds: float  # this session's
    total_seconds: float | None  # the run's, over every session (None: its earlier sessions' are not on record)
    peak_gpu_memory_bytes: int | None = None  # torch.cuda.max_memory_allocated over the run (CUDA only)
    ranks: int = 1  # processes that trained together (all ended with the weights of weights_digest)
    weights_digest: str = ""  # sha256 of the final codec state (buffers included: the EMA codebooks)
    model_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)  # final codec weights (CPU)
    time_ledger: dict[str, Any] = field(default_factory=dict)  # see read_time_ledger


def read_time_ledger(path: Path | None, fingerprint: str) -> dict[str, float]:
    """Wall seconds the run ``fingerprint`` had taken at each of its checkpoints (``{"2500": s, ...}``, over
    every session), from the ledger at ``path`` that its earlier sessions wrote; empty when there is none.

    Not in the checkpoints: they are outputs that rebuild byte for byte, and a time never does. A session that
    resumes from step ``s`` adds its own seconds to the ledger's at ``s``; the steps a killed session did after
    its last checkpoint are done again, and their time is not counted."""
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("fingerprint") != fingerprint:
        return {}
    seconds = data.get("checkpoint_seconds")
    if not isinstance(seconds, dict):
        return {}
    return {str(k): float(v) for k, v in seconds.items() if isinstance(v, (int, float))}


@dataclass
class _Timer:
    """Throughput of whole training iterations (batch wait, step, logging, progress), validation and checkpoint
    writes excluded, from the session's second step on: the first one pays for the loader's start-up and
    warm-up allocations. Whole iterations, not the step alone: on CUDA work queued by one step can run
    while the host is outside it, and a figure that left that time out read 3.5x too fast on an H200."""

    steps: int = 0
    seconds: float = 0.0
    waited: float = 0.0
    started: bool = False

    def add(self, t_wait: float, t_got: float, t_done: float, excluded: float = 0.0) -> None:
        if self.started:
            self.steps += 1
            self.seconds += t_done - t_wait - excluded
            self.waited += t_got - t_wait
        self.started = True


def resume_run(parts: TrainingParts, checkpoints: Path, fingerprint: RunFingerprint, info: DistInfo) -> RunState:
    """The state of the checkpoint :func:`codec.train.resume.resume_point` picks (on the main rank), loaded on
    every rank into ``parts``; a fresh state when there is none."""
    path: Path | None = None
    state: dict[str, Any] | None = None
    if info.is_main and (point := resume_point(checkpoints, fingerprint)) is not None:
        path, state = point
    shared = from_rank0(None if path is None else str(path), info)
    if shared is None:
        return RunState()
    if state is None:  # the other ranks read it too; the main rank already has it
        state = ckpt.load_checkpoint(shared)
    return restore(parts, state, shared)


class _Session:
    """One process's share of a run, from its resume point to its end: sequencing only."""

    def __init__(
        self,
        parts: TrainingParts,
        data: TrainingData,
        run: RunState,
        fingerprint: RunFingerprint,
        cfg: TrainConfig,
        loss_cfg: LossConfig,
        info: DistInfo,
        *,
        checkpoints: Path,
        seed: int,
        logger: MetricsLogger | None,
        progress: bool,
        batch_hook: BatchHook | None,
        time_ledger: Path | None = None,
    ):
        self.parts, self.data, self.run, self.fingerprint = parts, data, run, fingerprint
        self.cfg, self.loss_cfg, self.info = cfg, loss_cfg, info
        self.checkpoints, self.seed = checkpoints, seed
        self.logger = logger if info.is_main else None
        self.show_progress = progress and info.is_main
        self.batch_hook = batch_hook
        self.t0 = 0.0  # when this session's training began (perf_counter)
        self.time_ledger = time_ledger if info.is_main else None
        self.checkpoint_seconds = read_time_ledger(self.time_ledger, fingerprint.digest)
        # The earlier sessions' seconds up to the resume point (None: not on record)
        self.seconds_before: float | None = (
            0.0 if run.resumed_from is None else self.checkpoint_seconds.get(str(run.resumed_from))
        )
        self.autocast: Autocast = autocast_for(info.device, cfg.bf16, cfg.cpu_bf16)

    def train(self, out: Path | None) -> TrainResult:
        cfg, run = self.cfg, self.run
        examples_per_step = cfg.batch_size * self.info.world_size
        bar = TrainProgress(cfg.steps, run.step, examples_per_step, enabled=self.show_progress)
        t0 = self.t0 = time.perf_counter()
        timer = _Timer()
        last_valid: dict[str, float] = {}
        for step, row in run.log_history:  # a resumed run: its logs so far, as they were written
            self._emit(step, row)
        stopped = False
        with deferred_stop() as stop, contextlib.closing(bar):
            for x, t_wait, t_got in self._batches(stop):
                if self.batch_hook is not None:
                    x = self.batch_hook(run.step, x)
                result = train_step(self.parts, x, run.step, cfg, self.info, self.autocast)
                run.step += 1
                to_log = self._after_step(result)
                improved = False
                t_valid = time.perf_counter()
                if run.step % cfg.validate_every == 0 or run.step == cfg.steps:
                    last_valid = self.validate()
                    improved = self._update_best(last_valid)
                    bar.snr_db = last_valid["snr_db"]
                    to_log.update({f"valid/{k}": v for k, v in last_valid.items()})
                excluded = time.perf_counter() - t_valid
                self._log(to_log)  # before the save: a checkpoint carries its own step's logs
                t_save = time.perf_counter()
                self._save(best=improved)
                excluded += time.perf_counter() - t_save
                bar.update(run.step, None if result is None else float(result.losses["total"]))
                timer.add(t_wait, t_got, time.perf_counter(), excluded)
                # Every rank stops after the same step (an all-reduce of the flag; none in one process).
                if any_true(stop.asked, self.info):
                    stopped = True
                    break
        if stopped or stop.asked:
            self._stop(stop)
        seconds = time.perf_counter() - t0
        codec = self.parts.codec
        digest = ranks_agree(codec, self.info)
        if not last_valid:  # nothing trained this session: the checkpoint's last validation, as it was logged
            last_valid = self._last_logged_validation() or self.validate()
        output = self._export(out) if out is not None and self.info.is_main else None
        device = self.info.device
        return TrainResult(
            step=run.step,
            resumed_from=run.resumed_from,
            bad_steps=run.bad_steps,
            best_step=None if run.best is None else run.best["step"],
            best_value=None if run.best is None else run.best["value"],
            valid=last_valid,
            output=output,
            examples_per_second=timer.steps * examples_per_step / timer.seconds if timer.seconds > 0 else 0.0,
            data_wait_fraction=timer.waited / timer.seconds if timer.seconds > 0 else 0.0,
            seconds=seconds,
            total_seconds=None if self.seconds_before is None else self.seconds_before + seconds,
            peak_gpu_memory_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
            model_state={k: v.detach().cpu().clone() for k, v in codec.state_dict().items()},
            ranks=self.info.world_size,
            weights_digest=digest,
            time_ledger=self._ledger(),
        )

    def _batches(self, stop: StopRequest) -> Iterator[tuple[torch.Tensor, float, float]]:
        """The remaining steps' batches on the device, with when the wait for each began and ended; none more
        once a stop is asked (in one process: with several, the ranks agree on the step to stop after)."""
        if self.run.step >= self.cfg.steps:
            return
        batches = iter(self.data.loader)
        while self.run.step < self.cfg.steps:
            if stop.asked and not self.info.distributed:
                return
            t_wait = time.perf_counter()
            try:
                x = next(batches)
            except Exception:
                # Ctrl-C reaches the loader's worker processes too, and a worker that died fails the fetch:
                # the steps done so far are whole, so stop after them.
                if stop.asked and not self.info.distributed:
                    return
                raise
            t_got = time.perf_counter()
            yield x.to(self.info.device, non_blocking=True), t_wait, t_got

    def _after_step(self, result: StepResult | None) -> dict[str, float]:
        """The bad-step guard, and the step's training figures when they are due for logging."""
        run, cfg = self.run, self.cfg
        if result is None:
            run.bad_steps += 1
            run.consecutive_bad += 1
            if run.consecutive_bad >= cfg.max_bad_steps:
                first_bad = run.step - run.consecutive_bad + 1
                latest = ckpt.latest_checkpoint(self.checkpoints)
                raise TrainingDiverged(
                    f"training diverged: steps {first_bad}..{run.step} ({run.consecutive_bad} in a row) "
                    f"had a non-finite loss or gradient (max_bad_steps={cfg.max_bad_steps}); "
                    f"last good checkpoint: {latest if latest else 'none written yet'}"
                )
            return {}
        run.consecutive_bad = 0
        if run.step % cfg.log_every or self.logger is None:
            return {}
        to_log = {f"train/{k}": v for k, v in result.log_values().items()}
        to_log["train/lr"] = self.parts.optimizer.param_groups[0]["lr"]
        to_log["train/bad_steps"] = float(run.bad_steps)
        return to_log

    def validate(self) -> dict[str, float]:
        """Validation of the weights the run exports: their EMA when there is one."""
        codec, ema = self.parts.codec, self.parts.weight_ema
        averaged = contextlib.nullcontext() if ema is None else ema.applied(codec)
        with averaged:
            return validate(
                codec,
                self.parts.loss,
                self.data.valid_crops,
                self.cfg.valid_batch_size,
                self.info.device,
                self.autocast,
            )

    def _last_logged_validation(self) -> dict[str, float]:
        for _, row in reversed(self.run.log_history):
            if any(name.startswith("valid/") for name in row):
                return {name[len("valid/") :]: value for name, value in row.items() if name.startswith("valid/")}
        return {}

    def _update_best(self, metrics: dict[str, float]) -> bool:
        metric = BEST_METRICS[self.cfg.best_metric]
        value = metrics[metric.name]
        if not math.isfinite(value):
            return False
        better = self.run.best is None or metric.better(value, self.run.best["value"])
        if better:
            self.run.best = {"metric": metric.name, "value": float(value), "step": self.run.step}
        return better

    def _stop(self, stop: StopRequest) -> None:
        """Write a checkpoint of the last whole step (unless one was, or none was done this session), say
        so, and raise what the signal would have raised."""
        run = self.run
        done = ckpt.checkpoint_path(self.checkpoints, run.step)
        if run.step > (run.resumed_from or 0) and not done.is_file():
            self._save(best=False, now=True)
        if self.info.is_main:
            where = (
                f"checkpoint {done}" if done.is_file() else f"no step done, the latest checkpoint in {self.checkpoints}"
            )
            print(
                f"train: {stop.name}: stopped after step {run.step} of {self.cfg.steps}; {where}: "
                "the same command resumes from it",
                file=sys.stderr,
            )
        stop.stop()

    def _save(self, best: bool, now: bool = False) -> None:
        """``best.pt`` when ``best``; ``step-N.pt`` every ``checkpoint_every`` steps, at the end, and ``now``."""
        run = self.run
        periodic = now or run.step % self.cfg.checkpoint_every == 0 or run.step == self.cfg.steps
        if not self.info.is_main or not (best or periodic):
            return
        if self.time_ledger is not None and self.seconds_before is not None:
            self.checkpoint_seconds[str(run.step)] = self.seconds_before + time.perf_counter() - self.t0
            write_json_atomic(self.time_ledger, self._ledger())
        # Built only when written: it copies every generator and discriminator weight to the host. At every step
        # that was a device sync and 60M floats for the gpu recipe: 0.18 s of its 0.24 s step on an H200.
        state = checkpoint_state(
            self.parts, run, self.fingerprint, self.cfg, self.loss_cfg, world_size=self.info.world_size, seed=self.seed
        )
        if best:
            ckpt.save_checkpoint(self.checkpoints / ckpt.BEST_NAME, state)
        if periodic:
            ckpt.save_checkpoint(ckpt.checkpoint_path(self.checkpoints, run.step), state)
            ckpt.prune_checkpoints(self.checkpoints, self.cfg.keep_last)

    def _ledger(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint.digest, "checkpoint_seconds": self.checkpoint_seconds}

    def _log(self, metrics: dict[str, float]) -> None:
        if not metrics:
            return
        row = {name: float(value) for name, value in metrics.items()}
        self.run.log_history.append((self.run.step, row))
        self._emit(self.run.step, row)

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
        codec, ema, run = self.parts.codec, self.parts.weight_ema, self.run
        state = codec.state_dict() if ema is None else ema.module_state(codec)
        source, step = "last", run.step
        best_path = self.checkpoints / ckpt.BEST_NAME
        if self.cfg.final_weights == "best" and run.best is not None and best_path.is_file():
            best = ckpt.load_checkpoint(best_path)
            state, source, step = best["codec"], "best", int(best["step"])
            if best.get("weight_ema") is not None:
                state = {**state, **{k: v.to(state[k].dtype) for k, v in best["weight_ema"].items()}}
        meta = {"stage": "train", "step": str(step), "weights": source}
        if ema is not None:
            meta["weight_ema_decay"] = repr(self.cfg.weight_ema_decay)
        if run.best is not None:
            meta[f"valid_{run.best['metric']}"] = repr(run.best["value"])
        assert codec.config is not None  # a codec built from a weights file carries its config
        return save_codec_weights(out, state, codec.config, meta)


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
    time_ledger: str | Path | None = None,
) -> TrainResult:
    """Train the codec in ``init`` (a weights file, see :mod:`codec.formats.weights`) on ``shards``.

    Resumes from the latest checkpoint of the same run in ``checkpoints``, first replaying into ``logger``
    what the run had logged up to that checkpoint: the logs end as an uninterrupted run's. Single process, or
    one process per GPU under ``torchrun`` (only rank 0 logs and writes files). Writes the final
    weights to ``out`` and a summary JSON to ``summary_path`` when given.
    ``batch_hook(step, batch)`` may replace a batch before the step (augmentation, fault injection).
    ``time_ledger``: a JSON file where the wall seconds to each checkpoint are kept, so that a run continued
    across sessions reports its whole time (``TrainResult.total_seconds``; :func:`read_time_ledger`).
    Raises :class:`TrainingDiverged` after ``max_bad_steps`` non-finite steps in a row,
    :class:`codec.train.checkpoint.CheckpointError` for an unusable checkpoint and
    :class:`codec.formats.weights.WeightsError` for an unusable init file.
    """
    info = setup_distributed(cfg.device)
    try:
        with torch_settings(info.device, cfg.deterministic):
            shards, checkpoints = Path(shards), Path(checkpoints)
            parts = build_parts(cfg, loss_cfg, info.device, Path(init), seed)
            fingerprint = run_fingerprint(cfg, loss_cfg, seed, init, shards)  # which checkpoints are this run's
            run = resume_run(parts, checkpoints, fingerprint, info)
            parts.model = wrap_model(parts.codec, cfg, info)
            data = build_data(cfg, shards, parts.codec.sample_rate, info, seed, start_batch=run.step)
            session = _Session(
                parts,
                data,
                run,
                fingerprint,
                cfg,
                loss_cfg,
                info,
                checkpoints=checkpoints,
                seed=seed,
                logger=logger,
                progress=progress,
                batch_hook=batch_hook,
                time_ledger=None if time_ledger is None else Path(time_ledger),
            )
            result = session.train(None if out is None else Path(out))
        if summary_path is not None and info.is_main:
            write_json_atomic(summary_path, summary_dict(result, cfg))
        return result
    finally:
        teardown_distributed(info)


@contextlib.contextmanager
def torch_settings(device: torch.device, deterministic: bool) -> Iterator[None]:
    """Process-wide torch settings for the run, put back as they were afterwards (the caller's process may
    go on): deterministic algorithms on CPU when asked; TF32 matmuls and convolutions and cuDNN's autotuner
    on CUDA."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_float32_matmul_precision(),
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    try:
        if device.type == "cpu" and deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if device.type == "cuda":
            torch.set_float32_matmul_precision("high")
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.set_float32_matmul_precision(saved[2])
        torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved[3], saved[4]


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


def run_seconds(timings: dict[str, Any]) -> float:
    """A run's training seconds from its timings (:func:`timings_dict`): over every session where they are on
    record (``total_seconds``), else the last session's."""
    total = timings.get("total_seconds")
    return float(timings["seconds"] if total is None else total)


def timings_dict(result: TrainResult) -> dict[str, Any]:
    """The run's speed and history (resumed or not): kept apart from the reproducible outputs."""
    return {
        "resumed_from": result.resumed_from,
        "examples_per_second": result.examples_per_second,
        "data_wait_fraction": result.data_wait_fraction,
        "seconds": result.seconds,
        "total_seconds": result.total_seconds,
        **result.time_ledger,  # what a later session that resumes this run reads (read_time_ledger)
        "steps": result.step,
        "peak_gpu_memory_bytes": result.peak_gpu_memory_bytes,
    }
