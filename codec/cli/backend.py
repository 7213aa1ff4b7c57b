"""`telucodec export-onnx`, and the `--backend` / `--onnx` options of encode and decode: which runtime runs the model.

    telucodec export-onnx models/telucodec.safetensors models/telucodec.onnx [--int8]
    telucodec encode talk.wav talk.tcq --backend onnx [--onnx models/telucodec.onnx]
    telucodec decode talk.tcq talk.wav --backend onnx-int8

``--backend torch`` (the default) runs the export's torch modules; ``onnx`` runs its ONNX graphs with onnxruntime
from ``--onnx DIR`` (default: ``<export without .safetensors>.onnx/`` beside the export), checked to be of the export
given (model id, rate, hop, levels, codebook size); the bitstream is the same wherever the codes agree (all of them
on the shipped codec's test split). ``onnx-int8`` decodes with the int8 decoder (``export-onnx --int8``); its encoder
is the float32 one, so its codes and bitstream are ``onnx``'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from codec.cli.common import CliError, load_export_file

BACKENDS = ("torch", "onnx", "onnx-int8")


def backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="runtime of the model: torch (default), onnx (onnxruntime, the graphs of `telucodec export-onnx`), "
        "onnx-int8 (its int8 decoder; encodes as onnx)",
    )
    parser.add_argument(
        "--onnx",
        metavar="DIR",
        help="folder of the model's ONNX graphs (default: beside the export, <name>.onnx/)",
    )


def runner(model: Any, args: argparse.Namespace, threads: int = 0) -> Any:
    """What encodes and decodes for ``args.backend``: the export's codec, or an ONNX runtime of it with ``threads``
    intra-op threads (0: ``--threads``, else onnxruntime's choice). A missing or foreign folder is a :class:`CliError`
    of one line."""
    backend = getattr(args, "backend", "torch")
    if backend == "torch":
        return model.codec
    from codec.formats.onnx_runtime import OnnxBackendError, OnnxCodec, default_onnx_dir

    folder = Path(args.onnx) if args.onnx else default_onnx_dir(model.path)
    try:
        return OnnxCodec(model, folder, threads=threads or args.threads, int8=backend == "onnx-int8")
    except OnnxBackendError as exc:
        raise CliError(f"--backend {backend}: {exc}") from None


def add_command(commands: Any) -> None:
    cmd = commands.add_parser(
        "export-onnx",
        help="write an export's ONNX graphs (for --backend onnx, or any onnxruntime host)",
        description="Write the encoder (with the quantizer's lookup) and the decoder (with the codebooks) of an "
        "export as ONNX graphs (opset 17, weight norm folded, the iSTFT as a matrix product and a transposed "
        "convolution), the step graphs of a causal model with each layer's state as inputs and outputs, and "
        "onnx.json (model id, rate, hop, levels, codebook size, states).",
    )
    cmd.add_argument("model", metavar="EXPORT", help="an export (pipeline.export, or a shipped pretrained/ codec)")
    cmd.add_argument("outdir", metavar="OUTDIR", help="folder to write (default for --onnx: <export name>.onnx/)")
    cmd.add_argument("--int8", action="store_true", help="also write the decoders dynamically quantized to int8")
    cmd.set_defaults(run=_export_onnx)


def _export_onnx(args: argparse.Namespace) -> int:
    from codec.api import model_path
    from codec.formats.onnx import export_onnx

    try:  # the writer's extra (pip install 'telucodec[onnx]'): running the graphs needs only onnxruntime
        import onnx  # noqa: F401
    except ModuleNotFoundError:
        raise CliError("export-onnx needs the onnx package: pip install 'telucodec[onnx]'") from None
    model = load_export_file(model_path(args.model), "EXPORT")
    info = export_onnx(model, args.outdir, int8=args.int8)
    sizes = ", ".join(f"{name} ({(info.folder / name).stat().st_size / 1e6:.1f} MB)" for name in info.files.values())
    print(f"{info.folder}: {sizes}, onnx.json; model id {model.model_id[:16]}, opset {info.manifest['opset']}")
    return 0
