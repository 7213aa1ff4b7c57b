"""Stage `train`: train the codec from its seeded initial weights; resumes after a crash or kill.

    python -m pipeline.train --shards data/shards --init models/seed.safetensors \
        --checkpoints models/checkpoints --out models/codec.safetensors --live reports/train

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m pipeline.train ...`` (only rank 0 writes).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from codec.interrupts import exit_cleanly
from codec.train import CheckpointError, TrainingDiverged, WeightsError, train
from codec.io import write_json_atomic
from codec.train.loop import timings_dict
from codec.train.distributed import launched_rank
from pipeline.params import load_params


@exit_cleanly("train")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", required=True, help="prepared shard folder (train and valid splits)")
    parser.add_argument("--init", required=True, help="initial weights + config (safetensors, seed_codebooks)")
    parser.add_argument("--checkpoints", required=True, help="checkpoint folder (persistent; resumed from)")
    parser.add_argument("--out", required=True, help="final weights + config (safetensors)")
    parser.add_argument("--live", required=True, help="dvclive folder: metrics, plots and summary.json")
    parser.add_argument("--timings", default="reports/timings/train.json",
                        help="examples/s and wall time (not a DVC output: they differ from run to run)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_params(args.params)

    # Which checkpoints are resumed (a finished run's included, then it is only replayed) is decided by the
    # fingerprint they carry: see codec.train.loop._Trainer._pick_resume_checkpoint.
    live = contextlib.nullcontext()
    if launched_rank() == 0:
        from dvclive import Live

        # Always a fresh log: a resumed (crashed) run replays its history from the checkpoint. Never touch dvc.yaml
        # nor save a DVC experiment: the stage may run under Snakemake.
        live = Live(dir=args.live, resume=False, save_dvc_exp=False, dvcyaml=None)
    try:
        with live as logger:
            result = train(params.train, params.loss, shards=args.shards, init=args.init,
                           checkpoints=args.checkpoints, seed=params.seed, out=args.out, logger=logger,
                           summary_path=Path(args.live) / "summary.json")
    except (TrainingDiverged, CheckpointError, WeightsError, ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"error: train: {exc}") from None
    if launched_rank() == 0:
        write_json_atomic(args.timings, timings_dict(result))
        best = "none" if result.best_value is None else f"{result.best_value:.3f} at step {result.best_step}"
        if result.resumed_from is not None:
            done = "nothing left to train" if result.resumed_from == result.step else "trained the rest"
            print(f"train: resumed from the checkpoint of step {result.resumed_from} of this very run "
                  f"(same parameters, data and code): {done}")
        print(f"train: {result.step} steps ({result.bad_steps} skipped) in {result.seconds:.0f} s, "
              f"{result.examples_per_second:.1f} examples/s; valid SNR {result.valid['snr_db']:+.2f} dB, "
              f"best {params.train.best_metric} {best} -> {result.output}")


if __name__ == "__main__":
    main()
