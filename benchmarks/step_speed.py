"""Training steps per second on this CPU, side by side: float32 eager against the cheaper ways to run a step.

    python -m benchmarks.step_speed [--recipe cpu-handover [cpu-handover-fastenc ...] | --recipe path/to/recipe.yaml]
        [--steps 12] [--rounds 3] [--variants ...]

One recipe's codec (params.yaml + ``workflow/recipes/<recipe>.yaml``, random weights with k-means-free codebooks
seeded from the encoder's own latents), its loss and optimizer, on the recipe's batch of speech-like crops; or
several recipes', every variant of each interleaved with the others', the first recipe's fp32 the base. Each
variant runs ``--steps`` timed steps after two untimed ones, the variants interleaved over ``--rounds`` rounds
(so a machine that slows down slows every variant alike); the median step time of each is printed beside
float32 eager's. Variants:

- ``fp32``: float32 eager with AdamW's for-loop update, what training ran until ``optimizer.fused`` (2 threads);
- ``fp32-1thread``: the same on one thread (what two jobs side by side each get);
- ``fp32-fused`` and ``fp32-fused-1thread``: AdamW's fused kernel (``optimizer.fused``, the default now): one
  pass over all parameters instead of about five small ops per tensor (146 of them here);
- ``bf16``: ``torch.autocast("cpu", dtype=torch.bfloat16)`` around the codec and its loss (this machine's
  AVX-512 BF16 runs bf16 matrix products natively; the STFTs stay float32: the loss computes them under
  autocast-disabled regions);
- ``bf16-1thread``: bf16 on one thread (a pinned training run's setting: one job per core);
- ``bf16-fused`` and ``bf16-fused-1thread``: bf16 with the fused AdamW;
- ``compile``: ``torch.compile`` of the codec (inductor, CPU), float32, and ``compile-1thread``;
- ``bf16-compile``: both;
- ``fp32-nomkldnn`` and ``fp32-nomkldnn-1thread``: oneDNN off (``torch.backends.mkldnn.set_flags(False)``),
  so the convolutions run ATen's native kernels on the plain ``[B, C, T]`` layout instead of oneDNN's blocked
  one (the memory-format question for a 1-D codec: ``torch.channels_last`` is defined for 4-D tensors only);
- ``fp32-ftz-1thread``: denormals flushed to zero (``torch.set_flush_denormal(True)``), which costs x86 cores
  tens of cycles per operation when small gradients or decaying filter states underflow.

Also the share of a float32 step each part takes (codec forward, loss forward, backward, optimizer), and of the
loss the mel and STFT terms, from a profile of the fp32 variant. Run it with nothing else on the cores.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from codec.losses.codec_loss import CodecLoss
from codec.model.codec import Codec, build_codec
from codec.train.parts import make_optimizer
from pipeline.params import merge_params, params_from_dict

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [
    "fp32",
    "fp32-1thread",
    "fp32-fused",
    "fp32-fused-1thread",
    "bf16",
    "bf16-1thread",
    "bf16-fused",
    "bf16-fused-1thread",
    "compile",
    "compile-1thread",
    "bf16-compile",
    "fp32-nomkldnn",
    "fp32-nomkldnn-1thread",
    "fp32-ftz-1thread",
]


def recipe_path(recipe: str) -> Path:
    """A recipe's YAML: a name under workflow/recipes/, or the path of a YAML file."""
    path = Path(recipe)
    return path if path.suffix in (".yaml", ".yml") else ROOT / "workflow" / "recipes" / f"{recipe}.yaml"


def recipe_data(recipe: str) -> dict[str, Any]:
    """params.yaml with the recipe merged over it, as a dict (what a params file holds)."""
    base = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    override = yaml.safe_load(recipe_path(recipe).read_text(encoding="utf-8"))
    return merge_params(base, override)


def recipe_params(recipe: str):
    return params_from_dict(recipe_data(recipe))


def speech_batch(batch: int, samples: int, seed: int = 0) -> torch.Tensor:
    """Crops of voiced, pitch-gliding harmonics with noise: what the codec's convolutions see in speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    rows = []
    for _ in range(batch):
        f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
        rows.append(0.2 * voiced + 0.01 * rng.standard_normal(samples))
    return torch.tensor(np.stack(rows), dtype=torch.float32)[:, None]


class Variant:
    """One way of running a training step on its own copy of the codec, loss and optimizer."""

    def __init__(self, name: str, params, x: torch.Tensor):
        torch.manual_seed(0)
        self.name, self.x, self.params = name, x, params
        codec = build_codec(params.model, params.quantizer, params.sample_rate)
        codec.train()
        with torch.no_grad():
            codec(x)  # seeds the codebooks from the encoder's latents
        self.codec: Codec = codec
        self.model: Callable = torch.compile(codec) if "compile" in name else codec
        self.loss = CodecLoss(params.loss, params.sample_rate)
        fused = "fused" in name.split("-")
        self.optimizer = make_optimizer(
            [p for p in codec.parameters() if p.requires_grad], replace(params.train.optimizer, fused=fused)
        )
        self.threads = 1 if name.endswith("1thread") else None
        self.autocast: Callable[[], contextlib.AbstractContextManager] = (
            (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if name.startswith("bf16") else contextlib.nullcontext
        )

    def step(self, step: int = 100) -> None:
        with self.autocast():
            out = self.model(self.x)
            gen = self.loss.generator_loss(self.x, out.reconstruction, out.commitment_loss, step=step, progress=0.1)
        gen.total.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    @contextlib.contextmanager
    def settings(self) -> Iterator[None]:
        """The variant's process-wide settings (threads, oneDNN, denormals) for the duration of its steps."""
        threads, parts = torch.get_num_threads(), self.name.split("-")
        if self.threads:
            torch.set_num_threads(self.threads)
        torch.set_flush_denormal("ftz" in parts)
        onednn = torch.backends.mkldnn.set_flags("nomkldnn" not in parts, _fp32_precision=None)[0]
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.set_flush_denormal(False)
            torch.backends.mkldnn.set_flags(onednn, _fp32_precision=None)

    def timed(self, steps: int) -> list[float]:
        with self.settings():
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                self.step()
                times.append(time.perf_counter() - t0)
            return times


def shares(variant: Variant, steps: int) -> dict[str, float]:
    """Seconds per step of each part of a float32 step, from timing the parts separately."""
    parts = {"codec forward": 0.0, "loss forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    for _ in range(steps):
        t0 = time.perf_counter()
        out = variant.codec(variant.x)
        t1 = time.perf_counter()
        gen = variant.loss.generator_loss(variant.x, out.reconstruction, out.commitment_loss, step=100, progress=0.1)
        t2 = time.perf_counter()
        gen.total.backward()
        t3 = time.perf_counter()
        variant.optimizer.step()
        variant.optimizer.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        for key, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[key] += seconds / steps
    return parts


def loss_terms(variant: Variant, steps: int) -> dict[str, float]:
    """Seconds per step of the mel and STFT terms' forward and backward alone, on a detached reconstruction."""
    with torch.no_grad():
        y = variant.codec(variant.x).reconstruction
    out = {}
    for name, module in (("mel", variant.loss.mel_loss), ("stft", variant.loss.stft_loss)):
        t0 = time.perf_counter()
        for _ in range(steps):
            z = y.clone().requires_grad_(True)
            term = module(z, variant.x)
            total = term if isinstance(term, torch.Tensor) else term.spectral_convergence + term.log_magnitude
            total.backward()
        out[name] = (time.perf_counter() - t0) / steps
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--recipe",
        nargs="+",
        default=["cpu-handover"],
        help="recipe names or paths of recipe YAML files; several run interleaved, the first one's fp32 the base",
    )
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=VARIANTS)
    args = ap.parse_args(argv)
    several = len(args.recipe) > 1
    variants: dict[str, Variant] = {}
    batches = {}
    for recipe in args.recipe:
        params = recipe_params(recipe)
        x = speech_batch(params.train.batch_size, round(params.train.segment_seconds * params.sample_rate))
        batches[recipe] = tuple(x.shape)
        for name in args.variants:
            label = f"{recipe} {name}" if several else name
            t0 = time.perf_counter()
            v = Variant(name, params, x)
            v.timed(2)  # warm-up (and compilation)
            variants[label] = v
            print(f"{label}: ready in {time.perf_counter() - t0:.0f} s", flush=True)
    times: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(args.rounds):
        for label, v in variants.items():
            times[label] += v.timed(args.steps)
    first = next(iter(times))
    base = statistics.median(times[first]) if variants[first].name == "fp32" else None
    print()
    for recipe, shape in batches.items():
        print(f"{recipe}: batch {shape}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"\n| variant | s/step (median) | steps/s | vs {first} |")
    print("| --- | ---: | ---: | ---: |")
    for label, t in times.items():
        med = statistics.median(t)
        print(f"| {label} | {med:.3f} | {1 / med:.2f} | {'' if base is None else f'{base / med:.2f}x'} |")
    for label, v in variants.items():
        if v.name != "fp32":
            continue
        parts = shares(v, args.steps)
        total = sum(parts.values())
        print(f"\n| part of the {label} step | s | share |\n| --- | ---: | ---: |")
        for key, seconds in parts.items():
            print(f"| {key} | {seconds:.3f} | {100 * seconds / total:.0f}% |")
        for key, seconds in loss_terms(v, args.steps).items():
            print(f"| of which {key} loss, forward + backward | {seconds:.3f} | {100 * seconds / total:.0f}% |")


if __name__ == "__main__":
    main()
