"""dvc.yaml read as the one declaration of the pipeline's stages, for the Snakefile.

The Snakefile ``include:``s this file (plain Python, no Snakemake directives), so every rule takes its
command, inputs, outputs and params sections from dvc.yaml, resolved against Snakemake's ``config``
(params.yaml with any ``--configfile`` overrides merged in). Tests load it with importlib.

Translation rules (tests/workflow/test_workflow_parity.py checks them against DVC's own reading):
- ``${a.b}`` in a command or path is the config value at ``a.b`` (scalars only).
- outs + metrics + plots are the rule's outputs, except ``persist: true`` outs (Snakemake deletes a
  job's outputs before it runs; a persistent folder such as checkpoints must survive for resume).
- an out without a file suffix is a folder: ``directory()`` in Snakemake.
- a dep folder that is a Python package (holds ``__init__.py``) stands for the files in it, so Snakemake
  sees an edit to any of them (DVC hashes folder contents; Snakemake only compares file times).
- a dep that another stage writes as a folder but Snakemake builds file by file (``data/shards``,
  from one job per shard) stands for those files: the ``expand`` mapping.
- a stage's params (whole sections, or dotted keys ``a.b`` where it reads only part of one) are the rule's
  ``params``, one each (``a.b`` named ``a__b``), so Snakemake re-runs a job whose params changed, as DVC does.
- a stage's params sections are also written to a stamp file that is one more input of its rules
  (:func:`write_params_stamps`): Snakemake's params trigger needs its own metadata, which outputs built by
  ``dvc repro`` lack; the stamp's time tells Snakemake when the params changed, whichever engine built.

The experiment drivers (``experiments/``), which run stages outside both engines, take each stage's command line
from here too (:func:`stage_command`): dvc.yaml's module and flags with their own paths, never written again.
"""

import ast
import hashlib
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from codec.runtime.io import write_text_atomic

STAGE_KEYS = {"cmd", "deps", "params", "outs", "metrics", "plots", "desc"}
# Top-level sections that only tell DVC how to show results (dvc plots/metrics/params show, artifacts):
# they change nothing about how a stage runs. Anything else (vars!) is refused.
DISPLAY_ONLY = {"plots", "metrics", "params", "artifacts", "datasets"}
_INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*\}")


class DvcTranslationError(ValueError):
    """dvc.yaml uses something this translation does not handle (or refers to a missing param)."""


@dataclass(frozen=True)
class DvcOut:
    path: str
    persist: bool = False

    @property
    def is_folder(self) -> bool:
        return Path(self.path).suffix == ""


@dataclass(frozen=True)
class DvcStage:
    """One stage of dvc.yaml with every ``${...}`` resolved."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[DvcOut, ...]  # outs, metrics and plots, in that order
    params: tuple[str, ...]  # params.yaml keys: top-level sections or dotted keys

    @property
    def out_paths(self) -> tuple[str, ...]:
        return tuple(out.path for out in self.outs)


def lookup(config: Mapping[str, Any], dotted: str) -> Any:
    """``config["a"]["b"]`` for ``"a.b"``; DvcTranslationError when a key is missing."""
    value: Any = config
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise DvcTranslationError(f"dvc.yaml refers to ${{{dotted}}}, which params has no value for")
        value = value[key]
    return value


def interpolate(text: str, config: Mapping[str, Any]) -> str:
    """Replace each ``${a.b}`` in ``text`` by the scalar config value at ``a.b``, as DVC does."""

    def scalar(match: re.Match) -> str:
        value = lookup(config, match.group(1))
        if isinstance(value, (Mapping, list)):
            raise DvcTranslationError(f"${{{match.group(1)}}} is not a scalar value: {value!r}")
        return str(value).lower() if isinstance(value, bool) else str(value)

    return _INTERPOLATION.sub(scalar, text)


def _entries(stage: str, key: str, items: Any) -> list[tuple[str, dict]]:
    """dvc.yaml's list of ``path`` or ``{path: {options}}`` as (path, options) pairs."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise DvcTranslationError(f"stage {stage}: {key} must be a list")
    pairs = []
    for item in items:
        if isinstance(item, str):
            pairs.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1:
            ((path, options),) = item.items()
            pairs.append((path, dict(options or {})))
        else:
            raise DvcTranslationError(f"stage {stage}: cannot read {key} entry {item!r}")
    return pairs


def read_dvc_stages(path: str | Path, config: Mapping[str, Any]) -> dict[str, DvcStage]:
    """Every stage of ``path`` (dvc.yaml), in file order, resolved against ``config``."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    extra = set(data) - {"stages"} - DISPLAY_ONLY
    if extra:
        raise DvcTranslationError(f"{path}: top-level {sorted(extra)} are not translated to Snakemake")
    stages = {}
    for name, spec in (data.get("stages") or {}).items():
        unknown = set(spec) - STAGE_KEYS
        if unknown:
            raise DvcTranslationError(f"stage {name}: {sorted(unknown)} are not translated to Snakemake")
        if not isinstance(spec.get("cmd"), str):
            raise DvcTranslationError(f"stage {name}: cmd must be one string")
        params = spec.get("params") or []
        if not all(isinstance(p, str) and re.fullmatch(r"\w+(\.\w+)*", p) for p in params):
            raise DvcTranslationError(
                f"stage {name}: params must be params.yaml keys (sections or a.b.c), got {params}"
            )
        for key in params:
            lookup(config, key)  # a key params.yaml lacks is an error now, not when the job runs
        outs = []
        for key in ("outs", "metrics", "plots"):
            for out, options in _entries(name, key, spec.get(key)):
                outs.append(DvcOut(interpolate(out, config), persist=bool(options.get("persist", False))))
        deps = tuple(interpolate(dep, config) for dep, _ in _entries(name, "deps", spec.get("deps")))
        stages[name] = DvcStage(name, interpolate(spec["cmd"], config), deps, tuple(outs), tuple(params))
    return stages


# A stage whose dvc.yaml command is a launcher script: the Python module the script runs, with the same flags.
SCRIPT_MODULES = {"workflow/launch-train.sh": "pipeline.train"}


def command_module(cmd: str) -> tuple[str, list[str]]:
    """(module, arguments) of a dvc.yaml command: ``python -m MODULE ARGS``, or ``SCRIPT ARGS`` for a launcher
    script of :data:`SCRIPT_MODULES` (then the module it runs, with the same arguments)."""
    words = shlex.split(cmd)
    if len(words) >= 3 and words[0] in ("python", "python3") and words[1] == "-m":
        return words[2], words[3:]
    if words and words[0] in SCRIPT_MODULES:
        return SCRIPT_MODULES[words[0]], words[1:]
    raise DvcTranslationError(f"cannot tell which Python module the command {cmd!r} runs (SCRIPT_MODULES?)")


def module_options(path: str | Path) -> set[str]:
    """The options a command-line module declares (the string literals of its ``add_argument`` calls: ``--out``,
    ``-o``, a positional's name), read from its source without importing it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
            found.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return found


def stage_command(dvc_yaml: str | Path, stage: str, **paths: str | os.PathLike[str] | None) -> list[str]:
    """``[module, *arguments]``, what follows ``python -m`` to run ``stage`` as ``dvc_yaml`` writes its command, with
    other paths: the module and flags stay dvc.yaml's (a flag renamed there reaches every caller).

    A keyword names a flag without its dashes, ``-`` as ``_`` (``out_dir`` for ``--out-dir``):

    - every flag that dvc.yaml's command gives a value must be given one here: a path (it replaces dvc.yaml's,
      in dvc.yaml's order), or None to leave the flag out (a file the caller has not got, e.g. evaluate's
      ``--tokens-stats`` outside the pipeline); a flag dvc.yaml gives no value (a switch) is kept as it is;
    - a keyword that is no flag of dvc.yaml's command is appended (``--params``, ``--timings``) when the stage's
      module declares that option (:func:`module_options`, from ``<dvc.yaml's folder>/<module path>.py``);
    - anything else is refused (TypeError), as is a missing value.

    A stage run by a launcher script (train: ``workflow/launch-train.sh``) gives the module the script runs
    (:data:`SCRIPT_MODULES`), so the caller runs ``python -m pipeline.train`` directly with the same flags: one
    process (or its own ``torchrun``), not the launcher's choice of GPUs.
    """
    dvc_yaml = Path(dvc_yaml)
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages") or {}
    if stage not in stages:
        raise DvcTranslationError(f"{dvc_yaml}: no stage {stage!r} (have {sorted(stages)})")
    cmd = stages[stage].get("cmd")
    if not isinstance(cmd, str):
        raise DvcTranslationError(f"stage {stage}: cmd must be one string")
    stage_module, words = command_module(cmd)
    given = {f"--{key.replace('_', '-')}": None if v is None else os.fspath(v) for key, v in paths.items()}
    out, used = [stage_module], set()
    i = 0
    while i < len(words):
        flag = words[i]
        if not flag.startswith("--"):
            raise DvcTranslationError(f"stage {stage}: {flag!r} in {cmd!r} is no --flag or a flag's value")
        has_value = i + 1 < len(words) and not words[i + 1].startswith("--")
        if not has_value:
            if flag in given:
                raise TypeError(f"stage {stage}: {flag} is a switch in dvc.yaml, not a path to replace")
            out.append(flag)
            i += 1
            continue
        if flag not in given:
            raise TypeError(f"stage {stage}: no path given for {flag} (dvc.yaml: {words[i + 1]}; None leaves it out)")
        used.add(flag)
        value = given[flag]
        if value is not None:
            out += [flag, value]
        i += 2
    extra = [flag for flag in given if flag not in used]
    if extra:
        declared = module_options(dvc_yaml.parent / Path(*stage_module.split(".")).with_suffix(".py"))
        unknown = [flag for flag in extra if flag not in declared]
        if unknown:
            raise TypeError(f"stage {stage}: {stage_module} has no option {', '.join(unknown)}")
        for flag in extra:
            value = given[flag]
            if value is not None:
                out += [flag, value]
    return out


def package_files(folder: str | Path) -> list[str]:
    """Every file under a source folder (sorted, POSIX paths), caches left out."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        files.extend(Path(root, n).as_posix() for n in names if not n.endswith((".pyc", ".pyo")))
    return sorted(files)


def snakemake_inputs(stage: DvcStage, expand: Mapping[str, list[str]]) -> list[str]:
    """The stage's deps as Snakemake inputs (module docstring: folders as files where needed)."""
    inputs: list[str] = []
    for dep in stage.deps:
        if dep in expand:
            inputs.extend(expand[dep])
        elif Path(dep, "__init__.py").is_file():
            inputs.extend(package_files(dep))
        else:
            inputs.append(dep)
    return inputs


def snakemake_outputs(stage: DvcStage, directory, drop: tuple[str, ...] = ()) -> list:
    """The stage's non-persistent outs, folders wrapped in ``directory``, minus ``drop``."""
    return [
        directory(out.path) if out.is_folder else out.path
        for out in stage.outs
        if not out.persist and out.path not in drop
    ]


def snakemake_params(stage: DvcStage, config: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's ``params``: each of the stage's params keys, ``a.b`` named ``a__b`` (an identifier)."""
    return {key.replace(".", "__"): lookup(config, key) for key in stage.params}


def snakemake_shell(cmd: str, *, params_file: str | None = None, prefix: str = "", suffix: str = "") -> str:
    """A DVC command as a Snakemake ``shell:`` template.

    Braces are escaped (they are literal in DVC commands); ``prefix`` and ``suffix`` are Snakemake
    templates (``{wildcards.x}``, ``{resources.gpu}``) put around it; ``--params FILE`` is appended so the
    stage reads the parameters Snakemake validated (``--configfile`` overrides included).
    """
    body = cmd.replace("{", "{{").replace("}", "}}")
    tail = f" --params {params_file}" if params_file else ""
    return f"{prefix}{body}{suffix}{tail}"


def write_params_file(config: Mapping[str, Any], folder: str | Path = ".snakemake/telucodec") -> str:
    """Write ``config`` as YAML to ``<folder>/params-<sha256[:16]>.yaml`` (once); return its path.

    Named by content so concurrent runs with different overrides never share a file, and a cluster job
    (which re-reads the Snakefile with the same config) finds the same path.
    """
    text = yaml.safe_dump(dict(config), sort_keys=True, allow_unicode=True)
    path = Path(folder) / f"params-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return path.as_posix()


def lock_params(lock: str | Path) -> dict[str, dict[str, Any]]:
    """stage -> {key: value} as dvc.lock records the params of the stage's last DVC build ({} if none)."""
    path = Path(lock)
    if not path.is_file():
        return {}
    # YAML 1.2, as DVC writes it: PyYAML (YAML 1.1) would read DVC's `1e-05` as a string.
    from ruamel.yaml import YAML

    data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    found = {}
    for name, spec in (data.get("stages") or {}).items():
        recorded = (spec.get("params") or {}) if isinstance(spec, dict) else {}
        found[name] = dict(recorded.get("params.yaml") or {})
    return found


def _built_by_dvc_last(stage: DvcStage, lock_time: float | None) -> bool:
    """Whether ``dvc repro`` wrote the stage's outputs last: all present and none newer than dvc.lock, which
    DVC writes after a stage's outputs (a Snakemake build since then leaves newer ones)."""
    if lock_time is None:
        return False
    paths = [Path(out.path) for out in stage.outs if not out.persist]
    return all(p.exists() for p in paths) and all(p.stat().st_mtime <= lock_time for p in paths)


def write_params_stamps(
    stages: Mapping[str, DvcStage],
    config: Mapping[str, Any],
    *,
    folder: str | Path = ".snakemake/telucodec/params",
    lock: str | Path = "dvc.lock",
) -> dict[str, str]:
    """Write each stage's params sections to ``<folder>/<stage>.yaml``; return stage -> path (a rule input).

    The stamp's modification time says when the params last changed, which Snakemake compares with the
    outputs' times like any input's, so a job re-runs when its params differ from those its outputs were
    built with, whichever engine built them:

    - ``dvc repro`` wrote the stage's outputs last (all present, none newer than dvc.lock): dvc.lock records
      the params they were built with. Equal to the wanted ones: the stamp gets the oldest time (1970) and
      triggers nothing; different (a ``--configfile`` override, an edited params.yaml): a time after the
      outputs', so the job re-runs;
    - otherwise (Snakemake built them, or they are missing) the stamp is rewritten, with the current time,
      only when its content changes.
    """
    folder, lock = Path(folder), Path(lock)
    built_with = lock_params(lock)
    lock_time = lock.stat().st_mtime if lock.is_file() else None
    stamps = {}
    for name, stage in stages.items():
        wanted = {key: lookup(config, key) for key in stage.params}  # as dvc.lock records them
        text = yaml.safe_dump(wanted, sort_keys=True, allow_unicode=True)
        path = folder / f"{name}.yaml"
        stamps[name] = path.as_posix()
        same_text = path.is_file() and path.read_text(encoding="utf-8") == text
        if not same_text:
            write_text_atomic(path, text)
        if _built_by_dvc_last(stage, lock_time):
            if built_with.get(name) == wanted:
                os.utime(path, (0, 0))
            elif not same_text or path.stat().st_mtime <= lock_time:
                os.utime(path)
    return stamps
