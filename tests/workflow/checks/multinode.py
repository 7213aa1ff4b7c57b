#!/usr/bin/env python
"""Training across nodes, simulated on one machine: two node launchers, a c10d rendezvous, gloo on CPU.

    python -m tests.workflow.checks.multinode  # `make check-multinode` (a few minutes on 2 cores, tiny configuration)

In a fresh clone of HEAD with workflow/params-tiny.yaml merged into params.yaml, `dvc repro seed_codebooks`
makes the shards and seed; then `workflow/launch-train.sh` is started twice, as SLURM's `srun` would start it
on two nodes (TELUCODEC_NODES=2, TELUCODEC_RDZV_ENDPOINT=127.0.0.1:<port>, no GPU): each runs
`torchrun --nnodes 2 --nproc_per_node 1`, so rank 1 is local rank 0 of the second "node".
1. An uninterrupted run: every rank must end with the same weights (the trainer checks a digest across
   ranks and fails otherwise; rank 0 prints it), rank 0 alone writes checkpoints, weights and logs.
2. The same run killed (both launchers, SIGKILL) after its first checkpoint, then started again: it must
   resume and end byte-identical to the uninterrupted run (weights file and final checkpoint's codec state).
Prints steps/s; exit status 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.workflow.checks.checklib import Checks, clone_with_params, parse_args, tool_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(port: int, run_id: str) -> dict[str, str]:
    return tool_env(
        TELUCODEC_NODES="2",
        TELUCODEC_GPUS="0",
        TELUCODEC_RDZV_ENDPOINT=f"127.0.0.1:{port}",
        TELUCODEC_RDZV_ID=run_id,
        OMP_NUM_THREADS="1",
    )


def start_nodes(clone: Path, run: Path, port: int, run_id: str) -> list[subprocess.Popen]:
    """Both "nodes": the same command, as srun starts it on every node of an allocation."""
    args = [
        "workflow/launch-train.sh",
        "--shards",
        "data/shards",
        "--init",
        "models/seed.safetensors",
        "--checkpoints",
        str(run / "checkpoints"),
        "--out",
        str(run / "codec.safetensors"),
        "--live",
        str(run / "live"),
        "--timings",
        str(run / "timings.json"),
    ]
    run.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            args,
            cwd=clone,
            env=env_for(port, run_id),
            start_new_session=True,
            stdout=open(run / f"node{n}.log", "w"),
            stderr=subprocess.STDOUT,
        )
        for n in range(2)
    ]


def wait(procs: list[subprocess.Popen], timeout: float = 600) -> list[int]:
    deadline = time.monotonic() + timeout
    return [p.wait(timeout=max(1, deadline - time.monotonic())) for p in procs]


def main(argv: list[str] | None = None) -> int:
    args, work = parse_args(__doc__, "multinode", argv)
    check = Checks()
    clone = work / "clone"
    params = clone_with_params(clone, args.params)
    subprocess.run(["dvc", "repro", "seed_codebooks"], cwd=clone, env=tool_env(), check=True, capture_output=True)
    steps, every = params["train"]["steps"], params["train"]["checkpoint_every"]

    print(f"1. two nodes x one process, {steps} steps, uninterrupted", flush=True)
    a = work / "uninterrupted"
    start = time.monotonic()
    codes = wait(start_nodes(clone, a, free_port(), "a"))
    seconds = time.monotonic() - start
    log0 = (a / "node0.log").read_text()
    check(
        codes == [0, 0],
        f"both node launchers exit 0 ({codes}), {seconds:.0f} s, {steps / seconds:.2f} steps/s "
        "(start-up and rendezvous included)",
    )
    agreed = [line for line in log0.splitlines() if "ranks ended with the same weights" in line]
    check(bool(agreed), f"every rank ends with the same weights: {agreed[0] if agreed else 'not reported'}")
    timings = json.loads((a / "timings.json").read_text()) if (a / "timings.json").is_file() else {}
    print(f"     training steps alone: {timings.get('examples_per_second', 0):.1f} examples/s over both ranks")
    kept = [f"step-{s:08d}.pt" for s in range(every, steps + 1, every)][-params["train"]["keep_last"] :]
    written = sorted(p.name for p in (a / "checkpoints").iterdir())
    check(written == sorted([*kept, "best.pt"]), f"rank 0 alone wrote the checkpoints: {written}")

    print(f"2. the same run killed after its first checkpoint (step {every}), then resumed", flush=True)
    b = work / "killed"
    port = free_port()
    procs = start_nodes(clone, b, port, "b")
    first = b / "checkpoints" / f"step-{every:08d}.pt"
    deadline = time.monotonic() + 600
    while not first.is_file() and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the launcher, its torchrun and the trainer: a node lost
        except ProcessLookupError:
            pass
    wait(procs)
    killed_at = sorted(p.name for p in (b / "checkpoints").glob("step-*.pt"))
    check(
        first.is_file() and not (b / "codec.safetensors").exists(),
        f"killed mid-run (checkpoints then: {killed_at}, no weights file yet)",
    )
    codes = wait(start_nodes(clone, b, free_port(), "b-again"))
    log0 = (b / "node0.log").read_text()
    check(codes == [0, 0] and "resumed from step" in log0, f"restarted, resumed ({codes})")
    same = (b / "codec.safetensors").read_bytes() == (a / "codec.safetensors").read_bytes()
    check(same, "the resumed run's weights file is byte-identical to the uninterrupted run's")

    return check.finish(work, remove=not args.workdir)


if __name__ == "__main__":
    sys.exit(main())
