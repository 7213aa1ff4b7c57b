"""Speaker similarity: the cosine of speaker embeddings of the reference and the decoded audio.

What TTS and speech-LM papers report as SECS / "speaker similarity", here with Resemblyzer's GE2E speaker
encoder, because its weights ship inside its PyPI wheel (``resemblyzer/pretrained.pt``, Apache-2.0, 17 MB
with its optimiser state) and so run offline with nothing fetched at run time. (The usual alternatives --
SpeechBrain's ECAPA-TDNN, pyannote / WeSpeaker ResNets, NeMo TitaNet, WavLM-based verifiers -- ship code only
and download their weights from a model hub on first use.)

The encoder (Wan et al., "Generalized end-to-end loss for speaker verification", 2018, as trained for
Real-Time-Voice-Cloning on LibriSpeech and VoxCeleb 1 and 2): 40-band mel frames at 16 kHz (25 ms windows,
10 ms hop), a 3-layer LSTM of 256 units, a linear layer to 256 dimensions, ReLU, L2 norm. Its authors say it
works best on English and "somewhat decently" on other languages: on Telugu read it as a relative measure
(codec against Opus on the same clips), not as a verification score.

This module reimplements ``resemblyzer`` 0.1.4's ``preprocess_wav`` + ``VoiceEncoder.embed_utterance``
step by step (tests/codec/evaluation/test_speaker.py checks the embeddings against the package's own code)
but loads the checkpoint itself with ``torch.load(..., weights_only=True)``, the project's rule for
checkpoints, and never imports the ``resemblyzer`` package (its ``__init__`` pulls a deprecated SciPy
namespace and builds the encoder on CUDA when there is one):

1. Audio resampled to 16 kHz (soxr) when it is not, and clipped to [-1, 1] (what is written and heard).
2. Volume raised (never lowered) to an RMS of -30 dBFS.
3. Long silences cut: WebRTC VAD (mode 3, the most aggressive) on 30 ms frames of 16-bit PCM, its flags
   smoothed by a moving average of 8 frames, rounded, and dilated by 7 frames; the frames outside are removed.
4. Partial utterances of 160 mel frames (1.6 s), 1.3 per second (a hop of 77 frames), the last one kept
   (zero-padded) when at least 75% of it is audio; each partial embedded, the embeddings averaged and
   L2-normalised.

``speaker_similarity`` is then :func:`codec.dsp.metrics.cosine_similarity` of the two embeddings: in [0, 1]
(the embeddings are non-negative after the ReLU), 1 for the same voice. The reference and every decoded
version are preprocessed independently, as a TTS evaluation does with generated speech.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from codec.dsp.metrics import MetricValue, cosine_similarity

MODEL_RATE = 16000  # Hz: the encoder's mel frames are at 16 kHz
MEL_FFT = 400  # 25 ms
MEL_HOP = 160  # 10 ms
MEL_BANDS = 40
PARTIAL_FRAMES = 160  # mel frames per partial utterance (1.6 s)
PARTIALS_PER_SECOND = 1.3
MIN_COVERAGE = 0.75  # share of the last partial that must be audio for it to count
VAD_FRAME = 480  # 30 ms at 16 kHz
VAD_MODE = 3
VAD_AVERAGE_FRAMES = 8
VAD_MAX_SILENCE_FRAMES = 6
TARGET_DBFS = -30.0
INT16_MAX = 2**15 - 1
HIDDEN, EMBEDDING, LAYERS = 256, 256, 3
PACKAGE, WEIGHTS = "resemblyzer", "pretrained.pt"


class SpeakerEncoderUnavailable(RuntimeError):
    """The ``resemblyzer`` wheel (the encoder's weights) or ``webrtcvad`` is not installed."""


class GE2EEncoder(nn.Module):
    """Resemblyzer's ``VoiceEncoder`` network: mel frames ``[B, F, 40]`` -> unit embeddings ``[B, 256]``."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(MEL_BANDS, HIDDEN, LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN, EMBEDDING)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True)


def weights_path() -> Path:
    """``pretrained.pt`` inside the installed ``resemblyzer`` package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SpeakerEncoderUnavailable(f"the '{PACKAGE}' package is not installed (make env installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS
    if not path.is_file():
        raise SpeakerEncoderUnavailable(f"{path} is missing from the '{PACKAGE}' package")
    return path


def speaker_encoder_available() -> str | None:
    """None when speaker similarity can be computed, else why not."""
    try:
        weights_path()
    except SpeakerEncoderUnavailable as exc:
        return str(exc)
    try:
        import webrtcvad  # noqa: F401  (webrtcvad 2.0.10's sdist imports pkg_resources, gone from current setuptools)
    except ImportError as exc:
        return f"the 'webrtcvad' module cannot be imported ({exc}); make env installs webrtcvad-wheels"
    return None


@lru_cache(maxsize=1)
def load_encoder() -> GE2EEncoder:
    """The pretrained encoder on the CPU, in eval mode (loaded once per process)."""
    checkpoint = torch.load(weights_path(), map_location="cpu", weights_only=True)
    # The checkpoint also holds GE2E's similarity scale and bias (training only) and the optimiser state.
    state = {k: v for k, v in checkpoint["model_state"].items() if not k.startswith("similarity_")}
    encoder = GE2EEncoder()
    encoder.load_state_dict(state, strict=True)
    encoder.requires_grad_(False)
    return encoder.eval()


def preprocess(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Steps 1-3 of the module docstring: float32 ``[T']`` at 16 kHz, its long silences removed.

    Raises ValueError for a silent clip or one in which the VAD finds no speech."""
    wav = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sample_rate != MODEL_RATE:
        import soxr

        wav = soxr.resample(wav, sample_rate, MODEL_RATE, quality="HQ").astype(np.float32)
    wav = np.clip(wav, -1.0, 1.0)
    rms = float(np.sqrt(np.mean(np.square(wav * INT16_MAX, dtype=np.float64)))) if wav.size else 0.0
    if rms == 0.0:
        raise ValueError("silent signal")
    change_db = TARGET_DBFS - 20.0 * math.log10(rms / INT16_MAX)
    if change_db > 0:  # raised only, as Resemblyzer's normalize_volume(increase_only=True)
        wav = (wav * 10.0 ** (change_db / 20.0)).astype(np.float32)
    wav = _trim_long_silences(wav)
    if wav.size == 0:
        raise ValueError("no speech found by the voice activity detector")
    return wav


def _trim_long_silences(wav: np.ndarray) -> np.ndarray:
    import webrtcvad
    from scipy.ndimage import binary_dilation

    wav = wav[: wav.size - wav.size % VAD_FRAME]
    # The same int16 bytes as Resemblyzer's struct.pack("%dh") of the rounded samples (native byte order);
    # samples past full scale after the volume change wrap there as here.
    pcm = np.round(wav * INT16_MAX).astype(np.int16).tobytes()
    vad = webrtcvad.Vad(mode=VAD_MODE)
    flags = np.array(
        [
            vad.is_speech(pcm[start * 2 : (start + VAD_FRAME) * 2], MODEL_RATE)
            for start in range(0, wav.size, VAD_FRAME)
        ],
        dtype=np.float64,
    )
    width = VAD_AVERAGE_FRAMES
    padded = np.concatenate((np.zeros((width - 1) // 2), flags, np.zeros(width // 2)))
    sums = np.cumsum(padded, dtype=float)
    sums[width:] = sums[width:] - sums[:-width]
    mask = np.round(sums[width - 1 :] / width).astype(bool)
    mask = binary_dilation(mask, np.ones(VAD_MAX_SILENCE_FRAMES + 1))
    return wav[np.repeat(mask, VAD_FRAME)]


def mel_frames(wav: np.ndarray) -> np.ndarray:
    """Resemblyzer's ``wav_to_mel_spectrogram``: power mel spectrogram (not log), float32 ``[frames, 40]``."""
    import librosa

    frames = librosa.feature.melspectrogram(y=wav, sr=MODEL_RATE, n_fft=MEL_FFT, hop_length=MEL_HOP, n_mels=MEL_BANDS)
    return frames.astype(np.float32).T


def partial_starts(n_samples: int) -> tuple[list[int], int]:
    """Mel-frame starts of the partial utterances of an ``n_samples`` clip and the samples it is padded to."""
    n_frames = int(np.ceil((n_samples + 1) / MEL_HOP))
    step = int(np.round((MODEL_RATE / PARTIALS_PER_SECOND) / MEL_HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    last = starts[-1] * MEL_HOP
    coverage = (n_samples - last) / (PARTIAL_FRAMES * MEL_HOP)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts = starts[:-1]
    return starts, (starts[-1] + PARTIAL_FRAMES) * MEL_HOP


def _partials(wav: np.ndarray) -> np.ndarray:
    """The partial utterances' mel frames of a preprocessed clip: ``[P, 160, 40]``."""
    starts, padded_length = partial_starts(wav.size)
    if padded_length >= wav.size:
        wav = np.pad(wav, (0, padded_length - wav.size))
    mel = mel_frames(wav)
    return np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])


@torch.no_grad()
def embed_preprocessed(wavs: list[np.ndarray]) -> list[np.ndarray]:
    """Unit embeddings ``[256]`` (float32) of preprocessed clips, every partial of every clip in one batch."""
    partials = [_partials(w) for w in wavs]
    if not partials:
        return []
    batch = torch.from_numpy(np.concatenate(partials))
    embeddings = load_encoder()(batch).numpy()
    out = []
    for chunk in np.split(embeddings, np.cumsum([p.shape[0] for p in partials])[:-1]):
        mean = chunk.mean(axis=0)
        out.append((mean / np.linalg.norm(mean)).astype(np.float32))
    return out


def embed(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The speaker embedding ``[256]`` of one clip (ValueError when silent or without speech)."""
    return embed_preprocessed([preprocess(audio, sample_rate)])[0]


def speaker_similarities(reference: np.ndarray, estimates: list[np.ndarray], sample_rate: int) -> list[MetricValue]:
    """``speaker_similarity`` of each estimate ``[T]`` against ``reference [T]``; NaN with the reason where a clip
    is silent or the VAD finds no speech in it (every estimate's, when it is the reference's)."""
    clips: list[np.ndarray] = []
    errors: list[str | None] = []
    for audio in [reference, *estimates]:
        try:
            clips.append(preprocess(audio, sample_rate))
            errors.append(None)
        except ValueError as exc:
            errors.append(f"speaker_similarity: {exc}")
    if errors[0] is not None:
        return [MetricValue(math.nan, f"{errors[0]} (reference)") for _ in estimates]
    embeddings = iter(embed_preprocessed(clips))
    ref = next(embeddings)
    return [
        MetricValue(math.nan, error) if error is not None else MetricValue(cosine_similarity(ref, next(embeddings)))
        for error in errors[1:]
    ]
