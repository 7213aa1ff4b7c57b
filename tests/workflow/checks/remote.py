#!/usr/bin/env python
"""A team shares data, models and experiments through a DVC remote: the round trip, on the real DVC.

    python -m tests.workflow.checks.remote     # `make check-remote` (a few minutes on 2 cores, tiny configuration)

Everything is local folders standing in for shared places: a bare git repository (the team's git server) and
a folder DVC remote (a shared file system; S3, GCS, Azure or SSH work the same with their `dvc[...]` extra).
1. "Alice" clones HEAD, merges workflow/params-tiny.yaml into params.yaml, adds the remote, `dvc repro`s,
   commits and pushes git, then `dvc push --run-cache` (outputs and run history).
2. "Bob" clones the git server: `dvc pull --allow-missing` (the checkpoints are `push: false`, see the README)
   must fetch every pushed output; then `dvc status` must be clean but for the checkpoints, and
   `dvc repro --allow-missing` must run no stage.
3. Alice runs an experiment (`dvc exp run -S train.steps=<2 more>`) and `dvc exp push`es it; Bob `dvc exp pull`s
   it and checks it out on a branch (`dvc exp branch`, `dvc checkout --allow-missing`): his outputs must be
   Alice's, byte for byte, with no stage run.
4. "Carol" clones, `dvc pull --run-cache`, sets the experiment's parameter by hand and `dvc repro`s: export must
   come back from the run cache ("is cached - skipping run"), not be recomputed. DVC keeps no run cache for
   train, whose checkpoints are persistent: it trains again, to the same weights on CPU; and evaluate runs
   again, because `dvc push --run-cache` does not push the run cache's copies of its uncached outputs (the
   headline scores and plot data, which live in git).
Prints each step's time; exit status 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from tests.workflow.checks import checklib

GIT_ENV = checklib.tool_env(
    GIT_AUTHOR_NAME="TeluCodec check",
    GIT_AUTHOR_EMAIL="check@localhost",
    GIT_COMMITTER_NAME="TeluCodec check",
    GIT_COMMITTER_EMAIL="check@localhost",
)

PUSHED = [
    "data/corpus",
    "data/shards",
    "models/seed.safetensors",
    "models/codec.safetensors",
    "models/telucodec.safetensors",
    "reports/eval",
    "reports/index.html",
    "reports/data/stats.json",
    "reports/seed_codebooks.json",
    "reports/export.json",
    "reports/metrics.json",
]


def run(cmd: list[str], cwd: Path) -> tuple[str, float]:
    """Output and seconds of ``cmd``; RuntimeError with its output when it fails."""
    code, log, seconds = checklib.run(cmd, cwd, GIT_ENV)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} in {cwd} failed ({code}):\n{log}")
    return log, seconds


def same_outputs(a: Path, b: Path) -> list[str]:
    """The pushed outputs present in ``b`` with the same bytes as in ``a``."""
    return [
        rel for rel in PUSHED if (b / rel).exists() and checklib.file_hashes(b, rel) == checklib.file_hashes(a, rel)
    ]


def main(argv: list[str] | None = None) -> int:
    args, work = checklib.parse_args(__doc__, "remote", argv)
    check = checklib.Checks()

    server, remote, alice, bob, carol = (work / n for n in ("server.git", "dvc-remote", "alice", "bob", "carol"))
    try:
        print("1. Alice builds and pushes", flush=True)
        run(["git", "init", "--bare", "--quiet", str(server)], work)
        params = checklib.clone_with_params(alice, args.params)
        run(["git", "remote", "set-url", "origin", str(server)], alice)
        run(["dvc", "remote", "add", "--default", "shared", str(remote)], alice)
        _, built = run(["dvc", "repro"], alice)
        run(["git", "add", "-A"], alice)
        run(["git", "commit", "--quiet", "-m", "tiny build, shared remote"], alice)
        run(["git", "push", "--quiet", "origin", "HEAD:main"], alice)
        log, pushed = run(["dvc", "push", "--run-cache"], alice)
        print(f"     dvc repro {built:.0f} s; dvc push --run-cache {pushed:.1f} s ({log.strip().splitlines()[-1]})")
        check(any((alice / "models" / "checkpoints").glob("step-*.pt")), "Alice has her checkpoints locally")

        print("2. Bob pulls: nothing to rebuild", flush=True)
        run(["git", "clone", "--quiet", "--branch", "main", str(server), str(bob)], work)
        _, pulled = run(["dvc", "pull", "--allow-missing"], bob)
        print(f"     dvc pull --allow-missing {pulled:.1f} s")
        same = same_outputs(alice, bob)
        check(same == PUSHED, f"Bob has every pushed output, byte for byte ({len(same)}/{len(PUSHED)})")
        check(
            not (bob / "models" / "checkpoints").exists() or not any((bob / "models" / "checkpoints").iterdir()),
            "the checkpoints stayed with Alice (push: false)",
        )
        log, seconds = run(["dvc", "repro", "--allow-missing"], bob)
        check("Running stage" not in log, f"dvc repro --allow-missing runs no stage ({seconds:.1f} s)")

        print("3. an experiment, pushed and pulled", flush=True)
        steps = params["train"]["steps"] + 2
        log, seconds = run(["dvc", "exp", "run", "-n", "more-steps", "-S", f"train.steps={steps}"], alice)
        print(f"     Alice: dvc exp run {seconds:.0f} s")
        _, seconds = run(["dvc", "exp", "push", "origin", "more-steps"], alice)
        print(f"     Alice: dvc exp push {seconds:.1f} s")
        _, seconds = run(["dvc", "exp", "pull", "origin", "more-steps"], bob)
        print(f"     Bob: dvc exp pull {seconds:.1f} s")
        log, _ = run(["dvc", "exp", "show", "--no-pager", "--csv"], bob)
        check("more-steps" in log, "Bob's dvc exp show lists Alice's experiment")
        # `dvc exp apply` would check the checkpoints out too, which were never pushed: a branch, then a checkout
        # that allows them to be missing.
        run(["dvc", "exp", "branch", "more-steps", "more-steps"], bob)
        run(["git", "checkout", "--quiet", "more-steps"], bob)
        run(["dvc", "checkout", "--allow-missing"], bob)
        same = same_outputs(alice, bob)
        check(same == PUSHED, f"on its branch, Bob's outputs are Alice's experiment's ({len(same)}/{len(PUSHED)})")
        log, _ = run(["dvc", "repro", "--allow-missing"], bob)
        check("Running stage" not in log, "and dvc repro --allow-missing runs no stage")

        print("4. Carol: the run cache through the remote", flush=True)
        _, seconds = run(["dvc", "push", "--run-cache"], alice)  # the experiment's runs too
        print(f"     Alice: dvc push --run-cache {seconds:.1f} s")
        run(["git", "clone", "--quiet", "--branch", "main", str(server), str(carol)], work)
        _, seconds = run(["dvc", "pull", "--run-cache", "--allow-missing"], carol)
        print(f"     Carol: dvc pull --run-cache {seconds:.1f} s")
        mine = yaml.safe_load((carol / "params.yaml").read_text(encoding="utf-8"))
        mine["train"]["steps"] = steps
        (carol / "params.yaml").write_text(yaml.safe_dump(mine, sort_keys=False, allow_unicode=True))
        log, seconds = run(["dvc", "repro", "--pull", "--allow-missing"], carol)
        for line in log.splitlines():
            if line.startswith(("Stage '", "Running stage")):
                print(f"     Carol: {line}")
        # DVC keeps no run cache for a stage with persistent outputs (dvc/stage/cache.py): train runs again (its
        # checkpoints stayed with Alice) and gives the same weights on CPU; export, whose outputs are all cached,
        # comes back from the run cache. evaluate runs again: its headline scores and plot data are in git
        # (cache: false), and `dvc push --run-cache` does not push the run cache's copies of uncached outputs.
        check(
            "Stage 'export' is cached - skipping run" in log and "Running stage 'export'" not in log,
            f"export comes back from the run cache instead of running ({seconds:.1f} s for the repro)",
        )
        same = same_outputs(alice, carol)
        check(same == PUSHED, f"Carol's outputs are the experiment's, byte for byte ({len(same)}/{len(PUSHED)})")
    except RuntimeError as exc:
        print(f"error: check-remote: {exc}", file=sys.stderr)
        check(False, "every command ran")
    return check.finish(work, remove=not args.workdir)


if __name__ == "__main__":
    sys.exit(main())
