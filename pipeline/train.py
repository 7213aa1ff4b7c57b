"""Stage `train`: train the codec from its seeded initial weights; resumes after a crash or kill.

    python -m pipeline.train --shards data/shards --init models/seed.safetensors \
        --checkpoints models/checkpoints --out models/codec.safetensors --live reports/train

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m pipeline.train ...`` (only rank 0 writes).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from codec.formats.weights import WeightsError
from codec.runtime.interrupts import exit_cleanly
from codec.runtime.io import write_json_atomic
from codec.train.checkpoint import CheckpointError
from codec.train.distributed import launched_rank
from codec.train.loop import MetricsLogger, TrainingDiverged, timings_dict, train
from pipeline.params import load_params


@exit_cleanly("train")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", required=True, help="prepared shard folder (train and valid splits)")
    parser.add_argument("--init", required=True, help="initial weights + config (safetensors, seed_codebooks)")
    parser.add_argument("--checkpoints", required=True, help="checkpoint folder (persistent; resumed from)")
    parser.add_argument("--out", required=True, help="final weights + config (safetensors)")
    parser.add_argument("--live", required=True, help="dvclive folder: metrics, plots and summary.json")
    parser.add_argument(
        "--timings",
        default="reports/timings/train.json",
        help="speed and the run's seconds to each checkpoint (not a DVC output)",
    )
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_params(args.params)

    # What is resumed (a finished run is replayed): codec.train.resume
    live: contextlib.AbstractContextManager[MetricsLogger | None] = contextlib.nullcontext()
    if launched_rank() == 0:
        from dvclive import Live

        # A fresh log (a resumed run replays its history); no dvc.yaml nor experiment: Snakemake runs this too.
        live = Live(dir=args.live, resume=False, save_dvc_exp=False, dvcyaml=None)
    try:
        with live as logger:
            result = train(
                params.train,
                params.loss,
                shards=args.shards,
                init=args.init,
                checkpoints=args.checkpoints,
                seed=params.seed,
                out=args.out,
                logger=logger,
                summary_path=Path(args.live) / "summary.json",
                time_ledger=args.timings,  # at each checkpoint; a resumed run adds its seconds to the last one's
            )
    except (TrainingDiverged, CheckpointError, WeightsError, ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"error: train: {exc}") from None
    if launched_rank() == 0:
        write_json_atomic(args.timings, timings_dict(result))
        if result.ranks > 1:
            print(f"train: all {result.ranks} ranks ended with the same weights (sha256 {result.weights_digest[:16]})")
        if result.resumed_from is not None:
            print(
                f"train: resumed from step {result.resumed_from} of this very run (same parameters, data and "
                f"code): {'nothing left to train' if result.resumed_from == result.step else 'trained the rest'}"
            )
        print(
            f"train: {result.step} steps ({result.bad_steps} skipped) in {result.seconds:.0f} s, "
            f"{result.examples_per_second:.1f} examples/s; valid SNR {result.valid['snr_db']:+.2f} dB, "
            f"best {params.train.best_metric} {result.best_value or float('nan'):.3f} at step {result.best_step} "
            f"-> {result.output}"
        )


if __name__ == "__main__":
    main()
