"""The workflow checks as tests: each builds the pipeline in fresh clones of HEAD (commit what you want checked)
and takes minutes, so they carry the ``check`` mark, which ``make test`` leaves out and ``make check-*`` selects:

    make check-rebuild     two `dvc repro` builds give byte-identical outputs
    make check-parity      `dvc repro` and `snakemake` builds give byte-identical outputs
    make check-recovery    a params typo costs no retrain; overrides re-run stages across engines
    make check-remote      push to a DVC remote, pull in fresh clones: nothing rebuilt
    make check-multinode   two node launchers and a c10d rendezvous on this machine: same weights, exact resume
    make test-slurm[-multinode]  a one- (two-) node SLURM cluster on this machine runs the workflow

Each prints what it checks as it goes (run with ``-s`` to see it); the modules beside this file also run alone
(``python -m tests.workflow.checks.rebuild --help``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.workflow.checks import multinode, rebuild, recovery, remote

pytestmark = pytest.mark.check
HERE = Path(__file__).resolve().parent


def test_two_dvc_builds_are_byte_identical():
    assert rebuild.main(["--engines", "dvc", "dvc"]) == 0


def test_dvc_and_snakemake_builds_are_byte_identical():
    assert rebuild.main(["--engines", "dvc", "snakemake"]) == 0


def test_a_params_typo_costs_no_retrain_and_overrides_rerun_across_engines():
    assert recovery.main([]) == 0


def test_a_dvc_remote_round_trip_rebuilds_nothing():
    assert remote.main([]) == 0


def test_two_simulated_nodes_end_with_the_same_weights_and_resume_exactly():
    assert multinode.main([]) == 0


@pytest.mark.parametrize("nodes", [1, 2], ids=["one-node", "two-nodes"])
def test_a_local_slurm_cluster_runs_the_workflow(nodes):
    if os.geteuid() != 0 or not (shutil.which("slurmctld") or shutil.which("apt-get")):
        pytest.skip("a local SLURM cluster needs root and slurm-wlm (or apt-get to install it)")
    done = subprocess.run([str(HERE / "slurm-local.sh")], env={**os.environ, "NODES": str(nodes)})
    assert done.returncode == 0
