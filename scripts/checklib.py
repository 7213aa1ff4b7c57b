"""What the workflow checks (check_recovery, check_remote, check_multinode) share: a tally of named checks,
a fresh clone of HEAD with an override file merged into its params.yaml, and commands run with the
environment's tools first on PATH."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from pipeline.params import merge_params  # noqa: E402


def tool_env(**extra: str) -> dict[str, str]:
    """os.environ with this interpreter's folder (the venv: dvc, snakemake, python) first on PATH."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **extra)


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Exit status, stdout + stderr and wall seconds of ``cmd``."""
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, env=env or tool_env(), capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def clone_with_params(dest: Path, overrides: str | Path) -> dict:
    """``git clone`` HEAD into ``dest`` and merge ``overrides`` (relative to the repo) into its params.yaml, as
    Snakemake merges a --configfile; returns the merged params."""
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(dest)], check=True)
    params = merge_params(yaml.safe_load((dest / "params.yaml").read_text(encoding="utf-8")),
                          yaml.safe_load((REPO / overrides).read_text(encoding="utf-8")))
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    return params


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
