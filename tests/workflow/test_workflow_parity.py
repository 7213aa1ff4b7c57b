"""dvc.yaml and the Snakefile declare the same pipeline.

DVC's view comes from DVC's own parser (``dvc.repo.Repo(...).index.stages``), Snakemake's from loading
the Snakefile with Snakemake's API; the two must agree on stages, commands, deps, outs and params
sections. The deliberate differences are spelled out here (and in the Snakefile's header):

- prepare: Snakemake runs one ``prepare_shard`` job per shard (the DVC command + ``--shard N``) and a
  ``prepare`` merge (+ ``--merge``) that reads their files; DVC runs the plain command once. tokenize the same
  (``tokenize_shard`` jobs, one per prepared shard, and a ``tokenize`` merge).
- ``persist: true`` outs (models/checkpoints, data/tokens) are no Snakemake outputs as folders: Snakemake
  deletes a job's outputs before it runs, and the checkpoints must survive for resume; the token folder's files
  are the outputs of the shard jobs that write them.
- every Snakemake command ends with ``--params <file>``: the config Snakemake validated (params.yaml with
  the ``--configfile`` overrides merged), so overrides reach the stages.
- train runs with ``TELUCODEC_GPUS={resources.gpu}``: the GPUs Snakemake granted the job.
- a dep on the shard folder is its files (manifest + every shard); a dep on a source package is the
  package's files (Snakemake compares file times, it does not hash folders).
- every rule has one more input, its stage's params stamp ``.snakemake/telucodec/params/<stage>.yaml``.
"""

import re
import shutil
from pathlib import Path

import pytest
import yaml

from codec.runtime.cpus import available_cpus

dvc_repo = pytest.importorskip("dvc.repo")
snakemake_api = pytest.importorskip("snakemake.api")

ROOT = Path(__file__).resolve().parents[2]
PARAMS_FILE = r"\.snakemake/telucodec/params-[0-9a-f]{16}\.yaml"
SPLITS = ("train", "valid", "test")
SHARDS_DIR = "data/shards"
# rule -> (DVC stage, prefix, suffix): the Snakemake command is prefix + DVC command + suffix + --params.
COMMANDS = {
    "synth": ("synth", "", ""),
    "prepare_shard": ("prepare", "", " --shard {wildcards.shard}"),
    "prepare": ("prepare", "", " --merge"),
    "seed_codebooks": ("seed_codebooks", "", ""),
    "train": ("train", "TELUCODEC_GPUS={resources.gpu} ", ""),
    "export": ("export", "", ""),
    "tokenize_shard": ("tokenize", "", " --shard {wildcards.shard} --threads {threads}"),
    "tokenize": ("tokenize", "", " --merge"),
    "evaluate": ("evaluate", "", ""),
}
PERSISTENT = {"models/checkpoints", "data/tokens"}
TOKENS_DIR = "data/tokens"
GPU_RULES = {"train", "evaluate"}


def dvc_view(root: Path) -> dict:
    """stage -> cmd, deps, params sections, outs [(path, persist)], as DVC itself reads dvc.yaml."""
    from dvc.dependency.param import ParamsDependency

    with dvc_repo.Repo(str(root)) as repo:
        stages = {}
        for stage in repo.index.stages:
            params = [p for d in stage.deps if isinstance(d, ParamsDependency) for p in d.params]
            deps = [d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)]
            outs = [(o.def_path, bool(o.persist)) for o in stage.outs]
            stages[stage.name] = {"cmd": stage.cmd, "deps": deps, "params": params, "outs": outs}
        return stages


def snakemake_view(root: Path, tmp: Path, configfiles: list[Path] = ()) -> dict:
    """rule -> input, output, folders among the outputs, params, shellcmd, resources.

    Loaded in ``tmp`` (the repo's files linked in) so the params file the Snakefile writes lands there.
    """
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

    for name in ("Snakefile", "dvc.yaml", "params.yaml"):
        shutil.copy(root / name, tmp / name)
    for name in ("codec", "pipeline", "workflow", "scripts", "data"):
        (tmp / name).symlink_to(root / name)
    with snakemake_api.SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=2),
            config_settings=ConfigSettings(configfiles=[Path(c).absolute() for c in configfiles]),
            snakefile=tmp / "Snakefile",
            workdir=tmp,
        )
        rules = {}
        for rule in workflow_api._workflow.rules:  # no public API lists rule definitions
            rules[rule.name] = {
                "input": [str(f) for f in rule.input],
                "output": [str(f) for f in rule.output],
                "folders": {str(f) for f in rule.output if f.is_directory},
                "params": dict(rule.params.items()),
                "shellcmd": rule.shellcmd,
                "resources": {k: v.value for k, v in rule.resources.items() if not v.is_evaluable()},
            }
        return rules


@pytest.fixture(scope="module")
def dvc():
    return dvc_view(ROOT)


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def smk(tmp_path_factory):
    return snakemake_view(ROOT, tmp_path_factory.mktemp("smk"))


def lookup(config: dict, dotted: str):
    """``config["a"]["b"]`` for ``"a.b"``: a params key as dvc.yaml names it."""
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def shard_files(num_shards: int) -> list[str]:
    return [f"{SHARDS_DIR}/{split}/part-{i:05d}.parquet" for split in SPLITS for i in range(num_shards)]


def expected_inputs(stage: str, deps: list[str], root: Path, num_shards: int) -> list[str]:
    inputs = []
    for dep in deps:
        if dep == SHARDS_DIR:
            inputs += [f"{SHARDS_DIR}/manifest.json", *shard_files(num_shards)]
        elif (root / dep / "__init__.py").is_file():
            inputs += sorted(
                p.relative_to(root).as_posix()
                for p in (root / dep).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
        else:
            inputs.append(dep)
    return [*inputs, f".snakemake/telucodec/params/{stage}.yaml"]


def test_every_stage_has_its_rules(dvc, smk):
    assert list(dvc) == ["synth", "prepare", "seed_codebooks", "train", "export", "tokenize", "evaluate"]
    assert set(smk) == set(COMMANDS) | {"all"}
    assert {stage for stage, _, _ in COMMANDS.values()} == set(dvc)


@pytest.mark.parametrize("rule", sorted(COMMANDS))
def test_commands_are_dvc_commands(dvc, smk, rule):
    stage, prefix, suffix = COMMANDS[rule]
    cmd = smk[rule]["shellcmd"]
    expected = re.escape(prefix + dvc[stage]["cmd"] + suffix) + " --params " + PARAMS_FILE
    assert re.fullmatch(expected, cmd), f"{rule}: {cmd!r}\n   vs dvc.yaml {dvc[stage]['cmd']!r}"


@pytest.mark.parametrize("stage", ["synth", "seed_codebooks", "train", "export", "evaluate"])
def test_inputs_are_dvc_deps(dvc, smk, config, stage):
    expected = expected_inputs(stage, dvc[stage]["deps"], ROOT, config["prepare"]["num_shards"])
    assert smk[stage]["input"] == expected


def test_prepare_fans_out_per_shard(dvc, smk, config):
    num_shards = config["prepare"]["num_shards"]
    shard, merge = smk["prepare_shard"], smk["prepare"]
    assert shard["input"] == expected_inputs("prepare", dvc["prepare"]["deps"], ROOT, num_shards)
    # one job writes every split's file of its shard and a part summary; the merge reads them all
    assert shard["output"] == [
        *(f"{SHARDS_DIR}/{s}/part-{{shard,\\d{{5}}}}.parquet" for s in SPLITS),
        f"{SHARDS_DIR}/parts/part-{{shard,\\d{{5}}}}.json",
    ]
    assert sorted(merge["input"]) == sorted(
        shard_files(num_shards) + [f"{SHARDS_DIR}/parts/part-{i:05d}.json" for i in range(num_shards)]
    )
    dvc_outs = [path for path, _ in dvc["prepare"]["outs"]]
    assert merge["output"] == [f"{SHARDS_DIR}/manifest.json"] + [p for p in dvc_outs if p != SHARDS_DIR]
    assert shard["params"] == merge["params"] == {k: lookup(config, k) for k in dvc["prepare"]["params"]}


def test_tokenize_fans_out_per_prepared_shard(dvc, smk, config):
    num_shards = config["prepare"]["num_shards"]
    corpora = [config["tokenize"]["corpus_name"], *(c["name"] for c in config["tokenize"]["corpora"])]
    shard, merge = smk["tokenize_shard"], smk["tokenize"]
    assert shard["input"] == expected_inputs("tokenize", dvc["tokenize"]["deps"], ROOT, num_shards)
    assert shard["output"] == [
        *(f"{TOKENS_DIR}/{c}/{s}/part-{{shard,\\d{{5}}}}.parquet" for c in corpora for s in SPLITS),
        f"{TOKENS_DIR}/parts/part-{{shard,\\d{{5}}}}.json",
    ]
    token_files = [
        f"{TOKENS_DIR}/{c}/{s}/part-{i:05d}.parquet" for c in corpora for s in SPLITS for i in range(num_shards)
    ]
    parts = [f"{TOKENS_DIR}/parts/part-{i:05d}.json" for i in range(num_shards)]
    assert sorted(merge["input"]) == sorted(token_files + parts)
    dvc_outs = [path for path, persist in dvc["tokenize"]["outs"] if not persist]
    assert merge["output"] == [f"{TOKENS_DIR}/manifest.json", *dvc_outs]
    assert ("data/tokens", True) in dvc["tokenize"]["outs"]
    assert (
        shard["params"]
        == merge["params"]
        == {k.replace(".", "__"): lookup(config, k) for k in dvc["tokenize"]["params"]}
    )


@pytest.mark.parametrize("stage", ["synth", "seed_codebooks", "train", "export", "evaluate"])
def test_outputs_are_dvc_outs(dvc, smk, stage):
    outs = dvc[stage]["outs"]
    assert {path for path, persist in outs if persist} <= PERSISTENT
    kept = [path for path, persist in outs if not persist]
    assert smk[stage]["output"] == kept
    assert smk[stage]["folders"] == {path for path in kept if Path(path).suffix == ""}


def test_checkpoints_persist_in_dvc_and_are_no_snakemake_output(dvc, smk):
    assert ("models/checkpoints", True) in dvc["train"]["outs"]
    assert all(not out.startswith("models/checkpoints") for rule in smk.values() for out in rule["output"])
    assert "--checkpoints models/checkpoints" in smk["train"]["shellcmd"]


@pytest.mark.parametrize("stage", ["synth", "prepare", "seed_codebooks", "train", "export", "tokenize", "evaluate"])
def test_params_sections_are_dvc_params(dvc, smk, config, stage):
    assert smk[stage]["params"] == {key.replace(".", "__"): lookup(config, key) for key in dvc[stage]["params"]}


def test_evaluate_reads_only_the_clean_up_keys_of_prepare(dvc):
    # prepare.workers or num_shards change no score: they must not re-run evaluate.
    keys = dvc["evaluate"]["params"]
    assert "prepare" not in keys and "prepare.workers" not in keys and "prepare.trim_silence" in keys


def test_default_target_builds_every_stage(smk):
    wanted = set(smk["all"]["input"])
    for rule, info in smk.items():
        if rule not in ("all", "prepare_shard", "tokenize_shard"):
            assert set(info["output"]) <= wanted, rule


def test_gpu_rules_declare_cluster_resources(smk):
    for rule in GPU_RULES:
        res = smk[rule]["resources"]
        assert res["gpu"] == 1 and res["mem_mb"] > 0 and res["runtime"] > 0, rule
        # threads: every core this process may use, as `dvc repro` gives a stage (its affinity: under
        # `taskset -c 0` one), scaled down to --cores 2
        assert res["_cores"] == min(available_cpus(), 2), rule
    assert all("gpu" not in info["resources"] for rule, info in smk.items() if rule not in GPU_RULES)


def test_configfile_overrides_reach_every_command(tmp_path):
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("train: {steps: 7}\nprepare: {num_shards: 2}\n")
    (tmp_path / "wd").mkdir()
    smk = snakemake_view(ROOT, tmp_path / "wd", [overrides])
    assert smk["train"]["params"]["train"]["steps"] == 7
    files = {re.search(PARAMS_FILE, info["shellcmd"]).group(0) for info in smk.values() if info["shellcmd"]}
    assert len(files) == 1, "every command reads the same params file"
    merged = yaml.safe_load((tmp_path / "wd" / files.pop()).read_text())
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert merged["train"] == {**base["train"], "steps": 7}
    assert {k: v for k, v in merged.items() if k not in ("train", "prepare")} == {
        k: v for k, v in base.items() if k not in ("train", "prepare")
    }
    assert sorted(smk["prepare"]["input"]) == sorted(
        shard_files(2) + [f"{SHARDS_DIR}/parts/part-{i:05d}.json" for i in range(2)]
    )


def test_invalid_override_stops_before_any_job(tmp_path):
    overrides = tmp_path / "bad.yaml"
    overrides.write_text("train: {stepz: 7}\n")
    (tmp_path / "wd").mkdir()
    with pytest.raises(Exception, match=r"params\.train: unknown key\(s\) \['stepz'\]"):
        snakemake_view(ROOT, tmp_path / "wd", [overrides])
