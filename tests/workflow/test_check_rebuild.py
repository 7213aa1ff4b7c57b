"""tests/workflow/checks/rebuild.py: override merging and the build comparison (the builds themselves are
`make check-rebuild` and `make check-parity`, too slow for `make test`)."""

import copy
import json
from pathlib import Path

import yaml
from snakemake.utils import update_config

from pipeline.params import merge_params
from tests.workflow.checks import rebuild as cr

ROOT = Path(__file__).resolve().parents[2]


def test_merge_is_snakemakes_configfile_merge():
    """The merge check_rebuild, the recipe benchmark and recipe_overrides apply (pipeline.params)."""
    base = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    overrides = yaml.safe_load((ROOT / "workflow" / "params-tiny.yaml").read_text(encoding="utf-8"))
    overrides["train"]["optimizer"] = {"betas": [0.5, 0.6]}  # a nested list: replaced, not merged
    overrides["new_section"] = {"x": 1}
    expected = copy.deepcopy(base)
    update_config(expected, overrides)
    assert cr.merge_params is merge_params
    merged = merge_params(base, overrides)
    assert merged == expected
    assert merged["train"]["optimizer"]["lr"] == base["train"]["optimizer"]["lr"]
    assert merged["train"]["optimizer"]["betas"] == [0.5, 0.6]
    assert base == yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")), "base left untouched"


def make_build(root: Path, engine: str, metrics: dict, weights: bytes, lock_md5: str) -> "cr.Build":
    (root / "reports" / "plots").mkdir(parents=True)
    (root / "reports" / "metrics.json").write_text(json.dumps(metrics))
    (root / "reports" / "plots" / "a.csv").write_text("step,x\n1,2\n")
    (root / "model.bin").write_bytes(weights)
    (root / "dvc.lock").write_text(
        yaml.safe_dump(
            {
                "schema": "2.0",
                "stages": {"train": {"cmd": "x", "outs": [{"path": "model.bin", "md5": lock_md5, "size": 3}]}},
            }
        )
    )
    return cr.Build(engine, root, 1.0)


OUTS = ["model.bin", "reports/metrics.json", "reports/plots"]


def test_identical_builds_have_no_difference(tmp_path):
    metrics = {"snr": 1.5, "speed": {"rtf": 3.0}}
    a = make_build(tmp_path / "a", "dvc", metrics, b"abc", "m1")
    b = make_build(tmp_path / "b", "dvc", metrics, b"abc", "m1")
    assert cr.compare(a, b, OUTS) == []


def test_differences_are_listed_down_to_json_fields(tmp_path):
    a = make_build(tmp_path / "a", "dvc", {"snr": 1.5, "speed": {"rtf": [3.0, 4.0]}}, b"abc", "m1")
    b = make_build(tmp_path / "b", "dvc", {"snr": 1.5, "speed": {"rtf": [3.0, 4.5]}}, b"abd", "m2")
    (b.root / "reports" / "plots" / "extra.csv").write_text("")
    assert cr.compare(a, b, OUTS) == [
        "model.bin: content differs",
        "reports/metrics.json: content differs",
        "    speed.rtf[1]: 4.0 -> 4.5",
        "reports/plots/extra.csv: only in the second build",
        "dvc.lock train:model.bin: m1 -> m2",
    ]


def test_snakemake_builds_have_no_lock_to_compare(tmp_path):
    a = make_build(tmp_path / "a", "dvc", {"snr": 1.5}, b"abc", "m1")
    b = make_build(tmp_path / "b", "snakemake", {"snr": 1.5}, b"abc", "other")
    assert cr.compare(a, b, OUTS) == []


def write_safetensors(path: Path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)


def test_safetensors_that_differ_only_in_header_order(tmp_path):
    tensor = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    write_safetensors(tmp_path / "a.safetensors", {"__metadata__": {"x": "1", "y": "2"}, "w": tensor}, b"\0\0\x80?")
    write_safetensors(tmp_path / "b.safetensors", {"__metadata__": {"y": "2", "x": "1"}, "w": tensor}, b"\0\0\x80?")
    write_safetensors(tmp_path / "c.safetensors", {"__metadata__": {"x": "1", "y": "3"}, "w": tensor}, b"\0\0\0@")
    (same,) = cr.explain(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    assert "only the header's key order differs" in same and "['x', 'y'] vs ['y', 'x']" in same
    assert cr.explain(tmp_path / "a.safetensors", tmp_path / "c.safetensors") == [
        "metadata keys differ: ['y']",
        "1 tensors differ, e.g. ['w']",
    ]


def test_torch_save_archives_named_after_their_temp_file(tmp_path):
    import torch

    for name in ("a", "b"):
        torch.save({"w": torch.arange(3)}, tmp_path / f".{name}.tmp")
    (line,) = cr.explain(tmp_path / ".a.tmp", tmp_path / ".b.tmp")
    assert line == "archive folder '.a' vs '.b'; the records themselves are identical"
