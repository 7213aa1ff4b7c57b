# Snakemake twin of dvc.yaml. Every rule takes its command, inputs, outputs and params sections from
# dvc.yaml (workflow/lib/dvc_stages.py says how), so the two engines cannot drift apart; this file adds
# only what Snakemake needs on top: one job per prepare shard, threads and cluster resources.
#   snakemake --cores 2                                   # everything, locally
#   snakemake --cores 2 --configfile my-overrides.yaml    # params.yaml with these keys overridden
#   snakemake --profile profiles/slurm                    # on a SLURM cluster
# Differences from dvc.yaml, all deliberate (tests/workflow/test_workflow_parity.py checks them):
#   - prepare runs as prepare_shard jobs (the DVC command + `--shard N`) and a merge (+ `--merge`), and so
#     does tokenize (tokenize_shard jobs, one per prepared shard, and a merge);
#   - models/checkpoints (DVC `persist: true`) is no output: Snakemake would delete it before a re-run (the
#     token folder, also persistent under DVC, is: here each shard's files are its job's outputs);
#   - every command ends with `--params <file>`: the config Snakemake validated, overrides included;
#   - train runs with TELUCODEC_GPUS set to the job's `gpu` resource (workflow/launch-train.sh);
#   - every rule has one more input, .snakemake/telucodec/params/<stage>.yaml: its params sections, stamped
#     with the time they changed, so a job re-runs when they differ from what its outputs were built with,
#     also when `dvc repro` built them (then dvc.lock says with what; see write_params_stamps).

from snakemake.exceptions import WorkflowError

from codec.config.convert import ConfigError
from codec.runtime.cpus import available_cpus
from pipeline.params import params_from_dict

configfile: "params.yaml"

include: "workflow/lib/dvc_stages.py"

try:
    PARAMS = params_from_dict(config)  # schema check: unknown keys, missing keys and wrong types stop here
except ConfigError as exc:
    raise WorkflowError(f"invalid parameters (params.yaml + --configfile overrides): {exc}") from None

PARAMS_FILE = write_params_file(config)
STAGES = read_dvc_stages("dvc.yaml", config)
PARAMS_STAMPS = write_params_stamps(STAGES, config)

SPLITS = ["train", "valid", "test"]
SHARDS = [f"{i:05d}" for i in range(PARAMS.prepare.num_shards)]
SHARDS_DIR = "data/shards"
MANIFEST = f"{SHARDS_DIR}/manifest.json"
SHARD_FILES = expand(SHARDS_DIR + "/{split}/part-{shard}.parquet", split=SPLITS, shard=SHARDS)
TOKENS_DIR = "data/tokens"
TOKEN_CORPORA = [PARAMS.tokenize.corpus_name, *(c.name for c in PARAMS.tokenize.corpora)]
# What a dep on the shard folder means here: the files the prepare jobs write into it.
BUILT_FILE_BY_FILE = {SHARDS_DIR: [MANIFEST, *SHARD_FILES]}
# `dvc repro` gives each stage every core the process may use (its affinity: `taskset`, a SLURM allocation),
# and so does this; locally Snakemake scales it down to --cores. On a cluster, profiles/slurm sets every rule's
# threads. (os.cpu_count() here gave the stages more threads than DVC's under `taskset`: other outputs.)
ALL_CORES = available_cpus()

wildcard_constraints:
    shard=r"\d{5}",

localrules: all  # only collects; never worth a cluster job


def stage_inputs(name):
    return [*snakemake_inputs(STAGES[name], BUILT_FILE_BY_FILE), PARAMS_STAMPS[name]]


def stage_outputs(name, drop=()):
    return snakemake_outputs(STAGES[name], directory, drop)


def stage_params(name):
    return snakemake_params(STAGES[name], config)


def stage_shell(name, prefix="", suffix=""):
    return snakemake_shell(STAGES[name].cmd, params_file=PARAMS_FILE, prefix=prefix, suffix=suffix)


rule synth:
    input: stage_inputs("synth")
    output: stage_outputs("synth")
    params: **stage_params("synth")
    threads: ALL_CORES
    shell: stage_shell("synth")


# `dvc repro` prepares every shard in one process; here each shard is its own job (a cluster fans them out).
rule prepare_shard:
    input: stage_inputs("prepare")
    output:
        expand(SHARDS_DIR + "/{split}/part-{{shard}}.parquet", split=SPLITS),
        SHARDS_DIR + "/parts/part-{shard}.json",
    params: **stage_params("prepare")
    threads: ALL_CORES
    shell: stage_shell("prepare", suffix=" --shard {wildcards.shard}")


rule prepare:
    input:
        SHARD_FILES,
        expand(SHARDS_DIR + "/parts/part-{shard}.json", shard=SHARDS),
    output:
        MANIFEST,
        stage_outputs("prepare", drop=(SHARDS_DIR,)),
    params: **stage_params("prepare")
    shell: stage_shell("prepare", suffix=" --merge")


rule seed_codebooks:
    input: stage_inputs("seed_codebooks")
    output: stage_outputs("seed_codebooks")
    params: **stage_params("seed_codebooks")
    threads: ALL_CORES
    resources:
        mem_mb=8000,
        runtime=60,
    shell: stage_shell("seed_codebooks")


rule train:
    input: stage_inputs("train")
    output: stage_outputs("train")
    params: **stage_params("train")
    threads: ALL_CORES
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=360,
    shell: stage_shell("train", prefix="TELUCODEC_GPUS={resources.gpu} ")


rule export:
    input: stage_inputs("export")
    output: stage_outputs("export")
    params: **stage_params("export")
    shell: stage_shell("export")


# Like prepare: `dvc repro` tokenizes every shard in one process pool; here each shard is its own job.
rule tokenize_shard:
    input: stage_inputs("tokenize")
    output:
        expand(TOKENS_DIR + "/{corpus}/{split}/part-{{shard}}.parquet", corpus=TOKEN_CORPORA, split=SPLITS),
        TOKENS_DIR + "/parts/part-{shard}.json",
    params: **stage_params("tokenize")
    threads: 1  # one core a shard: `--cores N` runs N shard jobs side by side (benchmarks/tokenize_speed.py)
    shell: stage_shell("tokenize", suffix=" --shard {wildcards.shard} --threads {threads}")


rule tokenize:
    input:
        expand(TOKENS_DIR + "/{corpus}/{split}/part-{shard}.parquet", corpus=TOKEN_CORPORA, split=SPLITS, shard=SHARDS),
        expand(TOKENS_DIR + "/parts/part-{shard}.json", shard=SHARDS),
    output:
        TOKENS_DIR + "/manifest.json",
        stage_outputs("tokenize", drop=(TOKENS_DIR,)),
    params: **stage_params("tokenize")
    shell: stage_shell("tokenize", suffix=" --merge")


rule evaluate:
    input: stage_inputs("evaluate")
    output: stage_outputs("evaluate")
    params: **stage_params("evaluate")
    threads: ALL_CORES
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    shell: stage_shell("evaluate")


rule all:
    default_target: True
    input: [getattr(rules, name).output for name in STAGES]
