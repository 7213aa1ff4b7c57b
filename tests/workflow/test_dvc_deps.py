"""dvc.yaml's code deps cannot go stale: each stage lists every project file its command imports.

A missing dep lets `dvc repro` call a stage "up to date" over outputs built by older code, so the deps are
checked against the imports themselves: a static walk of the import graph from each stage's entry module
(``import`` and ``from ... import`` anywhere in a file, function-level ones included; ``from a import b``
counts ``a/b.py`` when that is a module; importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py``).
A package ``__init__.py`` that holds only its docstring runs no code, and need not be listed.
"""

import ast
from pathlib import Path

import pytest
import yaml

from scripts import module_map  # the import walk, shared with the README's module map
from workflow.lib.dvc_stages import command_module

ROOT = Path(__file__).resolve().parents[2]


def import_closure(module: str) -> set[Path]:
    todo, seen = [module], set()
    while todo:
        path = module_map.module_file(ROOT, todo.pop())
        if path is not None and path not in seen:
            seen.add(path)
            todo.extend(module_map.imported_modules(ROOT, path))
    return seen


def stage_module(cmd: str) -> str:
    """The Python entry of a stage: ``python -m M``'s M, or the module a launcher script runs (dvc_stages'
    SCRIPT_MODULES, which the experiments' stage commands use too)."""
    return command_module(cmd)[0]


def docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return len(body) <= 1 and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def covered(path: Path, deps: list[str]) -> bool:
    if path.name == "__init__.py" and docstring_only(path):
        return True
    rel = path.relative_to(ROOT)
    return any(rel == Path(dep) or Path(dep) in rel.parents for dep in deps)


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_imported_project_file_is_a_dep(stage):
    spec = STAGES[stage]
    deps = [d for d in spec.get("deps", []) if "${" not in d]
    missing = sorted(
        p.relative_to(ROOT).as_posix() for p in import_closure(stage_module(spec["cmd"])) if not covered(p, deps)
    )
    assert not missing, f"dvc.yaml stage {stage} imports files it does not list as deps: {missing}"


def test_every_listed_source_dep_exists():
    # A dep another stage writes (data/shards, models/...) exists only after a build; every other one is source.
    built = {
        next(iter(out)) if isinstance(out, dict) else out
        for spec in STAGES.values()
        for key in ("outs", "metrics", "plots")
        for out in spec.get(key, [])
    }
    for stage, spec in STAGES.items():
        for dep in spec.get("deps", []):
            if "${" not in dep and dep not in built:
                assert (ROOT / dep).exists(), f"stage {stage}: dep {dep} does not exist"


def test_the_packages_import_each_other_in_no_circle():
    lines, edges = module_map.package_graph(ROOT)
    levels = module_map.ranks(sorted(lines), edges)  # raises on a circle
    assert levels["codec/config"] == 0 and levels["pipeline"] == max(levels.values())


def test_the_walk_follows_function_level_imports_and_packages():
    closure = {p.relative_to(ROOT).as_posix() for p in import_closure("pipeline.train")}
    assert {"codec/train/loop.py", "codec/runtime/io.py", "pipeline/params.py", "codec/data/crops.py"} <= closure
    assert "codec/evaluation/scoring.py" not in closure  # training does not reach the evaluation
