"""The Opus baseline: a round trip through ``opusenc``/``opusdec`` (opus-tools) at a fixed bitrate.

The input is written as 16-bit WAV at its own rate (the evaluation audio is 16-bit PCM already, so
nothing is lost); ``opusenc --hard-cbr`` encodes it at exactly the requested bitrate; ``opusdec``
decodes at 48 kHz (Opus' internal rate) as float, removing the encoder's pre-skip and the end
padding, and soxr brings the result back to the input rate. The output is cut or zero-padded to the
input length; it is sample-aligned with the input (no delay), which the tests check by
cross-correlation.
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
        raise OpusUnavailable(f"{' and '.join(missing)} not found on PATH (install opus-tools, e.g. "
                              "`apt-get install opus-tools`)")
    try:
        out = subprocess.run([found["opusenc"], "--version"], capture_output=True, text=True, timeout=_TIMEOUT_S)
    except OSError as exc:
        raise OpusUnavailable(f"cannot run opusenc: {exc}") from None
    version = (out.stdout or out.stderr).strip().splitlines()
    return OpusTools(found["opusenc"], found["opusdec"], version[0] if version else "opusenc (unknown version)")


def opus_round_trip(x: np.ndarray, sample_rate: int, kbps: float, tools: OpusTools) -> np.ndarray:
    """Encode mono float ``x [T]`` (in [-1, 1], at ``sample_rate`` Hz) with Opus at ``kbps`` kbit/s
    (hard CBR) and decode it: float32 ``[T]`` at ``sample_rate``, aligned with ``x``."""
    with tempfile.TemporaryDirectory(prefix="opus-") as tmp:
        src, coded, decoded = Path(tmp) / "in.wav", Path(tmp) / "coded.opus", Path(tmp) / "out.wav"
        sf.write(src, np.clip(x, -1.0, 1.0), sample_rate, subtype="PCM_16")
        _run([tools.opusenc, "--quiet", "--bitrate", f"{kbps:g}", "--hard-cbr", "--serial", "1", str(src), str(coded)])
        _run([tools.opusdec, "--quiet", "--rate", str(OPUS_RATE), "--float", str(coded), str(decoded)])
        y, rate = sf.read(decoded, dtype="float32", always_2d=True)
    y = soxr.resample(y[:, 0], rate, sample_rate, quality="VHQ") if rate != sample_rate else y[:, 0]
    out = np.zeros(x.shape[0], dtype=np.float32)
    n = min(out.shape[0], y.shape[0])
    out[:n] = y[:n]
    return out


def _run(args: list[str]) -> None:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OpusError(f"{Path(args[0]).name}: {exc}") from None
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.split())[-500:] or f"exit status {proc.returncode}"
        raise OpusError(f"{Path(args[0]).name} failed: {detail}")
