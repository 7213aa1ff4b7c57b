#!/usr/bin/env python
"""Nothing lost: a mistyped parameter, and parameter changes across engines, on the real DVC and Snakemake.

    python -m tests.workflow.checks.recovery    # `make check-recovery` (a few minutes on 2 cores, tiny config)

In a fresh clone of HEAD with workflow/params-tiny.yaml merged into params.yaml:
1. `dvc repro` builds everything; every output is hashed.
2. `snakemake -n --configfile over.yaml` (train.steps + 2) must plan train, export and evaluate only, and
   plain `snakemake -n` nothing: Snakemake sees parameter changes on outputs DVC built.
3. `train.stpes` is added to params.yaml: `dvc repro` must fail, naming the key (DVC has deleted the
   train stage's outputs by then).
4. The typo is fixed: `dvc repro` must end with every output byte-identical to step 1, replaying the
   finished checkpoint instead of training (its time is printed), and `dvc status` clean.
5. `snakemake --configfile over.yaml` builds; `dvc status` must then report train's outputs changed and
   `dvc repro` must bring back every output of step 1, byte for byte.

Exit status: 0 when every check holds, 1 otherwise.
"""

import re
import sys

import yaml

from codec.runtime.cpus import available_cpus
from tests.workflow.checks import rebuild
from tests.workflow.checks.checklib import REPO, Checks, file_hashes, parse_args, run


def planned_jobs(log: str) -> set[str]:
    if "Nothing to be done" in log:
        return set()
    table = log.split("Job stats:")[1].split("total")[0]
    return set(re.findall(r"^(\w+)\s+\d+$", table, flags=re.M)) - {"job", "all"}


def main(argv: list[str] | None = None) -> int:
    args, workdir = parse_args(__doc__, "recovery", argv)
    check = Checks()

    print("1. dvc repro (tiny configuration)", flush=True)
    first = rebuild.build("dvc", workdir / "clone", (REPO / args.params).resolve(), available_cpus(), sys.stdout)
    root = first.root
    config = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    outputs = [
        p
        for stage in rebuild.dvc_stages.read_dvc_stages(root / "dvc.yaml", config).values()
        for p in stage.out_paths
        if p != "models/checkpoints"
    ]
    built = {rel: file_hashes(root, rel) for rel in outputs}

    def same_as_built(step: str) -> None:
        differ = [rel for rel in outputs if file_hashes(root, rel) != built[rel]]
        check(
            not differ,
            f"{step}: every output byte-identical to the first build ({len(outputs)} outs)"
            + (f"; differ: {differ}" if differ else ""),
        )

    print("2. Snakemake overrides after the DVC build", flush=True)
    over = workdir / "over.yaml"  # (before the typo: the replay below rewrites models/codec.safetensors with the
    # same bytes but a new time, and Snakemake, which compares times, would then re-run export and evaluate)
    over.write_text(yaml.safe_dump({"train": {"steps": config["train"]["steps"] + 2}}))
    rc, log, _ = run(["snakemake", "-n", "--cores", "1", "--configfile", str(over)], root)
    jobs = planned_jobs(log) if rc == 0 else {"(failed)"}
    check(jobs == {"train", "export", "evaluate"}, f"snakemake -n --configfile over.yaml plans {sorted(jobs)}")
    rc, log, _ = run(["snakemake", "-n", "--cores", "1"], root)
    jobs = planned_jobs(log) if rc == 0 else {"(failed)"}
    check(jobs == set(), f"snakemake -n with params.yaml plans {sorted(jobs) or 'nothing'}")

    good = (root / "params.yaml").read_text(encoding="utf-8")
    print("3. a typo: train.stpes", flush=True)
    typo = dict(config, train={**config["train"], "stpes": config["train"]["steps"]})
    (root / "params.yaml").write_text(yaml.safe_dump(typo, sort_keys=False, allow_unicode=True), encoding="utf-8")
    rc, log, seconds = run(["dvc", "repro"], root)
    check(rc != 0 and "unknown key(s) ['stpes']" in log, f"dvc repro fails in {seconds:.0f} s naming the key")
    gone = [rel for rel in outputs if not (root / rel).exists()]
    print(f"     outputs DVC deleted before the command failed: {gone}")

    print("4. the typo fixed", flush=True)
    (root / "params.yaml").write_text(good, encoding="utf-8")
    rc, log, seconds = run(["dvc", "repro"], root)
    check(rc == 0, f"dvc repro succeeds ({seconds:.0f} s; the first build took {first.seconds:.0f} s)")
    check(
        "nothing left to train" in log and "starting afresh" not in log,
        "train replays its finished checkpoint: nothing trained, nothing set aside",
    )
    same_as_built("after the fix")
    rc, log, _ = run(["dvc", "status"], root)
    check(rc == 0 and "up to date" in log, "dvc status: up to date")

    print("5. a Snakemake build with the override, then dvc repro", flush=True)
    rc, log, seconds = run(["snakemake", "--cores", str(available_cpus()), "--configfile", str(over)], root)
    check(rc == 0, f"snakemake --configfile over.yaml builds ({seconds:.0f} s)")
    rc, log, _ = run(["dvc", "status"], root)
    check("train:" in log and "modified:" in log, "dvc status reports the train stage's outputs modified")
    rc, log, seconds = run(["dvc", "repro"], root)
    check(rc == 0, f"dvc repro rebuilds with params.yaml ({seconds:.0f} s)")
    same_as_built("after the Snakemake detour")

    return check.finish(workdir, remove=not args.workdir)


if __name__ == "__main__":
    sys.exit(main())
