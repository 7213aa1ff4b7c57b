"""What the telucodec commands share: the model lookup and load, the error they report, and the option types."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

MODEL_ENV = "TELUCODEC_MODEL"
DEFAULT_MODEL = "models/telucodec.safetensors"
# The pretrained Telugu codec a checkout ships (pretrained/telucodec-te/MODEL_CARD.md): used, with a note, when
# neither --model nor $TELUCODEC_MODEL names a model and the default export has not been built.
PRETRAINED = Path(__file__).resolve().parents[2] / "pretrained"
PRETRAINED_MODEL = PRETRAINED / "telucodec-te" / "telucodec-te.safetensors"
# Its causal sibling (pretrained/telucodec-te-stream/MODEL_CARD.md), what the stream commands fall back to.
PRETRAINED_STREAM_MODEL = PRETRAINED / "telucodec-te-stream" / "telucodec-te-stream.safetensors"
MAX_THREADS = 1024


class CliError(Exception):
    """A user-facing failure: printed as ``error: <message>``, exit status 1."""


class UsageError(Exception):
    """Arguments that make no sense together (an output that is an input, a suffix that does not say what is
    written, inputs that make no batch): printed as ``telucodec COMMAND: error: <message>``, exit status 2,
    before anything is read or written."""


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same path, or the same file through a link."""
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def check_output(output: Path, inputs: list[Path], suffixes: tuple[str, ...], what: str) -> None:
    """Refuse, before anything runs, an ``output`` that is one of ``inputs`` (writing it would destroy the input)
    or whose suffix is not one of ``suffixes`` (empty: any), ``what`` saying what would be written."""
    for source in inputs:
        if same_file(output, source):
            raise UsageError(f"{output} is the input {source}: refusing to overwrite it (name another output)")
    if suffixes and output.suffix.lower() not in suffixes:
        raise UsageError(
            f"{output}: {what} goes to a {' or '.join(suffixes)} file, not {output.suffix or 'a name without a suffix'}"
        )


def rate_options(parser: argparse.ArgumentParser) -> None:
    """``--kbps`` or ``--levels``: how many quantizer levels an encoder sends (:func:`levels_for`)."""
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument(
        "--kbps", type=positive_float(math.inf), help="target nominal bitrate: the most levels that fit (default: all)"
    )
    rate.add_argument("--levels", type=integer(1, 1 << 16), help="number of quantizer levels to send (default: all)")


def model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help=f"exported model (default: ${MODEL_ENV}, else {DEFAULT_MODEL})")
    parser.add_argument(
        "--threads",
        type=integer(0, MAX_THREADS),
        default=0,
        help="torch CPU threads (default: 0, torch's choice; in a batch, the cores shared by the jobs)",
    )


def model_named(args: argparse.Namespace) -> bool:
    """Whether the user named a model (``--model`` or the environment): such a model is never replaced."""
    return bool(args.model or os.environ.get(MODEL_ENV))


def load_model(args: argparse.Namespace, pretrained: Path | None = None):
    """The model ``--model``, ``$TELUCODEC_MODEL`` or the default export name; when none is named and the default
    export is not built, the shipped ``pretrained`` codec (default: :data:`PRETRAINED_MODEL`), with a note."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    pretrained = PRETRAINED_MODEL if pretrained is None else pretrained
    source, path = (
        ("--model", Path(args.model))
        if args.model
        else (f"${MODEL_ENV}", Path(os.environ[MODEL_ENV]))
        if os.environ.get(MODEL_ENV)
        else ("the default, relative to the current folder", Path(DEFAULT_MODEL))
    )
    if not path.is_file() and source.startswith("the default") and pretrained.is_file():
        # A fresh clone has no trained model yet: the shipped one, said on stderr so that nobody mistakes it for
        # theirs. A model named by --model or the environment is never replaced.
        print(f"note: no {DEFAULT_MODEL} here; using the pretrained Telugu codec {pretrained}", file=sys.stderr)
        path = pretrained
    return load_export_file(path, source)


def load_export_file(path: Path, source: str = "--model"):
    """An export, or a :class:`CliError` that says where it was looked for."""
    from codec.formats.export import ExportError, load_export

    if not path.is_file():
        raise CliError(
            f"model {path} not found (looked for {path.absolute()}, from {source}): pass --model PATH "
            f"or set ${MODEL_ENV} to an export (`python -m pipeline.export` or `dvc repro export` "
            f"writes models/telucodec.safetensors in the project folder)"
        )
    try:
        return load_export(path)
    except ExportError as exc:
        raise CliError(f"model: {exc}") from None


def levels_for(codec, kbps: float | None, levels: int | None) -> int:
    """Levels to send: ``--levels``, else the most whose nominal bitrate fits ``--kbps``, else all
    (:func:`codec.api.levels_for`, its refusal as a :class:`CliError`)."""
    from codec.api import levels_for as choose

    try:
        return choose(codec.num_levels, codec.bitrate_kbps(1), kbps, levels)
    except ValueError as exc:
        raise CliError(f"{'--levels' if levels is not None else '--kbps'}: {exc}") from None


def integer(low: int, high: int) -> Callable[[str], int]:
    """argparse type: an integer in [low, high] (a usage error, status 2, otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {value}")
        return value

    return parse


def positive_float(high: float) -> Callable[[str], float]:
    """argparse type: a finite number in (0, high] (``inf`` and ``nan`` are usage errors)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and 0 < value <= high):
            raise argparse.ArgumentTypeError(f"expected a finite number in (0, {high:g}], got {text}")
        return value

    return parse
