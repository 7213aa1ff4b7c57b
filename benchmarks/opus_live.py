"""A live Opus pipe, the way a real-time application uses libopus (no Ogg container): the baseline of
``benchmarks.pipe_latency``.

    python -m benchmarks.opus_live encode --rate 16000 --kbps 6 < pcm16 | python -m benchmarks.opus_live decode

``encode`` reads 16-bit mono PCM from stdin a 20 ms frame at a time, codes each frame at once (constant bitrate,
VoIP mode, complexity 10) and writes it as a 2-byte length and the packet, flushed; ``decode`` writes each
packet's samples as 16-bit PCM the moment it has it, with the encoder's look-ahead (``OPUS_GET_LOOKAHEAD``)
dropped from the start as ``opusdec`` drops the pre-skip, so output sample ``n`` is input sample ``n``.
``opusenc | opusdec`` cannot serve: ``opusenc`` writes nothing until its input ends (measured: a 6 s live input
came out in one piece after the end, whatever ``--max-delay``). libopus is loaded with ctypes from the system
(Debian's libopus0, which opus-tools installs).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import struct
import sys
from typing import BinaryIO

APPLICATION_VOIP = 2048
SET_BITRATE, SET_VBR, SET_COMPLEXITY, GET_LOOKAHEAD = 4002, 4006, 4010, 4027
FRAME_MS = 20
MAX_PACKET = 1275  # the largest Opus frame (RFC 6716)


def libopus() -> ctypes.CDLL:
    name = ctypes.util.find_library("opus") or "libopus.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise SystemExit(f"error: libopus not found ({exc}): install libopus0 (apt-get install opus-tools)") from None
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_encode.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int32]
    lib.opus_decode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int32,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    return lib


def read_exactly(source: BinaryIO, size: int) -> bytes:
    data = b""
    while len(data) < size and (more := source.read(size - len(data))):
        data += more
    return data


def encode(rate: int, kbps: float, source: BinaryIO, sink: BinaryIO) -> int:
    lib, error = libopus(), ctypes.c_int()
    enc = lib.opus_encoder_create(rate, 1, APPLICATION_VOIP, ctypes.byref(error))
    if error.value:
        raise SystemExit(f"error: opus_encoder_create failed ({error.value})")
    for request, value in ((SET_BITRATE, int(kbps * 1000)), (SET_VBR, 0), (SET_COMPLEXITY, 10)):
        lib.opus_encoder_ctl(ctypes.c_void_p(enc), request, ctypes.c_int(value))
    frame = rate * FRAME_MS // 1000
    packet = ctypes.create_string_buffer(MAX_PACKET)
    while pcm := read_exactly(source, 2 * frame):
        pcm = pcm.ljust(2 * frame, b"\0")  # the last frame, padded with silence
        size = lib.opus_encode(ctypes.c_void_p(enc), pcm, frame, packet, MAX_PACKET)
        if size < 0:
            raise SystemExit(f"error: opus_encode failed ({size})")
        sink.write(struct.pack("<H", size) + packet.raw[:size])
        sink.flush()
    lookahead = ctypes.c_int()
    lib.opus_encoder_ctl(ctypes.c_void_p(enc), GET_LOOKAHEAD, ctypes.byref(lookahead))
    return lookahead.value


def lookahead_samples(rate: int) -> int:
    """The encoder's look-ahead at ``rate`` (what the decoder drops from the start)."""
    lib, error = libopus(), ctypes.c_int()
    enc = lib.opus_encoder_create(rate, 1, APPLICATION_VOIP, ctypes.byref(error))
    value = ctypes.c_int()
    lib.opus_encoder_ctl(ctypes.c_void_p(enc), GET_LOOKAHEAD, ctypes.byref(value))
    lib.opus_encoder_destroy(ctypes.c_void_p(enc))
    return value.value


def decode(rate: int, source: BinaryIO, sink: BinaryIO) -> None:
    lib, error = libopus(), ctypes.c_int()
    dec = lib.opus_decoder_create(rate, 1, ctypes.byref(error))
    if error.value:
        raise SystemExit(f"error: opus_decoder_create failed ({error.value})")
    skip = lookahead_samples(rate)
    frame = rate * FRAME_MS // 1000
    pcm = ctypes.create_string_buffer(2 * frame)
    while (head := read_exactly(source, 2)) and len(head) == 2:
        packet = read_exactly(source, struct.unpack("<H", head)[0])
        samples = lib.opus_decode(ctypes.c_void_p(dec), packet, len(packet), pcm, frame, 0)
        if samples < 0:
            raise SystemExit(f"error: opus_decode failed ({samples})")
        out = pcm.raw[: 2 * samples]
        cut = min(skip, samples)
        skip -= cut
        sink.write(out[2 * cut :])
        sink.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("side", choices=("encode", "decode"))
    ap.add_argument("--rate", type=int, default=16000, choices=(8000, 12000, 16000, 24000, 48000))
    ap.add_argument("--kbps", type=float, default=6.0)
    args = ap.parse_args()
    if args.side == "encode":
        encode(args.rate, args.kbps, sys.stdin.buffer, sys.stdout.buffer)
    else:
        decode(args.rate, sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
