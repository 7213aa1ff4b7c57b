"""The evaluation as a whole: load the sets, score codec and Opus on each, time the codec; optionally a reference
codec (e.g. the shipped pretrained one) on the same test utterances."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from codec.config.evaluate import EvaluateConfig
from codec.config.prepare import AudioOptions
from codec.evaluation.opus import OpusTools, OpusUnavailable, find_opus_tools
from codec.evaluation.scoring import SetResult, Timing, evaluate_set, warm_up
from codec.evaluation.sets import TEST, EvalSet, EvaluationError, load_extra_corpus, load_test_split
from codec.model.codec import Codec
from codec.runtime.devices import DeviceError, resolve_device


@dataclass(frozen=True)
class Reference:
    """A codec scored beside the evaluated one on the same test utterances (codec rows only: no Opus, no DNSMOS)."""

    name: str  # key in metrics.json (``test.reference.<name>``) and label of its rows
    codec: Codec
    note: str = ""  # what it is, shown beside its name on the page, e.g. "shipped; trained on real speech"

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ValueError(f"reference name {self.name!r} must be letters, digits, '-', '_' or '.'")


@dataclass
class ReferenceResult:
    """A :class:`Reference` scored on a set: its codec rows at its own level counts."""

    name: str
    note: str
    set_name: str  # the set it was scored on ("test")
    sample_rate: int  # its rate (the test audio was resampled to it from the shards, as for the evaluated codec)
    num_levels: int
    levels: list[int]  # evaluate.levels clipped to its levels
    result: SetResult
    seconds: float  # wall time of scoring it (decodes and metrics)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.note})" if self.note else self.name


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
    references: list[ReferenceResult] = field(default_factory=list)


def run_evaluation(
    codec: Codec,
    cfg: EvaluateConfig,
    shards_dir: str | Path,
    cleaning: AudioOptions,
    *,
    model_name: str = "",
    log: Callable[[str], None] | None = None,
    reference: Reference | None = None,
) -> Evaluation:
    """Score ``codec`` and the Opus baseline on the test split of ``shards_dir`` and the extra corpora.

    ``cleaning`` is ``prepare``'s audio clean-up (its rate is overridden by the codec's). ``reference``, when
    given, is scored on the same test utterances at ``cfg.levels`` clipped to its levels (the shards' audio
    resampled to its rate when that differs), with the metrics of the codec rows but no DNSMOS.
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
    references = []
    if reference is not None:
        references.append(
            _score_reference(
                reference, sets[0], rate, shards_dir, cfg, device, jobs, speaker_similarity=speaker_similarity, log=log
            )
        )
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
        references=references,
    )


def _score_reference(
    reference: Reference,
    test: EvalSet,
    test_rate: int,
    shards_dir: str | Path,
    cfg: EvaluateConfig,
    device: torch.device,
    jobs: int,
    *,
    speaker_similarity: bool,
    log: Callable[[str], None],
) -> ReferenceResult:
    """``reference`` on the utterances of ``test`` (reloaded at its rate when it differs: the same ids)."""
    start = time.perf_counter()
    codec = reference.codec.to(device).eval()
    rate = codec.sample_rate
    if rate != test_rate:  # the same ids (chosen from the sorted ids alone), resampled from the shards to its rate
        test = load_test_split(shards_dir, rate, cfg.max_utterances)
    levels = cfg.levels_for(codec.num_levels)
    with torch.nn.utils.parametrize.cached():
        warm_up(codec, device)
        result = evaluate_set(
            codec,
            test,
            levels,
            [],
            None,
            device,
            Timing(),
            cfg.examples,
            jobs,
            dnsmos_utterances=0,
            speaker_similarity=speaker_similarity,
        )
    seconds = time.perf_counter() - start
    log(f"evaluate: reference {reference.name}: {len(test.utterances)} {TEST} utterances scored in {seconds:.1f} s")
    return ReferenceResult(reference.name, reference.note, test.name, rate, codec.num_levels, levels, result, seconds)
