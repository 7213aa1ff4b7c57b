"""telucodec: compress speech to a compact .tcq bitstream with a trained TeluCodec model, and back.

    telucodec encode speech.wav speech.tcq [--kbps 3 | --levels 6] [--no-entropy]
    telucodec decode speech.tcq speech.out.wav [--rate 44100]
    telucodec encode clips/ more.wav [--list files.txt] out-folder/ [--jobs 2]     (many files, one model load)
    telucodec decode codes/ out-folder/ [--format flac]
    telucodec info speech.tcq [--json]
    arecord -f S16_LE -r 16000 | telucodec stream-encode | telucodec stream-decode | aplay -f S16_LE -r 16000

The model is an export (`python -m pipeline.export`): --model, else $TELUCODEC_MODEL, else
models/telucodec.safetensors in the current folder. Exit status: 0 on success; 1 on bad input (missing
or unreadable audio, corrupted or foreign bitstream, unusable model; in a batch: any file failed); 2 on a
usage error (an option out of range, or inputs that make no batch); 130 on Ctrl-C and 143 on SIGTERM (the
partial output removed); 141 when the reader of stdout goes away (`telucodec info x.tcq | head -1`), like
other Unix tools.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from codec.api import RESAMPLE_QUALITY
from codec.cli.backend import add_command as add_onnx_command
from codec.cli.backend import backend_options, runner
from codec.cli.batch import BatchUsageError, Job, default_jobs, plan, read_list, run
from codec.cli.common import (
    CliError,
    UsageError,
    check_output,
    integer,
    levels_for,
    load_model,
    model_options,
    positive_float,
    rate_options,
)
from codec.cli.stream import add_commands as add_stream_commands
from codec.data.audio import AUDIO_SUFFIXES, AudioRejected, clip, stream_mono
from codec.formats.bitstream import MAX_RATE, BitstreamError, Header, build_bitstream, parse_bitstream, read_bitstream
from codec.model.chunked import DEFAULT_CHUNK_SECONDS
from codec.runtime.cpus import available_cpus
from codec.runtime.interrupts import exit_cleanly
from codec.runtime.io import atomic_path, write_bytes_atomic

OUTPUT_SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
DECODE_SUFFIXES = (".wav", ".flac")  # what decode writes (the suffix picks the format)
MAX_CHUNK_SECONDS = 3600.0  # a chunk is held in memory whole (16 kHz: 230 MB of float32 per hour)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `cat big | head -1`


@exit_cleanly("telucodec")
def main(argv: list[str] | None = None) -> int:
    """Console entry point (``telucodec``); returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # paths after an option (`encode a/ --list l.txt out/`): argparse leaves them over
        if getattr(args, "inputs", None) is None or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        paths = [*args.inputs, args.output, *extra]
        args.inputs, args.output = paths[:-1], paths[-1]
    try:
        status = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except BrokenPipeError:
        # The reader left (`| head -1`): stop quietly. Point stdout at /dev/null so the interpreter's final
        # flush of what is still buffered cannot fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except UsageError as exc:
        print(f"telucodec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (CliError, BitstreamError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telucodec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enc = commands.add_parser(
        "encode",
        help="audio file -> .tcq bitstream",
        description="Encode any libsndfile audio (any rate, any channel count: downmixed "
        "and resampled with soxr to the codec's rate) into a .tcq bitstream.",
    )
    enc.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="audio file (wav, flac, ogg, mp3...), or several files and folders (a batch)",
    )
    enc.add_argument(
        "output",
        help=".tcq file to write (atomically); for a batch, a folder (created, "
        "<name>.tcq per input, folder layout mirrored)",
    )
    rate_options(enc)
    enc.add_argument(
        "--entropy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="range-code the codes with the model's code distributions (default: on)",
    )
    _common_options(enc)
    enc.set_defaults(run=_encode)

    dec = commands.add_parser(
        "decode",
        help=".tcq bitstream -> audio file",
        description="Decode a .tcq bitstream to mono audio at the codec's rate (or --rate).",
    )
    dec.add_argument("inputs", nargs="*", metavar="INPUT", help=".tcq file, or several files and folders (a batch)")
    dec.add_argument(
        "output",
        help="audio file to write (atomically; the format follows the suffix: .wav, .flac); for a batch, a folder",
    )
    dec.add_argument("--format", choices=("wav", "flac"), default="wav", help="a batch's output format (default: wav)")
    dec.add_argument("--rate", type=integer(1, MAX_RATE), help="resample the output to this rate in Hz (soxr)")
    dec.add_argument(
        "--subtype",
        choices=OUTPUT_SUBTYPES,
        default="PCM_16",
        help="sample format of the output (default: PCM_16; FLOAT keeps the decoder's exact values)",
    )
    _common_options(dec)
    dec.set_defaults(run=_decode)

    info = commands.add_parser(
        "info",
        help="print a .tcq file's header, duration and bitrates",
        description="Validate a .tcq file (header, sizes, CRC) and print its fields, "
        "duration and nominal and achieved bitrates. Needs no model.",
    )
    info.add_argument("input", help=".tcq file")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    info.set_defaults(run=_info)
    add_stream_commands(commands)
    add_onnx_command(commands)
    return parser


def _common_options(parser: argparse.ArgumentParser) -> None:
    model_options(parser)
    backend_options(parser)
    parser.add_argument(
        "--chunk-seconds",
        type=positive_float(MAX_CHUNK_SECONDS),
        default=DEFAULT_CHUNK_SECONDS,
        help=f"audio processed per chunk, bounding memory (default: %(default)s, at most {MAX_CHUNK_SECONDS:g})",
    )
    parser.add_argument("--list", metavar="FILE", help="more inputs, one path per line ('-': stdin); makes a batch")
    parser.add_argument(
        "--jobs", type=integer(1, 256), default=0, help="files coded at once in a batch (default: one per CPU core)"
    )


# ------------------------------------------------------------------------------------ commands


def _encode(args: argparse.Namespace) -> int:
    jobs = _batch(args, AUDIO_SUFFIXES, ".tcq")
    path = _input_file(args.inputs[0]) if jobs is None else None  # before the model loads: a quick answer
    if path is not None:
        check_output(Path(args.output), [path], (".tcq",), "a .tcq bitstream")
    model = load_model(args)
    n_q = levels_for(model.codec, args.kbps, args.levels)
    run_model = runner(model, args, _batch_threads(args, jobs))
    if jobs is not None:
        return _run_batch(
            args,
            jobs,
            lambda job: _encode_file(model, n_q, _input_file(job.source), job.target, args, run_model),
            "encoded",
        )
    assert path is not None  # a single input (no batch)
    h = _encode_file(model, n_q, path, Path(args.output), args, run_model)
    print(
        f"{args.output}: {h.duration_seconds:.2f} s, {h.num_levels} levels, {h.nominal_kbps:.2f} kbit/s nominal, "
        f"{h.payload_kbps:.2f} kbit/s achieved ({'entropy-coded' if h.entropy_coded else 'raw'}), "
        f"{h.file_bytes} bytes"
    )
    return 0


def _encode_file(model, n_q: int, path: Path, output: Path, args: argparse.Namespace, run_model=None) -> Header:
    # torch is imported only by the commands that run the model: `info` and --help start in a blink.
    from codec.model.chunked import encode_stream

    codec = model.codec
    try:
        # Read, resampled and encoded chunk by chunk: memory stays flat however long the file is.
        audio = stream_mono(path, codec.sample_rate, args.chunk_seconds, RESAMPLE_QUALITY)
        codes, num_samples = encode_stream(
            run_model or codec, audio.pieces, n_q, _chunk_frames(args.chunk_seconds, codec.frame_rate)
        )
    except AudioRejected as exc:
        raise CliError(f"{path}: {exc}") from None
    except ValueError:
        raise CliError(f"{path}: no audio: no sample left at {codec.sample_rate} Hz") from None
    data = build_bitstream(
        codes.numpy(),
        model_id=model.model_id_bytes,
        sample_rate=codec.sample_rate,
        hop_length=codec.hop_length,
        codebook_size=int(codec.quantizer.codebook_size),
        num_samples=num_samples,
        source_rate=audio.source_rate,
        probabilities=model.probabilities if args.entropy else None,
    )
    write_bytes_atomic(output, data)
    return parse_bitstream(data).header


def _decode(args: argparse.Namespace) -> int:
    jobs = _batch(args, (".tcq",), f".{args.format}")
    if jobs is None:
        check_output(Path(args.output), [_input_file(args.inputs[0])], DECODE_SUFFIXES, "decoded audio")
    stream = read_bitstream(_input_file(args.inputs[0])) if jobs is None else None
    model = load_model(args)
    run_model = runner(model, args, _batch_threads(args, jobs))
    if jobs is not None:
        return _run_batch(
            args,
            jobs,
            lambda job: _decode_file(
                model, read_bitstream(_input_file(job.source)), job.source, job.target, args, run_model
            ),
            "decoded",
        )
    h, written, rate = _decode_file(model, stream, Path(args.inputs[0]), Path(args.output), args, run_model)
    print(
        f"{args.output}: {written / rate:.2f} s at {rate} Hz from {h.num_levels} levels ({h.nominal_kbps:.2f} "
        "kbit/s nominal)"
    )
    return 0


def _decode_file(
    model, stream, source: Path, output: Path, args: argparse.Namespace, run_model=None
) -> tuple[Header, int, int]:
    from codec.model.chunked import decode_codes

    codec = model.codec
    h = stream.header
    _check_model(h, model, str(source))
    try:
        codes = stream.codes(model.probabilities)
    except BitstreamError as exc:
        raise BitstreamError(f"{source}: {exc}") from None
    rate = codec.sample_rate if args.rate is None else args.rate
    pieces = decode_codes(run_model or codec, codes, h.num_samples, _chunk_frames(args.chunk_seconds, codec.frame_rate))
    return h, _write_audio(output, pieces, codec.sample_rate, rate, args.subtype), rate


def _info(args: argparse.Namespace) -> int:
    h = read_bitstream(_input_file(args.input)).header
    fields = header_summary(h)
    if args.json:
        print(json.dumps(fields, indent=2))
    else:
        width = max(len(k) for k in fields)
        for key, value in fields.items():
            print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


def header_summary(h: Header) -> dict[str, object]:
    """Header fields plus derived figures (duration, bitrates) as plain values."""
    codes = h.num_levels * h.num_frames
    return {
        "format_version": h.version,
        "model_id": h.model_id.hex(),
        "sample_rate": h.sample_rate,
        "hop_length": h.hop_length,
        "frame_rate": float(h.frame_rate),
        "source_rate": h.source_rate,
        "num_levels": h.num_levels,
        "codebook_size": h.codebook_size,
        "codebook_bits": h.codebook_bits,
        "num_frames": h.num_frames,
        "num_samples": h.num_samples,
        "duration_seconds": h.duration_seconds,
        "entropy_coded": h.entropy_coded,
        "payload_bytes": h.payload_length,
        "file_bytes": h.file_bytes,
        "nominal_kbps": h.nominal_kbps,
        "achieved_kbps": h.payload_kbps,
        "file_kbps": h.file_kbps,
        "bits_per_code": 8.0 * h.payload_length / codes,
    }


# ------------------------------------------------------------------------------------- helpers


def _check_model(h: Header, model, source: str) -> None:
    """The bitstream must come from this very model (id), and fit its shape."""
    codec = model.codec
    if h.model_id != model.model_id_bytes:
        raise BitstreamError(
            f"{source}: encoded with model {h.model_id.hex()}, but the model given is "
            f"{model.model_id_bytes.hex()} (pass the right one with --model)"
        )
    got = (h.sample_rate, h.hop_length, h.codebook_size)
    want = (codec.sample_rate, codec.hop_length, int(codec.quantizer.codebook_size))
    if got != want or h.num_levels > codec.num_levels:
        raise BitstreamError(
            f"{source}: stream (rate, hop, codebook) {got} with {h.num_levels} levels does not "
            f"fit the model's {want} with {codec.num_levels} levels"
        )


def _batch(args: argparse.Namespace, suffixes: tuple[str, ...], target_suffix: str) -> list[Job] | None:
    """The batch's jobs, or None for one file to one file (one input file, an output that is no folder)."""
    inputs = [*args.inputs, *(read_list(args.list) if args.list else [])]
    if not inputs:
        raise BatchUsageError("no input given")
    output = Path(args.output)
    if (
        len(inputs) == 1
        and args.list is None
        and not Path(inputs[0]).is_dir()
        and not output.is_dir()
        and not args.output.endswith(("/", os.sep))
    ):
        return None
    return plan(inputs, args.output, suffixes, target_suffix)


def _run_batch(args: argparse.Namespace, jobs: list[Job], work, verb: str) -> int:
    import torch

    workers = args.jobs or default_jobs(len(jobs))
    if not args.threads:  # the cores shared out between the files coded at once
        torch.set_num_threads(max(1, available_cpus() // workers))
    return run(jobs, work, workers, (CliError, BitstreamError, OSError), f"{verb} into {args.output}:")


def _batch_threads(args: argparse.Namespace, jobs: list[Job] | None) -> int:
    """Intra-op threads of an ONNX session: ``--threads``, else in a batch the cores shared by the jobs (as
    :func:`_run_batch` shares torch's), else 0 (the runtime's choice)."""
    if args.threads or jobs is None:
        return args.threads
    return max(1, available_cpus() // (args.jobs or default_jobs(len(jobs))))


def _input_file(name: str | Path) -> Path:
    path = Path(name)
    if not path.exists():
        raise CliError(f"{path}: no such file")
    if path.is_dir():
        raise CliError(f"{path}: is a folder, not a file")
    return path


def _chunk_frames(seconds: float, frame_rate: float) -> int:
    return max(1, round(seconds * frame_rate))


def _write_audio(path: Path, pieces, codec_rate: int, rate: int, subtype: str) -> int:
    """Write the decoded pieces as mono audio at ``rate`` (streaming soxr resampling); returns frames written."""
    fmt = path.suffix.lstrip(".").upper()
    if fmt not in sf.available_formats():
        raise CliError(f"{path}: unknown audio format {path.suffix!r} (use .wav or .flac)")
    if not sf.check_format(fmt, subtype):
        raise CliError(f"{path}: format {fmt} cannot hold {subtype} samples")
    resampler = (
        soxr.ResampleStream(codec_rate, rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        if rate != codec_rate
        else None
    )
    # libsndfile wraps out-of-range floats when converting to integers: clip those, keep floats exact.
    limit = (lambda y: y) if subtype == "FLOAT" else clip
    written = 0
    try:
        with (
            atomic_path(path) as tmp,
            sf.SoundFile(tmp, "w", samplerate=rate, channels=1, subtype=subtype, format=fmt) as out,
        ):
            for piece in pieces:
                if resampler is not None:
                    piece = resampler.resample_chunk(piece)
                out.write(limit(piece))
                written += piece.shape[0]
            if resampler is not None:
                tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
                out.write(limit(tail))
                written += tail.shape[0]
    except sf.SoundFileError as exc:
        raise CliError(f"{path}: cannot write audio ({exc})") from None
    return written


if __name__ == "__main__":
    sys.exit(main())
