"""Synthesize the embedded default Telugu corpus with eSpeak NG (libespeak-ng via ctypes).

Output layout (ULCA ``asr-corpus``, read by the ``prepare`` stage)::

    <out_dir>/params.json             dataset description (language te, wav, mono, 16 bit)
    <out_dir>/data.json               [{audioFilename, text, speaker, gender, duration, collectionSource}]
    <out_dir>/wavs/<speaker>_<k>.wav  16-bit PCM mono at eSpeak's native rate (22050 Hz)

Reproducible: each speaker reads sentences picked by ``(seed, speaker name)`` and is rendered
in a fresh Python process with eSpeak's noise generator seeded per utterance, so two runs
write byte-identical files, whatever the number of workers.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from codec.config.synth import LANGUAGE, SpeakerVariant, SynthConfig
from codec.data.espeak import Espeak, EspeakError
from codec.runtime.io import write_bytes_atomic, write_json_atomic

AUDIO_DIR = "wavs"
COLLECTION_SOURCE = ["eSpeak NG Telugu synthetic speech (TeluCodec synth stage)"]


@dataclass(frozen=True)
class Utterance:
    """One planned recording: ``text`` read by ``speaker``, stored at ``audio_filename`` (corpus-relative)."""

    speaker: SpeakerVariant
    text: str
    audio_filename: str
    seed: int  # eSpeak noise seed for this utterance


class RenderedSpeaker(NamedTuple):
    sample_rate: int  # Hz
    lengths: list[int]  # samples per utterance, in plan order
    engine_version: str  # eSpeak NG version string


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    utterances: int
    speakers: int
    seconds: float  # total audio duration
    sample_rate: int  # Hz, eSpeak's native rate

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0


def load_sentences(path: str | Path) -> list[str]:
    """Non-empty lines of a UTF-8 file (NFC, stripped), skipping ``#`` comments; duplicates are an error."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read sentence file {path}: {exc}") from exc
    sentences = []
    for line in raw.splitlines():
        line = unicodedata.normalize("NFC", line.strip())
        if line and not line.startswith("#"):
            sentences.append(line)
    if not sentences:
        raise ValueError(f"{path}: no sentences (every line is blank or a '#' comment)")
    seen: set[str] = set()
    duplicates = []
    for s in sentences:
        if s in seen:
            duplicates.append(s)
        else:
            seen.add(s)
    if duplicates:
        raise ValueError(f"{path}: {len(duplicates)} repeated sentence(s), e.g. {duplicates[0]!r}")
    return sentences


def plan_utterances(config: SynthConfig, sentences: list[str], seed: int) -> list[Utterance]:
    """Pick ``sentences_per_speaker`` distinct sentences per speaker, keyed by (seed, speaker name).

    Keying by name (not position) keeps a speaker's picks unchanged when others are added or removed.
    """
    if not config.speakers:
        raise ValueError("synth config has no speakers")
    if config.sentences_per_speaker > len(sentences):
        raise ValueError(
            f"sentences_per_speaker={config.sentences_per_speaker} exceeds the {len(sentences)} sentences available"
        )
    plan = []
    for speaker in config.speakers:
        key = zlib.crc32(speaker.name.encode("utf-8"))
        rng = np.random.default_rng([seed, key])
        picks = rng.choice(len(sentences), size=config.sentences_per_speaker, replace=False)
        noise_seeds = rng.integers(1, 2**31 - 1, size=len(picks))
        for k, (index, noise_seed) in enumerate(zip(picks, noise_seeds)):
            filename = f"{AUDIO_DIR}/{speaker.name}_{k:04d}.wav"
            plan.append(Utterance(speaker, sentences[int(index)], filename, int(noise_seed)))
    return plan


def synthesize_corpus(
    config: SynthConfig, sentences: list[str], out_dir: str | Path, seed: int, workers: int | None = None
) -> SynthSummary:
    """Render the corpus into ``out_dir`` (replacing a previous corpus there) and return its summary.

    Everything is written to a staging folder beside ``out_dir`` and swapped in at the end, so
    ``out_dir`` never mixes files of two runs. Each speaker is rendered by a fresh Python
    process, at most ``workers`` (default: all cores) at a time.
    """
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    plan = plan_utterances(config, sentences, seed)
    by_speaker = [[u for u in plan if u.speaker.name == s.name] for s in config.speakers]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".staging", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; it becomes the corpus folder
    try:
        rendered = _render_in_workers(by_speaker, staging, workers)
        sample_rate, version = rendered[0].sample_rate, rendered[0].engine_version
        lengths = [n for r in rendered for n in r.lengths]
        ordered = [u for group in by_speaker for u in group]
        rows = [_ulca_row(u, n / sample_rate) for u, n in zip(ordered, lengths)]
        write_json_atomic(staging / "data.json", rows)
        write_json_atomic(staging / "params.json", _ulca_params(config, sample_rate, version))
        _swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SynthSummary(out_dir, len(rows), len(config.speakers), sum(lengths) / sample_rate, sample_rate)


def render_speaker(utterances: list[Utterance], root: str | Path) -> RenderedSpeaker:
    """Render one speaker's utterances as WAV files under ``root``, in this process.

    Call it in a fresh process (see :func:`synthesize_corpus`): libespeak-ng output depends
    on what the process rendered before.
    """
    root = Path(root)
    with Espeak() as engine:
        lengths = []
        for utt in utterances:
            # Voice and prosody are set per utterance so nothing depends on engine defaults.
            engine.set_voice(utt.speaker.voice)
            engine.set_prosody(utt.speaker.rate, utt.speaker.pitch, utt.speaker.range)
            engine.seed(utt.seed)
            audio = engine.synthesize(utt.text)
            if audio.size == 0 or not np.any(audio):
                raise RuntimeError(f"eSpeak NG produced silence for {utt.speaker.name}: {utt.text!r}")
            write_bytes_atomic(root / utt.audio_filename, wav_bytes(audio, engine.sample_rate))
            lengths.append(int(audio.size))
        return RenderedSpeaker(engine.sample_rate, lengths, engine.version)


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono 16-bit PCM WAV of int16 ``samples`` (num_samples,); no timestamps, so bytes are reproducible."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buffer.getvalue()


def _render_in_workers(by_speaker: list[list[Utterance]], staging: Path, workers: int | None) -> list[RenderedSpeaker]:
    # One fresh interpreter per speaker: its audio never depends on what else was rendered,
    # and (unlike multiprocessing's spawn) the caller's __main__ and its imports are not re-run.
    workers = max(1, min(workers or os.cpu_count() or 1, len(by_speaker)))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda group: _render_in_subprocess(group, staging), by_speaker))


def _render_in_subprocess(utterances: list[Utterance], root: Path) -> RenderedSpeaker:
    job = {"root": str(root), "utterances": [dataclasses.asdict(u) for u in utterances]}
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", "import codec.data.synth as s; s._worker_main()"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        name = utterances[0].speaker.name if utterances else "?"
        raise RuntimeError(f"rendering speaker {name} failed: {proc.stderr.strip()[-2000:]}")
    return RenderedSpeaker(*json.loads(proc.stdout))


def _worker_main() -> None:
    """Subprocess entry: a JSON job on stdin, a JSON result on stdout."""
    job = json.load(sys.stdin)
    utterances = [Utterance(**{**u, "speaker": SpeakerVariant(**u["speaker"])}) for u in job["utterances"]]
    try:
        rendered = render_speaker(utterances, job["root"])
    except (EspeakError, RuntimeError, OSError) as exc:
        sys.exit(f"{type(exc).__name__}: {exc}")
    json.dump(list(rendered), sys.stdout)


def _ulca_row(utt: Utterance, duration: float) -> dict:
    return {
        "audioFilename": utt.audio_filename,
        "text": utt.text,
        "speaker": utt.speaker.name,
        "gender": utt.speaker.gender,
        "duration": round(duration, 6),
        "collectionSource": COLLECTION_SOURCE,
    }


def _ulca_params(config: SynthConfig, sample_rate: int, espeak_version: str) -> dict:
    genders = sorted({s.gender for s in config.speakers})
    return {
        "datasetType": "asr-corpus",
        "languages": {"sourceLanguage": LANGUAGE},
        "collectionSource": COLLECTION_SOURCE,
        "domain": ["general"],
        "license": "cc-by-4.0",
        "submitter": {"name": "TeluCodec"},
        "format": "wav",
        "channel": "mono",
        "samplingRate": sample_rate / 1000.0,  # ULCA states it in kHz
        "bitsPerSample": "sixteen",
        "numberOfSpeakers": len(config.speakers),
        "gender": genders[0] if len(genders) == 1 else "mixed",
        "collectionMethod": {
            "collectionDescription": ["synthetic"],
            "collectionDetails": {
                "engine": "eSpeak NG",
                "engineVersion": espeak_version,
                "voices": [s.voice for s in config.speakers],
            },
        },
    }


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a non-empty folder that is not a previous corpus (guards a mistyped --out)."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ValueError(f"output {out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / "params.json").is_file():
            raise ValueError(f"output {out_dir} is a non-empty folder without params.json; not replacing it")


def _swap_in(staging: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists():
        old = staging.with_name(staging.name + ".old")
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
