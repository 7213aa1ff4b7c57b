"""Stage `export`: the trained codec as one portable file for the `telucodec` CLI.

    python -m pipeline.export --model models/codec.safetensors --out models/telucodec.safetensors \
        --metrics reports/export.json

--out may be a folder: the export is then written as <folder>/telucodec.safetensors. --onnx DIR also writes its ONNX
graphs there (`telucodec export-onnx`'s, for `--backend onnx`; --onnx-int8 adds the int8 decoders).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from codec.formats.export import export_codec
from codec.formats.weights import WeightsError, load_codec
from codec.runtime.interrupts import exit_cleanly
from codec.runtime.io import write_json_atomic
from pipeline.params import load_params

EXPORT_NAME = "telucodec.safetensors"


@exit_cleanly("export")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="trained codec weights (safetensors with its config)")
    parser.add_argument("--out", required=True, help="export file, or a folder to hold telucodec.safetensors")
    parser.add_argument("--metrics", help="model id, size and expected entropy-coded bitrate (JSON)")
    parser.add_argument("--onnx", metavar="DIR", help="also write the export's ONNX graphs into this folder")
    parser.add_argument("--onnx-int8", action="store_true", help="with --onnx: the int8 decoders too")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_params(args.params)

    out = Path(args.out)
    if out.is_dir():
        out = out / EXPORT_NAME
    try:
        codec = load_codec(args.model)
    except WeightsError as exc:
        raise SystemExit(f"error: export: {exc}") from None
    info = export_codec(codec, out, params.export, {"source": Path(args.model).name})
    if args.metrics:
        write_json_atomic(args.metrics, info.metrics())
    if args.onnx:
        from codec.formats.export import load_export
        from codec.formats.onnx import export_onnx

        graphs = export_onnx(load_export(info.path), args.onnx, int8=args.onnx_int8)
        print(f"export: ONNX graphs in {graphs.folder} ({', '.join(graphs.files.values())})")
    print(
        f"export: {info.path} ({info.file_bytes / 1e6:.1f} MB, {info.num_parameters} parameters), model id "
        f"{info.model_id[:32]}; {info.nominal_kbps:g} kbit/s nominal, ~{info.expected_kbps:.2f} kbit/s "
        "entropy-coded at the training code distribution"
    )


if __name__ == "__main__":
    main()
