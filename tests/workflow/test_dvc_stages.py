"""workflow/lib/dvc_stages.py: dvc.yaml translated for the Snakefile."""

import os
from pathlib import Path

import pytest
import yaml

from workflow.lib import dvc_stages as ds

ROOT = Path(__file__).resolve().parents[2]

CONFIG = {"prepare": {"corpus": "data/corpus", "trim": True, "split": {"valid": 0.1}}, "seed": 7}


def write_dvc(tmp_path, data) -> Path:
    path = tmp_path / "dvc.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_interpolation_takes_scalars_from_config():
    assert ds.interpolate("a ${prepare.corpus} b ${ seed } ${prepare.trim}", CONFIG) == "a data/corpus b 7 true"
    with pytest.raises(ds.DvcTranslationError, match=r"\$\{prepare\.nope\}"):
        ds.interpolate("${prepare.nope}", CONFIG)
    with pytest.raises(ds.DvcTranslationError, match="not a scalar"):
        ds.interpolate("${prepare.split}", CONFIG)


def test_stages_outs_metrics_plots_and_persist(tmp_path):
    path = write_dvc(
        tmp_path,
        {
            "plots": [{"rd": {"x": "kbps", "y": {"m.json": "snr"}}}],
            "stages": {
                "s": {
                    "cmd": "run --in ${prepare.corpus}",
                    "deps": ["${prepare.corpus}", "code.py"],
                    "params": ["seed", "prepare"],
                    "outs": [{"ckpt": {"persist": True}}, "model.bin"],
                    "metrics": [{"m.json": {"cache": False}}],
                    "plots": [{"plots/curve": {"x": "step", "cache": False}}],
                }
            },
        },
    )
    (stage,) = ds.read_dvc_stages(path, CONFIG).values()
    assert stage.cmd == "run --in data/corpus"
    assert stage.deps == ("data/corpus", "code.py")
    assert stage.params == ("seed", "prepare")
    assert stage.out_paths == ("ckpt", "model.bin", "m.json", "plots/curve")
    assert [o.persist for o in stage.outs] == [True, False, False, False]
    assert ds.snakemake_outputs(stage, lambda p: f"dir:{p}") == ["model.bin", "m.json", "dir:plots/curve"]
    assert ds.snakemake_params(stage, CONFIG) == {"seed": 7, "prepare": CONFIG["prepare"]}
    dotted = ds.DvcStage("e", "run", (), (), ("seed", "prepare.trim"))
    assert ds.snakemake_params(dotted, CONFIG) == {"seed": 7, "prepare__trim": True}


@pytest.mark.parametrize(
    "data, match",
    [
        ({"vars": [{"x": 1}], "stages": {}}, "top-level"),
        ({"stages": {"s": {"foreach": [1, 2], "do": {"cmd": "x"}}}}, "foreach"),
        ({"stages": {"s": {"cmd": ["a", "b"]}}}, "one string"),
        ({"stages": {"s": {"cmd": "a", "params": ["prepare.nope"]}}}, r"\$\{prepare\.nope\}"),
        ({"stages": {"s": {"cmd": "a", "params": [{"other.yaml": ["x"]}]}}}, "params.yaml keys"),
        ({"stages": {"s": {"cmd": "a", "outs": [{"a": {}, "b": {}}]}}}, "cannot read outs"),
    ],
)
def test_what_cannot_be_translated_is_an_error(tmp_path, data, match):
    with pytest.raises(ds.DvcTranslationError, match=match):
        ds.read_dvc_stages(write_dvc(tmp_path, data), CONFIG)


def test_inputs_expand_packages_and_file_by_file_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("pkg/__init__.py", "pkg/a.py", "pkg/sub/b.py", "pkg/__pycache__/a.cpython-311.pyc", "data/x.wav"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text("")
    stage = ds.DvcStage("s", "c", ("pkg", "data", "shards", "f.txt"), (), ())
    assert ds.snakemake_inputs(stage, {"shards": ["shards/m.json", "shards/p0"]}) == [
        "pkg/__init__.py",
        "pkg/a.py",
        "pkg/sub/b.py",
        "data",
        "shards/m.json",
        "shards/p0",
        "f.txt",
    ]


def test_shell_escapes_braces_and_adds_params():
    cmd = ds.snakemake_shell(
        "awk '{print $1}' x", params_file="p.yaml", prefix="A={resources.gpu} ", suffix=" --shard {wildcards.shard}"
    )
    assert cmd == "A={resources.gpu} awk '{{print $1}}' x --shard {wildcards.shard} --params p.yaml"


def test_params_file_is_named_by_content(tmp_path):
    first = ds.write_params_file({"b": 1, "a": [1, 2]}, tmp_path)
    assert ds.write_params_file({"a": [1, 2], "b": 1}, tmp_path) == first
    assert yaml.safe_load(Path(first).read_text()) == {"a": [1, 2], "b": 1}
    other = ds.write_params_file({"a": [1, 2], "b": 2}, tmp_path)
    assert other != first and Path(first).is_file() and Path(other).is_file()


def test_project_dvc_yaml_is_translatable():
    config = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    stages = ds.read_dvc_stages(ROOT / "dvc.yaml", config)
    assert "${" not in " ".join(s.cmd + " ".join(s.deps) for s in stages.values())


TRAIN_PATHS = {"shards": "S", "init": "I.safetensors", "checkpoints": "C", "out": "O.safetensors", "live": "L"}


def test_the_train_command_is_dvc_yamls_with_the_paths_replaced():
    """stage_command gives dvc.yaml's own flags, in its order, each with the path given for it; the launcher script
    of the train stage becomes the module it runs (the callers run pipeline.train directly)."""
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["train"]["cmd"]
    script, *words = cmd.split()
    assert ds.SCRIPT_MODULES[script] == "pipeline.train"
    expected = [
        w if w.startswith("--") else TRAIN_PATHS[prev[2:].replace("-", "_")] for prev, w in zip([""] + words, words)
    ]
    assert ds.stage_command(ROOT / "dvc.yaml", "train", **TRAIN_PATHS) == ["pipeline.train", *expected]
    # Options dvc.yaml does not pass but the module declares come after dvc.yaml's flags; None leaves a flag out.
    full = ds.stage_command(ROOT / "dvc.yaml", "train", **TRAIN_PATHS, timings=Path("t.json"), params="p.yaml")
    assert full == ["pipeline.train", *expected, "--timings", "t.json", "--params", "p.yaml"]
    assert "--live" not in ds.stage_command(ROOT / "dvc.yaml", "train", **{**TRAIN_PATHS, "live": None})


@pytest.mark.parametrize("stage", ["prepare", "seed_codebooks", "train", "export", "tokenize", "evaluate"])
def test_every_pipeline_stage_command_can_be_built(stage):
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"][stage]
    module, words = ds.command_module(spec["cmd"])
    flags = [w for w in words if w.startswith("--")]
    paths = {flag[2:].replace("-", "_"): f"/elsewhere/{flag[2:]}" for flag in flags}
    built = ds.stage_command(ROOT / "dvc.yaml", stage, **paths)
    assert built[0] == module and built[1::2] == flags and built[2::2] == [f"/elsewhere/{f[2:]}" for f in flags]


def test_a_flag_renamed_in_dvc_yaml_reaches_the_built_command_and_bad_keys_are_refused(tmp_path):
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "train.py").write_text(
        'p.add_argument("--shards")\np.add_argument("--dvclive")\np.add_argument("--params", default="params.yaml")\n'
    )
    path = write_dvc(
        tmp_path,
        {
            "stages": {
                "train": {"cmd": "workflow/launch-train.sh --shards data/shards --dvclive reports/train --fast"},
                "odd": {"cmd": "bash run.sh --x y"},
                "loose": {"cmd": "python -m pipeline.train data/shards"},
            }
        },
    )
    assert ds.stage_command(path, "train", shards="s", dvclive="l", params="p") == [
        "pipeline.train", "--shards", "s", "--dvclive", "l", "--fast", "--params", "p"
    ]  # fmt: skip
    with pytest.raises(TypeError, match="no path given for --dvclive"):
        ds.stage_command(path, "train", shards="s")
    with pytest.raises(TypeError, match="pipeline.train has no option --live"):
        ds.stage_command(path, "train", shards="s", dvclive="l", live="l")
    with pytest.raises(TypeError, match="--fast is a switch"):
        ds.stage_command(path, "train", shards="s", dvclive="l", fast="x")
    with pytest.raises(ds.DvcTranslationError, match="no stage 'nope'"):
        ds.stage_command(path, "nope")
    with pytest.raises(ds.DvcTranslationError, match="which Python module"):
        ds.stage_command(path, "odd", x="z")
    with pytest.raises(ds.DvcTranslationError, match="is no --flag"):
        ds.stage_command(path, "loose")


def _stamp_setup(tmp_path, lock_train):
    out = tmp_path / "model.bin"
    out.write_bytes(b"weights")
    stages = {"train": ds.DvcStage("train", "run", (), (ds.DvcOut(str(out)),), ("seed", "train"))}
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  train:\n    cmd: run\n    params:\n      params.yaml:\n"
        f"        seed: 7\n        train: {lock_train}\n"
    )
    os.utime(out, (1000, 1000))
    os.utime(lock, (2000, 2000))  # DVC writes dvc.lock after the stage's outputs
    return stages, lock, out


def test_params_stamp_of_a_dvc_build_triggers_only_when_params_differ(tmp_path):
    stages, lock, _ = _stamp_setup(tmp_path, "{steps: 10, eps: 1e-05}")  # YAML 1.2 float, as DVC writes it
    folder = tmp_path / "stamps"
    same = {"seed": 7, "train": {"steps": 10, "eps": 1e-5}}
    path = Path(ds.write_params_stamps(stages, same, folder=folder, lock=lock)["train"])
    assert yaml.safe_load(path.read_text()) == same
    assert path.stat().st_mtime == 0  # what DVC built with: older than any output, triggers nothing
    override = {"seed": 7, "train": {"steps": 12, "eps": 1e-5}}
    ds.write_params_stamps(stages, override, folder=folder, lock=lock)
    assert path.stat().st_mtime > 2000 and yaml.safe_load(path.read_text()) == override  # newer than the outputs
    ds.write_params_stamps(stages, same, folder=folder, lock=lock)  # back: the outputs are still DVC's
    assert path.stat().st_mtime == 0


def test_params_stamp_after_a_snakemake_build_changes_only_with_its_content(tmp_path):
    stages, lock, out = _stamp_setup(tmp_path, "{steps: 10}")
    folder = tmp_path / "stamps"
    ten, twelve = {"seed": 7, "train": {"steps": 10}}, {"seed": 7, "train": {"steps": 12}}
    path = Path(ds.write_params_stamps(stages, twelve, folder=folder, lock=lock)["train"])
    os.utime(path, (3000, 3000))
    os.utime(out, (4000, 4000))  # Snakemake built with 12 since
    ds.write_params_stamps(stages, twelve, folder=folder, lock=lock)
    assert path.stat().st_mtime == 3000  # unchanged params: untouched, nothing to do
    ds.write_params_stamps(stages, ten, folder=folder, lock=lock)
    assert path.stat().st_mtime > 4000  # what dvc.lock says, but the outputs are Snakemake's 12-step ones


def test_params_stamp_without_dvc_lock(tmp_path):
    stages = {"train": ds.DvcStage("train", "run", (), (), ("train",))}
    path = Path(
        ds.write_params_stamps(stages, {"train": {"steps": 1}}, folder=tmp_path, lock=tmp_path / "none.lock")["train"]
    )
    assert path.stat().st_mtime > 0 and ds.lock_params(tmp_path / "none.lock") == {}
