"""scripts/ship_pretrained.py: a model continued over several runs records every one of them."""

from __future__ import annotations

import subprocess

from scripts import ship_pretrained


def _provenance(steps: int, seconds: float | None, rebuild: str) -> dict:
    return {"model_id": f"id{steps}", "steps": steps, "train_seconds": seconds, "rebuild": rebuild}


def test_a_run_from_seeded_codebooks_is_its_own_chain():
    out = ship_pretrained.chain(_provenance(28550, 8356.0, "A"), None)
    assert (out["total_steps"], out["total_train_seconds"], out["rebuild"]) == (28550, 8356.0, "A")


def test_a_chain_of_three_runs_adds_steps_and_seconds_and_rebuilds_in_order():
    first = ship_pretrained.chain(_provenance(28550, 8356.0, "A"), None)
    second = ship_pretrained.chain(_provenance(8000, 3506.0, "B"), first)
    third = ship_pretrained.chain(_provenance(14000, 5800.0, "C"), second)
    assert third["steps"] == 14000 and third["total_steps"] == 50550
    assert third["total_train_seconds"] == 8356.0 + 3506.0 + 5800.0
    assert third["rebuild"] == "A; then B; then C"
    # A provenance written before the totals existed (the first shipped models') counts its own steps.
    assert ship_pretrained.chain(_provenance(10, 1.0, "D"), _provenance(5, 2.0, "E"))["total_steps"] == 15


def test_unknown_seconds_anywhere_leave_the_total_unknown():
    assert ship_pretrained.chain(_provenance(10, 1.0, "D"), _provenance(5, None, "E"))["total_train_seconds"] is None
    assert ship_pretrained.chain(_provenance(10, None, "D"), _provenance(5, 2.0, "E"))["total_train_seconds"] is None


def test_the_commit_of_a_tracked_export_and_none_otherwise(tmp_path):
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "empty")
    export = tmp_path / "model.safetensors"
    export.write_bytes(b"weights")
    assert ship_pretrained.tracked_commit(export, tmp_path) is None  # untracked
    git("add", "model.safetensors")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "ship")
    assert ship_pretrained.tracked_commit(export, tmp_path) == git("rev-parse", "HEAD")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "later")
    assert ship_pretrained.tracked_commit(export, tmp_path) == git("rev-parse", "HEAD~1")  # the one that wrote it
    export.write_bytes(b"other weights")
    assert ship_pretrained.tracked_commit(export, tmp_path) is None  # not what any commit holds
    assert ship_pretrained.tracked_commit(tmp_path.parent / "elsewhere.safetensors", tmp_path) is None
