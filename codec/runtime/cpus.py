"""How many CPU cores this process may use (its affinity mask where the OS has one: a SLURM job or
`taskset` sees its share, not the machine's)."""

from __future__ import annotations

import os


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
