"""Many files in one `telucodec` call: which inputs go to which outputs, and running them with one model.

Starting Python and torch costs more than coding a short clip, so a folder of clips is coded by one process
that loads the model once and runs ``jobs`` files at a time on threads (torch releases the GIL in its
kernels; the caller shares the cores out between them as torch intra-op threads). A file that fails is reported on
stderr with its reason and skipped; the others finish, and the call's status says whether any failed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from codec.cli.common import UsageError
from codec.runtime.cpus import available_cpus


class BatchUsageError(UsageError):
    """The inputs and output given do not make a plan (status 2)."""


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    skip: str | None = None  # why the file is listed but not coded (a FIFO, a device: not a regular file)


def read_list(path: str) -> list[str]:
    """Paths listed one per line in ``path`` (``-`` for stdin); blank lines and ``#`` comments skipped."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BatchUsageError(f"--list {path}: {exc.strerror or exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def plan(inputs: Iterable[str], output: str, source_suffixes: tuple[str, ...], target_suffix: str) -> list[Job]:
    """One job per input file; a folder contributes every file under it whose suffix is in ``source_suffixes``
    (hidden paths skipped), mirrored under ``output`` with ``target_suffix``. Two inputs that would write the
    same output are refused before anything runs."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise BatchUsageError(f"{out}: several inputs need an output folder, and this is a file")
    jobs: list[Job] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in source_suffixes
                and not p.is_dir()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            jobs += [Job(p, out / p.relative_to(path).with_suffix(target_suffix), _not_regular(p)) for p in found]
        else:
            jobs.append(Job(path, out / (path.stem + target_suffix)))  # a missing file fails as a job
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.target in seen:
            raise BatchUsageError(f"{seen[job.target]} and {job.source} would both write {job.target}")
        seen[job.target] = job.source
    if not jobs:
        raise BatchUsageError(f"no input files (looked for {', '.join(source_suffixes)})")
    _check_no_target_is_a_source(jobs)
    return jobs


def _not_regular(path: Path) -> str | None:
    """Why a file found in a folder is skipped (a FIFO would block the batch, a device never ends), or None."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:  # a dangling link
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"not a regular file ({kind})"


def _check_no_target_is_a_source(jobs: list[Job]) -> None:
    """No job may write over any job's input (a target that is a source by name or through a link)."""
    sources: dict[tuple[int, int], Path] = {}
    for job in jobs:
        with contextlib.suppress(OSError):  # a missing input fails as its own job
            st = job.source.stat()
            sources[(st.st_dev, st.st_ino)] = job.source
    names = {os.path.abspath(job.source): job.source for job in jobs}
    for job in jobs:
        source = names.get(os.path.abspath(job.target))
        with contextlib.suppress(OSError):  # a target that does not exist yet is no source
            st = job.target.stat()
            source = source or sources.get((st.st_dev, st.st_ino))
        if source is not None:
            raise BatchUsageError(f"{job.target} is the input {source}: refusing to overwrite it (name another folder)")


def default_jobs(files: int) -> int:
    """One job per available core, no more than there are files."""
    return max(1, min(files, available_cpus()))


def run(
    jobs: list[Job],
    work: Callable[[Job], None],
    workers: int,
    failure_types: tuple[type[BaseException], ...],
    verb: str,
) -> int:
    """Run ``work`` on every job, ``workers`` at a time; returns the exit status (1 if any job failed).

    A job with a ``skip`` reason is listed (``skipped <file>: <reason>``) and not run. A job raising one of
    ``failure_types`` is reported (``error: <message>``) and counted; anything else
    (a bug, Ctrl-C, SIGTERM) stops the batch: jobs not started are cancelled, running ones finish (each
    writes atomically, so nothing is left half-written).
    """
    failed: list[Job] = []
    skipped = [job for job in jobs if job.skip is not None]
    for job in skipped:
        print(f"skipped {job.source}: {job.skip}", file=sys.stderr)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="telucodec")
    try:
        with tqdm(total=len(jobs) - len(skipped), unit="file", file=sys.stderr, disable=None, leave=False) as bar:
            pending: dict[Future[None], Job] = {pool.submit(work, job): job for job in jobs if job.skip is None}
            while pending:
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)  # wakes for Ctrl-C too
                for future in done:
                    job = pending.pop(future)
                    exc = future.exception()
                    if exc is not None and not isinstance(exc, failure_types):
                        raise exc
                    if exc is not None:
                        failed.append(job)
                        tqdm.write(f"error: {exc}", file=sys.stderr)
                    bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    ok = len(jobs) - len(failed) - len(skipped)
    print(
        f"{verb} {ok} of {len(jobs)} files"
        + (f"; {len(failed)} failed (listed above)" if failed else "")
        + (f"; {len(skipped)} skipped (listed above)" if skipped else "")
    )
    return 1 if failed else 0
