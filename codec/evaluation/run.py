"""The evaluation as a whole: load the sets, score codec and Opus on each, time the codec."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from codec.config.evaluate import EvaluateConfig
from codec.config.prepare import AudioOptions
from codec.evaluation.opus import OpusTools, OpusUnavailable, find_opus_tools
from codec.evaluation.scoring import SetResult, Timing, evaluate_set, warm_up
from codec.evaluation.sets import EvalSet, EvaluationError, load_extra_corpus, load_test_split
from codec.model.codec import Codec
from codec.runtime.devices import DeviceError, resolve_device


@dataclass
class Evaluation:
    """Everything the report shows."""

    model: str  # weights file (as given)
    sample_rate: int
    frame_rate: float  # code frames per second
    codebook_size: int
    num_levels: int
    levels: list[int]  # level counts scored (clipped to num_levels)
    device: str  # "cpu" or the CUDA device name
    opus: str  # opusenc version, or why the baseline was skipped
    opus_available: bool
    sets: list[SetResult]
    timing: Timing
    unavailable: dict[str, str] = field(default_factory=dict)  # extra corpus -> why it was skipped


def run_evaluation(
    codec: Codec,
    cfg: EvaluateConfig,
    shards_dir: str | Path,
    cleaning: AudioOptions,
    *,
    model_name: str = "",
    log: Callable[[str], None] | None = None,
) -> Evaluation:
    """Score ``codec`` and the Opus baseline on the test split of ``shards_dir`` and the extra corpora.

    ``cleaning`` is ``prepare``'s audio clean-up (its rate is overridden by the codec's).
    Raises :class:`EvaluationError` when there is nothing to evaluate.
    """
    log = log or (lambda message: print(message, file=sys.stderr))
    try:  # first: a device that cannot be had stops the stage before any work
        device = resolve_device(cfg.device)
    except DeviceError as exc:
        raise EvaluationError(f"evaluate.device: {exc}") from None
    rate = codec.sample_rate
    sets: list[EvalSet] = [load_test_split(shards_dir, rate, cfg.max_utterances)]
    options = dataclasses.replace(cleaning, sample_rate=rate)
    sets += [load_extra_corpus(extra, options) for extra in cfg.extra_corpora]
    for s in sets[1:]:
        if s.unavailable:
            log(f"warning: evaluate: extra corpus '{s.name}' skipped: {s.unavailable}")
        elif s.skipped:
            log(f"note: evaluate: {len(s.skipped)} file(s) of '{s.name}' rejected by the audio clean-up")
    tools: OpusTools | None
    try:
        tools = find_opus_tools()
        opus = tools.version
    except OpusUnavailable as exc:
        tools, opus = None, f"skipped: {exc}"
        log(f"warning: evaluate: Opus baseline skipped: {exc}")

    speaker_similarity = cfg.speaker_similarity
    if speaker_similarity:
        from codec.evaluation.speaker import speaker_encoder_available

        if (why := speaker_encoder_available()) is not None:
            speaker_similarity = False
            log(f"warning: evaluate: speaker similarity skipped: {why}")

    codec = codec.to(device).eval()
    levels = cfg.levels_for(codec.num_levels)
    timing = Timing()
    jobs = cfg.opus_jobs or os.cpu_count() or 1
    results = []
    # Weight norm recomputes every weight at each call; the weights are fixed here, so compute them once.
    with torch.nn.utils.parametrize.cached():
        warm_up(codec, device)
        for s in sets:
            if s.unavailable is None:
                results.append(
                    evaluate_set(
                        codec,
                        s,
                        levels,
                        cfg.opus_kbps,
                        tools,
                        device,
                        timing,
                        cfg.examples,
                        jobs,
                        dnsmos_utterances=cfg.dnsmos_utterances,
                        speaker_similarity=speaker_similarity,
                    )
                )
                log(f"evaluate: {s.name}: {len(s.utterances)} of {s.available} utterances scored")
    return Evaluation(
        model=model_name,
        sample_rate=rate,
        frame_rate=codec.frame_rate,
        codebook_size=codec.quantizer.codebook_size,
        num_levels=codec.num_levels,
        levels=levels,
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        opus=opus,
        opus_available=tools is not None,
        sets=results,
        timing=timing,
        unavailable={s.name: s.unavailable for s in sets if s.unavailable},
    )
