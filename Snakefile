# Snakemake twin of dvc.yaml: the same stages, commands, inputs and outputs, and params.yaml
# as the single source of parameters (validated before any job runs).
#   snakemake --cores 2                              # everything, locally
#   snakemake --cores 2 --configfile my-params.yaml  # with parameters overridden

from pipeline.params import params_from_dict

configfile: "params.yaml"

PARAMS = params_from_dict(config)  # schema check: unknown keys and wrong types stop here
SPLITS = ["train", "valid", "test"]
SHARDS = [f"{i:05d}" for i in range(PARAMS.prepare.num_shards)]
SHARD_FILES = expand("data/shards/{split}/part-{shard}.parquet", split=SPLITS, shard=SHARDS)

wildcard_constraints:
    shard=r"\d{5}",

rule all:
    input:
        "models/telucodec.safetensors",
        "reports/metrics.json",

rule synth:
    input:
        "pipeline/synth.py",
        "codec/synth.py",
        "codec/espeak.py",
        config["synth"]["sentences"],
    output:
        directory("data/corpus"),
    params:
        seed=config["seed"],
        synth=config["synth"],
    shell:
        "python -m pipeline.synth --out data/corpus"

# `dvc repro` runs every shard in one process; here each shard is its own job (a cluster fans them out).
rule prepare_shard:
    input:
        corpus=config["prepare"]["corpus"],
        code=["pipeline/prepare.py", "codec/audio.py", "codec/corpora", "codec/splits.py", "codec/shards.py",
              "codec/prepare.py"],
    output:
        expand("data/shards/{split}/part-{{shard}}.parquet", split=SPLITS),
        "data/shards/parts/part-{shard}.json",
    params:
        sample_rate=config["sample_rate"],
        prepare=config["prepare"],
    threads: workflow.cores
    shell:
        "python -m pipeline.prepare --corpus-dir {input.corpus} --out data/shards --shard {wildcards.shard}"

rule prepare:
    input:
        SHARD_FILES,
        expand("data/shards/parts/part-{shard}.json", shard=SHARDS),
    output:
        "data/shards/manifest.json",
        "reports/data/stats.json",
        "reports/data/rejected.csv",
    params:
        sample_rate=config["sample_rate"],
        prepare=config["prepare"],
    shell:
        "python -m pipeline.prepare --corpus-dir {config[prepare][corpus]} --out data/shards --merge"
        " --stats reports/data/stats.json --rejected reports/data/rejected.csv"

rule seed_codebooks:
    input:
        "data/shards/manifest.json",
        SHARD_FILES,
        "pipeline/seed_codebooks.py",
        "codec/seeding.py",
        "codec/model",
        "codec/quantization",
    output:
        "models/seed.safetensors",
        "reports/seed_codebooks.json",
    params:
        seed=config["seed"],
        sample_rate=config["sample_rate"],
        model=config["model"],
        quantizer=config["quantizer"],
        seed_codebooks=config["seed_codebooks"],
    shell:
        "python -m pipeline.seed_codebooks --shards data/shards --out models/seed.safetensors"
        " --metrics reports/seed_codebooks.json"


rule train:
    input:
        "data/shards/manifest.json",
        SHARD_FILES,
        "models/seed.safetensors",
        "pipeline/train.py",
        "codec/train",
        "codec/model",
        "codec/quantization",
        "codec/losses.py",
        "codec/mel.py",
        "codec/discriminator.py",
        "codec/metrics.py",
    # models/checkpoints is not an output: Snakemake deletes a job's outputs before it runs, and the
    # folder must survive so a re-run resumes (dvc.yaml declares it `persist: true` for the same reason).
    output:
        "models/codec.safetensors",
        "reports/train/metrics.json",
        "reports/train/summary.json",
        directory("reports/train/plots/metrics"),
    params:
        seed=config["seed"],
        train=config["train"],
        loss=config["loss"],
    shell:
        "python -m pipeline.train --shards data/shards --init models/seed.safetensors"
        " --checkpoints models/checkpoints --out models/codec.safetensors --live reports/train"


rule export:
    input:
        "models/codec.safetensors",
        "pipeline/export.py",
        "codec/export.py",
        "codec/bitstream.py",
        "codec/train/weights.py",
    output:
        "models/telucodec.safetensors",
        "reports/export.json",
    params:
        export=config["export"],
    shell:
        "python -m pipeline.export --model models/codec.safetensors --out models/telucodec.safetensors"
        " --metrics reports/export.json"


rule evaluate:
    input:
        "models/codec.safetensors",
        "data/shards/manifest.json",
        SHARD_FILES,
        "pipeline/evaluate.py",
        "codec/evaluation",
        "codec/metrics.py",
    output:
        directory("reports/eval"),
        "reports/index.html",
        "reports/metrics.json",
        directory("reports/rate_distortion"),
    params:
        evaluate=config["evaluate"],
    shell:
        "python -m pipeline.evaluate --model models/codec.safetensors --shards data/shards"
        " --metrics reports/metrics.json --plots reports/rate_distortion --out-dir reports/eval"
        " --html reports/index.html"
