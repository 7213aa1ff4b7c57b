"""What the workflow checks (rebuild, recovery, remote, multinode, slurm-local.sh in this folder)
share: a tally of named checks, a fresh clone of HEAD with an override file merged into its params.yaml,
output hashes, and commands run with the environment's tools first on PATH."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pipeline.params import merge_params

REPO = Path(__file__).resolve().parents[3]


def tool_env(**extra: str) -> dict[str, str]:
    """os.environ with this interpreter's folder (the venv: dvc, snakemake, python) first on PATH."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **extra)


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Exit status, stdout + stderr and wall seconds of ``cmd``."""
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, env=env or tool_env(), capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


# Snakemake marks each directory() output with this empty file; it is no pipeline output.
ENGINE_MARKERS = {".snakemake_timestamp"}


def file_hashes(root: Path, rel: str) -> dict[str, str]:
    """sha256 of the file ``root/rel``, or of every file under the folder ``root/rel``, by relative path."""
    path = root / rel
    files = (
        [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p.name not in ENGINE_MARKERS)
    )
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def merge_into_params(root: Path, overrides: str | Path) -> dict:
    """Merge the override file ``overrides`` (relative to the repo, or absolute) into ``root/params.yaml`` as
    Snakemake merges a --configfile (nested keys merge, lists are replaced); returns the merged params."""
    params = merge_params(
        yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")),
        yaml.safe_load((REPO / overrides).read_text(encoding="utf-8")),
    )
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    return params


def clone_with_params(dest: Path, overrides: str | Path) -> dict:
    """``git clone`` HEAD into ``dest`` and :func:`merge_into_params`; returns the merged params."""
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(dest)], check=True)
    return merge_into_params(dest, overrides)


def parse_args(doc: str, name: str, argv: list[str] | None) -> tuple[argparse.Namespace, Path]:
    """The options every check takes (--params, --workdir) and the work folder (created; a temp one by default)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="workflow/params-tiny.yaml", help="override file merged over params.yaml")
    ap.add_argument("--workdir", type=Path, help="where the clones go (default: a new temp folder, removed)")
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix=f"telucodec-{name}-"))
    work.mkdir(parents=True, exist_ok=True)
    return args, work


class Checks:
    """Prints each check as it is made; :meth:`finish` gives the exit status and keeps the work folder on failure."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def __call__(self, ok: bool, what: str) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failures.append(what)

    def finish(self, work: Path, remove: bool) -> int:
        print(f"{len(self.failures)} check(s) failed" if self.failures else "every check holds")
        if self.failures:
            print(f"kept in {work}")
        elif remove:
            shutil.rmtree(work, ignore_errors=True)
        return 1 if self.failures else 0
