"""Stage `synth`: render the embedded eSpeak NG Telugu corpus (ULCA asr-corpus layout).

    python -m pipeline.synth --out data/corpus [--params params.yaml]

The sentence file and the speakers come from the ``synth`` section of the params file.
"""

from __future__ import annotations

import argparse
import sys
import time

from codec.data.espeak import EspeakError
from codec.data.synth import load_sentences, synthesize_corpus
from codec.runtime.interrupts import exit_cleanly
from pipeline.params import DEFAULT_PATH, load_params


@exit_cleanly("synth")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="corpus folder to (re)create")
    parser.add_argument("--params", default=str(DEFAULT_PATH), help="params file (default: params.yaml)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    start = time.perf_counter()
    try:
        sentences = load_sentences(params.synth.sentences)
        summary = synthesize_corpus(params.synth, sentences, args.out, params.seed, workers=args.workers)
    except (ValueError, EspeakError, RuntimeError) as exc:
        print(f"error: synth: {exc}", file=sys.stderr)
        return 1
    print(
        f"synth: {summary.utterances} utterances, {summary.speakers} speakers, "
        f"{summary.minutes:.1f} min at {summary.sample_rate} Hz -> {summary.out_dir} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
