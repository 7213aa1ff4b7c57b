#!/usr/bin/env python
"""Exact rebuilds: build the pipeline in fresh clones and compare every output byte for byte.

    python -m tests.workflow.checks.rebuild                          # two `dvc repro` builds (`make check-rebuild`)
    python -m tests.workflow.checks.rebuild --engines dvc snakemake  # DVC against Snakemake (`make check-parity`)
    python -m tests.workflow.checks.rebuild --params ''              # the full default pipeline (slow)

Each build is a `git clone` of HEAD (commit what you want checked) with the override file
(default: the tiny workflow/params-tiny.yaml) merged over params.yaml the way Snakemake merges
`--configfile`s (nested keys merge, lists are replaced): DVC builds run `dvc repro` on the merged
params.yaml, Snakemake builds `snakemake --cores N --configfile <overrides>`. Then, for every out,
metric and plot of dvc.yaml (checkpoints included), the files of each build are hashed and compared
with the first build; for DVC builds the output hashes dvc.lock records are compared too. A file that
differs is explained where the format allows: JSON field by field (timings that leak into metrics),
safetensors by header order, metadata and tensors, torch.save archives by record names and contents.

Exit status: 0 when every output is identical, 1 when something differs, 2 when a build fails.
"""

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from codec.runtime.cpus import available_cpus
from pipeline.params import merge_params
from tests.workflow.checks.checklib import REPO, file_hashes, merge_into_params, tool_env
from workflow.lib import dvc_stages


class Build(NamedTuple):
    engine: str  # dvc | snakemake
    root: Path
    seconds: float


def lock_hashes(lock: Path) -> dict[str, str]:
    """The hash dvc.lock records for every out of every stage, ``stage:path`` -> md5."""
    data = yaml.safe_load(lock.read_text(encoding="utf-8"))
    return {
        f"{stage}:{out['path']}": out.get("md5") or out.get("hash", "")
        for stage, spec in data.get("stages", {}).items()
        for out in spec.get("outs", [])
    }


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested JSON as ``{"a.b[2].c": leaf}``."""
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}.{key}" if prefix else key).items()
        }
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def json_field_diffs(a: Path, b: Path) -> list[str]:
    """The fields in which two JSON files differ, ``key: a -> b``."""
    fa, fb = (flatten(json.loads(p.read_text(encoding="utf-8"))) for p in (a, b))
    return [
        f"{key}: {fa.get(key, '<absent>')!r} -> {fb.get(key, '<absent>')!r}"
        for key in sorted(set(fa) | set(fb))
        if fa.get(key) != fb.get(key)
    ]


def safetensors_diffs(a: Path, b: Path) -> list[str]:
    """What differs between two safetensors files: header layout, metadata or tensor bytes."""
    parts = []
    for path in (a, b):
        raw = path.read_bytes()
        (size,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + size])
        parts.append((header, raw[8 + size :], list(header.get("__metadata__", {}))))
    (ha, da, ka), (hb, db, kb) = parts
    if ha == hb and da == db:
        return [f"same tensors and metadata; only the header's key order differs (metadata {ka} vs {kb})"]
    meta = [
        k
        for k in sorted(set(ha.get("__metadata__", {})) | set(hb.get("__metadata__", {})))
        if ha.get("__metadata__", {}).get(k) != hb.get("__metadata__", {}).get(k)
    ]
    tensors = [
        k
        for k in sorted(set(ha) | set(hb) - {"__metadata__"})
        if k != "__metadata__"
        and (
            ha.get(k) is None
            or hb.get(k) is None
            or ha[k]["dtype"] != hb[k]["dtype"]
            or da[slice(*ha[k]["data_offsets"])] != db[slice(*hb[k]["data_offsets"])]
        )
    ]
    return [f"metadata keys differ: {meta}"] * bool(meta) + [f"{len(tensors)} tensors differ, e.g. {tensors[:3]}"]


def zip_diffs(a: Path, b: Path) -> list[str]:
    """What differs between two zip archives (torch.save files): record names or record contents."""
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
        na, nb = za.namelist(), zb.namelist()

        def strip(names: list[str]) -> list[str]:
            return [n.split("/", 1)[-1] for n in names]  # torch.save's top folder

        if na != nb and strip(na) == strip(nb):
            same = all(za.read(x) == zb.read(y) for x, y in zip(na, nb))
            return [
                f"archive folder {na[0].split('/')[0]!r} vs {nb[0].split('/')[0]!r}"
                + ("; the records themselves are identical" if same else "; records differ too")
            ]
        return [f"record {x} differs" for x, y in zip(na, nb) if x != y or za.read(x) != zb.read(y)][:5]


def explain(a: Path, b: Path) -> list[str]:
    """Why two files differ, for the formats the pipeline writes; [] when there is nothing to add."""
    try:
        if a.suffix == ".json":
            return json_field_diffs(a, b)
        if a.suffix == ".safetensors":
            return safetensors_diffs(a, b)
        if zipfile.is_zipfile(a) and zipfile.is_zipfile(b):
            return zip_diffs(a, b)
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
        return [f"(cannot compare further: {exc})"]
    return []


def compare(reference: Build, other: Build, outputs: list[str]) -> list[str]:
    """Every difference between two builds' outputs, one line each (field lines indented)."""
    lines = []
    for rel in outputs:
        ha, hb = file_hashes(reference.root, rel), file_hashes(other.root, rel)
        for name in sorted(set(ha) | set(hb)):
            if name not in hb or name not in ha:
                lines.append(f"{name}: only in the {'first' if name in ha else 'second'} build")
            elif ha[name] != hb[name]:
                lines.append(f"{name}: content differs")
                lines.extend(f"    {d}" for d in explain(reference.root / name, other.root / name))
    if reference.engine == other.engine == "dvc":
        la, lb = lock_hashes(reference.root / "dvc.lock"), lock_hashes(other.root / "dvc.lock")
        lines.extend(
            f"dvc.lock {key}: {la.get(key)} -> {lb.get(key)}"
            for key in sorted(set(la) | set(lb))
            if la.get(key) != lb.get(key)
        )
    return lines


def build(engine: str, root: Path, overrides: Path | None, cores: int, log) -> Build:
    """Clone HEAD into ``root`` and build the pipeline there with ``engine``."""
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(root)], check=True)
    if engine == "dvc":
        if overrides:
            merge_into_params(root, overrides)
        cmd = ["dvc", "repro"]
    else:
        cmd = ["snakemake", "--cores", str(cores)] + (["--configfile", str(overrides)] if overrides else [])
    env = tool_env()
    print(f"[{engine}] {root}: {' '.join(cmd)}", file=log, flush=True)
    start = time.monotonic()
    with open(root / "build.log", "w") as out:
        done = subprocess.run(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        tail = (root / "build.log").read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(f"{engine} build in {root} failed ({done.returncode}):\n" + "\n".join(tail))
    print(f"[{engine}] built in {seconds:.0f} s", file=log, flush=True)
    return Build(engine, root, seconds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--engines",
        nargs="+",
        choices=["dvc", "snakemake"],
        default=["dvc", "dvc"],
        help="one build per entry, each compared with the first (default: dvc dvc)",
    )
    ap.add_argument(
        "--params",
        default="workflow/params-tiny.yaml",
        help="override file merged over params.yaml ('' = params.yaml as committed)",
    )
    ap.add_argument("--cores", type=int, default=available_cpus(), help="snakemake --cores")
    ap.add_argument("--workdir", type=Path, help="where the clones go (default: a new temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the clones (always kept when a build fails)")
    args = ap.parse_args(argv)
    if len(args.engines) < 2:
        ap.error("--engines needs at least two builds to compare")
    overrides = (REPO / args.params).resolve() if args.params else None
    if overrides and not overrides.is_file():
        ap.error(f"override file {overrides} not found")
    if subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip():
        print("note: the work tree has uncommitted changes; the clones build HEAD without them")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="telucodec-rebuild-"))
    workdir.mkdir(parents=True, exist_ok=True)

    try:
        builds = [
            build(engine, workdir / f"{i}-{engine}", overrides, args.cores, sys.stdout)
            for i, engine in enumerate(args.engines)
        ]
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"error: check-rebuild: {exc}\n(clones kept in {workdir})", file=sys.stderr)
        return 2

    config = yaml.safe_load((builds[0].root / "params.yaml").read_text(encoding="utf-8"))
    if overrides and builds[0].engine != "dvc":
        config = merge_params(config, yaml.safe_load(overrides.read_text(encoding="utf-8")))
    stages = dvc_stages.read_dvc_stages(builds[0].root / "dvc.yaml", config)
    outputs = [path for stage in stages.values() for path in stage.out_paths]
    differences = 0
    for other in builds[1:]:
        lines = compare(builds[0], other, outputs)
        differences += len(lines)
        title = f"{builds[0].engine} build 0 vs {other.engine} build {builds.index(other)}"
        print(f"{title}: {'identical' if not lines else f'{len(lines)} difference(s)'}")
        for line in lines:
            print(f"  {line}")
    files = sum(len(file_hashes(builds[0].root, p)) for p in outputs)
    print(
        f"{files} output files in {len(outputs)} outs compared; builds took "
        + ", ".join(f"{b.engine} {b.seconds:.0f} s" for b in builds)
    )
    if args.keep or differences:
        print(f"clones kept in {workdir}")
    else:
        shutil.rmtree(workdir)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
