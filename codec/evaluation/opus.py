"""The Opus baseline: a round trip through ``opusenc``/``opusdec`` (opus-tools) at a fixed bitrate.

The input is written as 16-bit WAV at its own rate (the evaluation audio is 16-bit PCM already, so
nothing is lost); ``opusenc --hard-cbr`` encodes it at exactly the requested bitrate; ``opusdec``
decodes at 48 kHz (Opus' internal rate) as float, removing the encoder's pre-skip and the end
padding, and soxr brings the result back to the input rate. The output is cut or zero-padded to the
input length.

Pre-skip removal leaves the output aligned in CELT mode, but libopus' SILK and hybrid modes (the low
bitrates) keep a residual delay of about +2.4 and -1.8 samples at 48 kHz (measured with libopus
1.3.1), i.e. a fraction of a sample at 16 kHz that waveform metrics would still punish. So the
48 kHz output is shifted by the integer lag (at most :data:`MAX_SHIFT_48K` samples) that maximises
its cross-correlation with the input upsampled to 48 kHz: a fixed property of the decoder, not of
the utterance, removed as any player would. The tests check the alignment by cross-correlation.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

OPUS_RATE = 48000
MAX_SHIFT_48K = 4  # samples at 48 kHz searched either way when aligning (residual delay <= 2.4)
_TIMEOUT_S = 120


class OpusUnavailable(RuntimeError):
    """opusenc or opusdec is not installed: the baseline cannot run."""


class OpusError(RuntimeError):
    """opusenc or opusdec failed on an input."""


@dataclass(frozen=True)
class OpusTools:
    opusenc: str  # executable paths
    opusdec: str
    version: str  # first line of ``opusenc --version``


def find_opus_tools() -> OpusTools:
    """Locate opusenc and opusdec on PATH; :class:`OpusUnavailable` says what is missing."""
    found = {name: shutil.which(name) for name in ("opusenc", "opusdec")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise OpusUnavailable(
            f"{' and '.join(missing)} not found on PATH (install opus-tools, e.g. `apt-get install opus-tools`)"
        )
    opusenc, opusdec = found["opusenc"], found["opusdec"]
    assert opusenc is not None and opusdec is not None  # none is missing
    try:
        out = subprocess.run([opusenc, "--version"], capture_output=True, text=True, timeout=_TIMEOUT_S)
    except OSError as exc:
        raise OpusUnavailable(f"cannot run opusenc: {exc}") from None
    version = (out.stdout or out.stderr).strip().splitlines()
    return OpusTools(opusenc, opusdec, version[0] if version else "opusenc (unknown version)")


def opus_round_trip(x: np.ndarray, sample_rate: int, kbps: float, tools: OpusTools) -> np.ndarray:
    """Encode mono float ``x [T]`` (in [-1, 1], at ``sample_rate`` Hz) with Opus at ``kbps`` kbit/s
    (hard CBR) and decode it: float32 ``[T]`` at ``sample_rate``, aligned with ``x``."""
    with tempfile.TemporaryDirectory(prefix="opus-") as tmp:
        src, coded, decoded = Path(tmp) / "in.wav", Path(tmp) / "coded.opus", Path(tmp) / "out.wav"
        sf.write(src, np.clip(x, -1.0, 1.0), sample_rate, subtype="PCM_16")
        _run([tools.opusenc, "--quiet", "--bitrate", f"{kbps:g}", "--hard-cbr", "--serial", "1", str(src), str(coded)])
        _run([tools.opusdec, "--quiet", "--rate", str(OPUS_RATE), "--float", str(coded), str(decoded)])
        y, rate = sf.read(decoded, dtype="float32", always_2d=True)
    reference = soxr.resample(x, sample_rate, rate, quality="VHQ") if rate != sample_rate else x
    y = align(reference, y[:, 0], MAX_SHIFT_48K)
    y = soxr.resample(y, rate, sample_rate, quality="VHQ") if rate != sample_rate else y
    out = np.zeros(x.shape[0], dtype=np.float32)
    n = min(out.shape[0], y.shape[0])
    out[:n] = y[:n]
    return out


def align(reference: np.ndarray, estimate: np.ndarray, max_shift: int) -> np.ndarray:
    """``estimate`` moved by the integer lag in ``[-max_shift, max_shift]`` that maximises its
    cross-correlation with ``reference`` (zeros shifted in; same length as ``estimate``)."""
    n = min(reference.shape[0], estimate.shape[0])
    r, e = reference[:n].astype(np.float64), estimate[:n].astype(np.float64)
    lags = range(-max_shift, max_shift + 1)
    scores = [np.dot(r[max(0, -k) : n - max(0, k)], e[max(0, k) : n - max(0, -k)]) for k in lags]
    lag = lags[int(np.argmax(scores))]  # estimate[i + lag] matches reference[i]
    out = np.zeros_like(estimate)
    if lag >= 0:
        out[: estimate.shape[0] - lag] = estimate[lag:]
    else:
        out[-lag:] = estimate[: estimate.shape[0] + lag]
    return out


def _run(args: list[str]) -> None:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OpusError(f"{Path(args[0]).name}: {exc}") from None
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.split())[-500:] or f"exit status {proc.returncode}"
        raise OpusError(f"{Path(args[0]).name} failed: {detail}")
