"""Minimal ctypes binding to libespeak-ng (shipped by the ``espeakng-loader`` wheel).

Only what corpus synthesis needs: initialise in synchronous retrieval mode, pick a voice
("te+m3"), set rate/pitch/range, seed the noise generator, and render text to int16 PCM.
No system eSpeak package is used. The C API is ``speak_lib.h`` (API revision 12).

libespeak-ng keeps global state (one engine per process, and its output for an utterance
depends slightly on what was rendered before it), so :class:`Espeak` allows one open
instance per process; callers that need reproducible audio render a fixed sequence of
utterances in a fresh process.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

# speak_lib.h enum values.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4

# int SynthCallback(short *wav, int numsamples, espeak_EVENT *events); 0 = continue.
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """libespeak-ng could not be loaded or refused a request."""


def default_paths() -> tuple[str, str]:
    """(libespeak-ng.so, espeak-ng-data folder) from the espeakng-loader wheel."""
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - the wheel is a hard dependency
        raise EspeakError("espeakng-loader is not installed (pip install espeakng-loader)") from exc
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


class Espeak:
    """The process's libespeak-ng engine: text in, mono int16 samples at :attr:`sample_rate` out."""

    _open_in_process = False

    def __init__(self, library_path: str | None = None, data_path: str | None = None) -> None:
        if Espeak._open_in_process:
            raise EspeakError("libespeak-ng has global state: only one Espeak may be open per process")
        if library_path is None or data_path is None:
            default_lib, default_data = default_paths()
            library_path, data_path = library_path or default_lib, data_path or default_data
        self.library_path, self.data_path = library_path, data_path
        if not Path(self.data_path, "phontab").is_file():
            raise EspeakError(f"{self.data_path} is not an espeak-ng-data folder (no phontab)")
        try:
            lib = ctypes.CDLL(self.library_path)
        except OSError as exc:
            raise EspeakError(f"cannot load {self.library_path}: {exc}") from exc
        _declare(lib)
        self._lib: ctypes.CDLL | None = lib  # None once closed
        self._chunks: list[np.ndarray] = []
        # Kept on self: ctypes frees the trampoline when the Python object dies.
        self._callback = _SynthCallback(self._collect)
        # The path argument is the folder that *contains* espeak-ng-data.
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, os.fsencode(Path(self.data_path).parent), 0)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed ({rate}) with data at {self.data_path}")
        Espeak._open_in_process = True
        self.sample_rate: int = rate
        lib.espeak_SetSynthCallback(self._callback)
        self.version: str = (lib.espeak_Info(None) or b"unknown").decode("utf-8", "replace")

    def _collect(self, wav, num_samples: int, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def set_voice(self, name: str) -> None:
        """Select a voice by name, e.g. ``"te"`` or ``"te+f2"`` (language + variant from voices/!v)."""
        _, _, variant = name.partition("+")
        # eSpeak silently falls back to the plain language voice for an unknown variant.
        if variant and not Path(self.data_path, "voices", "!v", variant).is_file():
            raise EspeakError(f"eSpeak NG voice variant {variant!r} not found in {self.data_path}/voices/!v")
        assert self._lib is not None, "Espeak is closed"
        err = self._lib.espeak_SetVoiceByName(name.encode("utf-8"))
        if err != _EE_OK:
            raise EspeakError(f"eSpeak NG voice {name!r} not found (error {err}) in {self.data_path}")

    def set_prosody(self, rate: int, pitch: int, pitch_range: int) -> None:
        """Speaking rate in words per minute (80..450); base pitch and pitch range on eSpeak's 0..100 scale."""
        assert self._lib is not None, "Espeak is closed"
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range)):
            err = self._lib.espeak_SetParameter(param, int(value), 0)
            if err != _EE_OK:
                raise EspeakError(f"espeak_SetParameter({param}, {value}) failed with error {err}")

    def seed(self, seed: int) -> None:
        """Seed eSpeak's noise generator (breathy variants); by default it is seeded from the clock."""
        if self._lib is not None and hasattr(self._lib, "espeak_ng_SetRandSeed"):  # eSpeak NG >= 1.52
            self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed & 0x7FFFFFFF))

    def synthesize(self, text: str) -> np.ndarray:
        """Render ``text`` (UTF-8) with the current voice: int16 array of shape (num_samples,)."""
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        assert self._lib is not None, "Espeak is closed"
        err = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != _EE_OK:
            raise EspeakError(f"espeak_Synth failed with error {err}")
        self._lib.espeak_Synchronize()
        chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def close(self) -> None:
        lib = getattr(self, "_lib", None)  # not set when __init__ failed
        if Espeak._open_in_process and lib is not None:
            lib.espeak_Terminate()
            Espeak._open_in_process = False
            self._lib = None

    def __enter__(self) -> Espeak:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
