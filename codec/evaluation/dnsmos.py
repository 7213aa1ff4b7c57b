"""DNSMOS: Microsoft's no-reference speech quality scores (P.808 MOS and P.835 SIG / BAK / OVRL).

The ONNX models come from the ``speechmos`` wheel (``speechmos/dnsmos_models/``; MIT licence) and
run offline on onnxruntime. ``speechmos.dnsmos.run`` builds its sessions with onnxruntime's default
thread pool (one thread per core, spinning) and only takes 16 kHz input, so this module builds its
own single-threaded sessions from the same files and reimplements the scoring procedure of
``speechmos/dnsmos.py`` 0.0.1.1 (itself the DNS Challenge's ``DNSMOS/dnsmos_local.py``), step by
step, so the numbers match the reference's:

1. Audio at 16 kHz, float32. A clip shorter than the 9.01 s model window (144160 samples) is
   repeated whole -- doubled until it is at least one window long -- so a 4 s clip is scored as
   the same 4 s played four times (16 s).
2. Windows of 9.01 s start every 1 s: ``max(1, floor(seconds) - 9)`` of them (a clip under 11 s
   gets one). The reference computes the window ends in floating point,
   ``int((k + 9.01) * 16000)``, which rounds down to 144159 samples for k = 7..23 and 119..122;
   it skips those windows as "too short", and so does this module (a 20 s clip is scored on its
   windows 0..6 only, i.e. its first 16 s). Kept on purpose: the scores stay comparable with
   published DNSMOS figures.
3. Per window: the P.835 model (``sig_bak_ovr.onnx``) takes the raw 144160 samples and gives raw
   SIG, BAK, OVRL, each mapped by a fixed polynomial; the P.808 model (``model_v8.onnx``) takes the
   window less its last 160 samples as a 120-band log-mel spectrogram (librosa, n_fft 321, hop 160,
   ``(power_to_db(ref=max) + 40) / 40``; 900 frames x 120 bands) and gives the MOS directly.
4. The clip's scores are the means over its windows.

The *personalized* variant (``pdnsmos_models/sig_bak_ovr.onnx`` with its own polynomials) is
DNSMOS for personalized noise suppression: it was trained to treat an interfering talker as
background noise, so a second voice lowers BAK and OVRL. P.808 is the same model either way.

Scores are mean opinion scores on the 1 (bad) .. 5 (excellent) scale. They are not clipped: the
polynomial mapping can stray a little outside 1..5 for extreme inputs.
"""

from __future__ import annotations

import importlib
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

MODEL_RATE = 16000  # Hz: every DNSMOS model here is 16 kHz
WINDOW_SECONDS = 9.01  # the reference's INPUT_LENGTH
WINDOW_SAMPLES = int(WINDOW_SECONDS * MODEL_RATE)  # 144160: the P.835 model's fixed input length
HOP_SAMPLES = MODEL_RATE  # windows start every second
MEL_BANDS, MEL_FFT, MEL_HOP = 120, 321, 160  # the P.808 model's features (900 frames of 120 bands)

# Polynomials (highest power first, as np.polyval) mapping the P.835 model's raw outputs to MOS,
# from speechmos/dnsmos.py (DNSMOS.get_polyfit_val).
_POLY_SIG = (-0.08397278, 1.22083953, 0.0052439)
_POLY_BAK = (-0.13166888, 1.60915514, -0.39604546)
_POLY_OVRL = (-0.06766283, 1.11546468, 0.04602535)
_POLY_SIG_PERSONALIZED = (-0.01019296, 0.02751166, 1.19576786, -0.24348726)
_POLY_BAK_PERSONALIZED = (-0.04976499, 0.44276479, -0.1644611, 0.96883132)
_POLY_OVRL_PERSONALIZED = (-0.00533021, 0.005101, 1.18058466, -0.11236046)

_P808_MODEL = "dnsmos_models/model_v8.onnx"
_P835_MODEL = "dnsmos_models/sig_bak_ovr.onnx"
_P835_PERSONALIZED_MODEL = "pdnsmos_models/sig_bak_ovr.onnx"


@dataclass(frozen=True)
class DnsmosScores:
    """DNSMOS of one clip, each a mean opinion score on the 1..5 scale (higher is better).

    ``p808_mos``: overall quality as rated in ITU-T P.808 listening tests. ``sig``, ``bak``,
    ``ovrl``: the ITU-T P.835 ratings of the speech signal itself, of the background (5 = no
    noticeable noise) and overall.
    """

    p808_mos: float
    sig: float
    bak: float
    ovrl: float


def dnsmos_available() -> str | None:
    """None when :func:`dnsmos` can run here, else the reason (missing package or model file)."""
    return _unavailable_reason()


def dnsmos(audio: np.ndarray, sample_rate: int, *, personalized: bool = False) -> DnsmosScores:
    """DNSMOS scores of a mono clip.

    ``audio``: float array of shape ``(num_samples,)`` with values in [-1, 1], at ``sample_rate``
    Hz (any rate; resampled to 16 kHz with soxr's HQ filter otherwise). Computed in float32
    whatever the input's float type. Any length from one sample up; see the module docstring for
    how clips shorter than 9.01 s are repeated and how long clips are windowed. Cost: about one
    P.835 model run per window, ``max(1, floor(s) - 9)`` windows for ``s`` seconds after
    repetition (up to 7 for clips under 9 s). ``personalized`` selects personalized DNSMOS for
    SIG / BAK / OVRL (module docstring).

    Single-threaded (the ONNX sessions are built once per process, on first use, with one
    intra-op thread) and deterministic. Raises ValueError for input that is not 1-D float,
    empty, non-finite or outside [-1, 1], or a non-positive sample rate, and RuntimeError with
    :func:`dnsmos_available`'s reason when the packages are missing.
    """
    x = _validated(audio, sample_rate)
    reason = _unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"DNSMOS is unavailable: {reason}")
    if sample_rate != MODEL_RATE:
        import soxr

        # soxr may overshoot [-1, 1] slightly near full scale; the models accept that, and the
        # reference's range check is on the caller's audio, which was checked above.
        x = soxr.resample(x, sample_rate, MODEL_RATE, quality="HQ").astype(np.float32, copy=False)
    x = _repeat_to_window(x)

    p835 = _session(_P835_PERSONALIZED_MODEL if personalized else _P835_MODEL)
    p808 = _session(_P808_MODEL)
    p835_input, p808_input = p835.get_inputs()[0].name, p808.get_inputs()[0].name
    raw_p835, p808_scores = [], []
    for start, stop in _window_bounds(x.size):
        window = x[start:stop]
        raw_p835.append(p835.run(None, {p835_input: window[np.newaxis, :]})[0][0])
        features = _p808_features(window[:-MEL_HOP])
        p808_scores.append(float(p808.run(None, {p808_input: features[np.newaxis]})[0][0][0]))

    raw = np.asarray(raw_p835, dtype=np.float64)  # (windows, 3): raw SIG, BAK, OVRL
    polys = (
        (_POLY_SIG_PERSONALIZED, _POLY_BAK_PERSONALIZED, _POLY_OVRL_PERSONALIZED)
        if personalized
        else (_POLY_SIG, _POLY_BAK, _POLY_OVRL)
    )
    sig, bak, ovrl = (float(np.mean(np.polyval(poly, raw[:, k]))) for k, poly in enumerate(polys))
    return DnsmosScores(p808_mos=float(np.mean(p808_scores)), sig=sig, bak=bak, ovrl=ovrl)


# ------------------------------------------------------------------ internals


def _validated(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``audio`` as a C-contiguous float32 copy of shape (num_samples,), or ValueError naming the problem."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    x = np.asarray(audio)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"audio must be a float array with values in [-1, 1], got dtype {x.dtype}")
    if x.ndim != 1:
        raise ValueError(f"audio must be mono, shape (num_samples,), got shape {x.shape}")
    if x.size == 0:
        raise ValueError("audio is empty (0 samples)")
    finite = np.isfinite(x)
    if not finite.all():
        raise ValueError(f"audio has {int(x.size - finite.sum())} non-finite sample(s) (NaN or inf)")
    peak = float(np.max(np.abs(x)))
    if peak > 1.0:
        # As the reference: DNSMOS expects full-scale float audio; larger values mean unnormalised input.
        raise ValueError(f"audio values must lie in [-1, 1], peak is {peak:.4g}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _repeat_to_window(x: np.ndarray) -> np.ndarray:
    """Double the clip until it spans a whole model window (the reference's handling of short clips)."""
    while x.size < WINDOW_SAMPLES:
        x = np.concatenate([x, x])
    return x


def _window_bounds(num_samples: int) -> list[tuple[int, int]]:
    """(start, stop) sample indices of the windows scored in a 16 kHz clip of ``num_samples`` >= 1 window.

    The reference's arithmetic verbatim, floating point included: its ``num_hops`` and float window
    ends, and it drops the windows whose end rounds down to one sample short (see the module docstring).
    """
    num_hops = int(math.floor(num_samples / MODEL_RATE) - WINDOW_SECONDS) + 1
    bounds = []
    for k in range(num_hops):
        start, stop = int(k * HOP_SAMPLES), int((k + WINDOW_SECONDS) * HOP_SAMPLES)
        if min(stop, num_samples) - start >= WINDOW_SAMPLES:
            bounds.append((start, start + WINDOW_SAMPLES))
    return bounds


def _p808_features(audio: np.ndarray) -> np.ndarray:
    """(frames, 120) float32 log-mel features of the P.808 model (speechmos's ``audio_melspec``)."""
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=MODEL_RATE, n_fft=MEL_FFT, hop_length=MEL_HOP, n_mels=MEL_BANDS)
    # dB relative to the window's loudest bin, mapped so that -40 dB -> 0 and 0 dB -> 1.
    return ((librosa.power_to_db(mel, ref=np.max) + 40) / 40).T.astype(np.float32)


_sessions: dict[str, Any] = {}  # model path under the speechmos package -> its session
_sessions_lock = threading.Lock()


def _session(model: str) -> Any:
    """The process's onnxruntime session of ``model`` (path under the speechmos package), built on first use."""
    with _sessions_lock:  # threads may score concurrently (InferenceSession.run is thread-safe)
        session = _sessions.get(model)
        if session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            # One thread: clips are scored one per process or pool worker, and onnxruntime's default
            # pool (a spinning thread per core) oversubscribes a small machine and every process pool.
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            session = _sessions[model] = ort.InferenceSession(
                str(_model_path(model)), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return session


def _model_path(model: str) -> Path:
    # importlib.resources, not ``import speechmos.dnsmos`` (which also imports requests): only the
    # package's data files are used here.
    return Path(str(resources.files("speechmos").joinpath(model)))


@lru_cache(maxsize=1)
def _unavailable_reason() -> str | None:
    # librosa.feature, not librosa: librosa loads its submodules (and so numba) lazily.
    for package in ("onnxruntime", "librosa.feature", "soxr", "speechmos"):
        try:
            importlib.import_module(package)
        except Exception as exc:  # ImportError, or a broken binary dependency (numba, llvmlite...)
            return f"cannot import {package}: {type(exc).__name__}: {exc}"
    for model in (_P808_MODEL, _P835_MODEL, _P835_PERSONALIZED_MODEL):
        if not _model_path(model).is_file():
            return f"speechmos model file {model} not found in {_model_path(model).parent.parent}"
    return None
