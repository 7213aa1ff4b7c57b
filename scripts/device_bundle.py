"""Make the folder a GPU machine without internet needs to run experiments/gpu_check.sh on a real corpus.

    python scripts/device_bundle.py --out .gpu --corpus ../shared/corpora/chai-bisket-te \
        [--corpus-mb 30] [--python 3.12 --build-python python3.12] [--no-opus]

It writes, under ``--out`` (keep it out of git: e.g. in ``.git/info/exclude``):

- ``wheels/``: the packages the stages import that a PyTorch image lacks (soundfile, soxr, pesq, pystoi,
  constriction, dvclive and what ``dvclive.Live`` imports), at the versions in ``requirements.lock``, for the
  machine's Python (``--python``). pesq has no wheel on PyPI: it is built with ``--build-python``, an
  interpreter of that version (pyenv's will do).
- ``corpus/<name>/``: the ULCA corpus as lossless FLAC (decoded samples identical, about 60% of the WAVs). When
  it is larger than ``--corpus-mb``, train files are left out in a seeded order until it fits; every record stays
  in ``data.json``, so ``prepare`` assigns the very same splits (from the stated durations) and lists the files
  left out as missing. ``left-out.txt`` names them.
- ``bin/opusenc``, ``bin/opusdec``: opus-tools from this machine's Debian packages, unpacked with their
  libraries, for the Opus baseline (``--no-opus`` skips it; needs ``apt-get download``).

A device call carries the folder and runs ``experiments/gpu_check.sh --bundle .gpu --corpus .gpu/corpus/<name>``.
The whole working tree travels (64 MiB on this project's GPU lease): the checkout itself is about 25 MB, the
wheels and tools about 7 MB, hence the default of 30 MB of corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What the stages import beyond a PyTorch image (KINDS.md's package list), and what `dvclive.Live` imports
# inside a DVC repository (found by importing it in a bare interpreter until nothing was missing).
PACKAGES = [
    "soundfile", "soxr", "pesq", "pystoi", "constriction", "cffi",
    "dvclive", "dvc", "dvc-data", "dvc-http", "dvc-objects", "dvc-render", "dvc-studio-client",
    "atpublic", "configobj", "diskcache", "dpath", "dulwich", "flatten-dict", "flufl.lock", "funcy", "orjson",
    "platformdirs", "pygtrie", "ruamel.yaml", "scmrepo", "sqltrie", "voluptuous", "wcwidth", "zc.lockfile",
]  # fmt: skip
BUILT_HERE = {"pesq"}  # sdist only on PyPI
PLATFORMS = ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_27_x86_64", "manylinux_2_28_x86_64"]
OPUS_DEBS = ["opus-tools", "libopusenc0", "libopusfile0", "libopus0", "libflac12", "libogg0"]


def locked_versions(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def fetch_wheels(out: Path, python: str, build_python: str | None) -> None:
    pins = locked_versions(ROOT / "requirements.lock")
    missing = [p for p in PACKAGES if p.lower() not in pins]
    if missing:
        raise SystemExit(f"error: not in requirements.lock: {missing}")
    out.mkdir(parents=True, exist_ok=True)
    binary = [f"{p}=={pins[p.lower()]}" for p in PACKAGES if p not in BUILT_HERE]
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(out)]
    subprocess.run([*pip, "--python-version", python, "--implementation", "cp", *platforms, *binary], check=True)
    for name in sorted(BUILT_HERE):
        if build_python is None:
            raise SystemExit(f"error: {name} has no wheel on PyPI: give --build-python (a Python {python})")
        version = subprocess.run(
            [build_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if version != python:
            raise SystemExit(f"error: --build-python is Python {version}, the machine's is {python}")
        # Its build needs numpy and Cython: a scratch environment of that interpreter holds them.
        with tempfile.TemporaryDirectory() as tmp:
            env = Path(tmp) / "env"
            subprocess.run([build_python, "-m", "venv", str(env)], check=True)
            subprocess.run([env / "bin" / "pip", "install", "-q", "numpy", "cython", "setuptools", "wheel"], check=True)
            subprocess.run(
                [env / "bin" / "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out)]
                + [f"{name}=={pins[name]}"],
                check=True,
            )


def flac_corpus(src: Path, out: Path, max_bytes: int, valid: float, test: float, seed: int) -> list[str]:
    """The ULCA corpus ``src`` as FLAC in ``out``, train files left out until it fits; returns their ids."""
    import numpy as np
    import soundfile as sf

    from codec.data.corpora.ulca import read
    from codec.data.splits import assign_splits

    records = json.loads((src / "data.json").read_text())
    utterances = {u.id: u for u in read(src)}
    splits = assign_splits(utterances.values(), valid, test)
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for record in records:
        name = Path(record["audioFilename"])
        audio, rate = sf.read(src / name, dtype="int16")
        target = out / name.with_suffix(".flac")
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, audio, rate, format="FLAC", subtype="PCM_16", compression_level=1.0)
        if not np.array_equal(sf.read(target, dtype="int16")[0], audio):
            raise SystemExit(f"error: {target}: FLAC round trip differs")
        record["audioFilename"] = name.with_suffix(".flac").as_posix()
        sizes[str(name.with_suffix(""))] = target.stat().st_size
    left_out: list[str] = []
    train = sorted(i for i in sizes if splits[i] == "train")
    random.Random(seed).shuffle(train)
    total = sum(sizes.values())
    for utterance_id in train:
        if total <= max_bytes:
            break
        (out / f"{utterance_id}.flac").unlink()
        total -= sizes[utterance_id]
        left_out.append(utterance_id)
    if total > max_bytes:
        raise SystemExit(f"error: valid and test alone take {total / 1e6:.1f} MB, over --corpus-mb")
    params = json.loads((src / "params.json").read_text())
    (out / "params.json").write_text(json.dumps({**params, "format": "flac"}, indent=1) + "\n")
    (out / "data.json").write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n")
    print(f"corpus: {len(sizes) - len(left_out)} of {len(sizes)} files, {total / 1e6:.1f} MB as FLAC")
    return left_out


def opus_tools(out: Path) -> None:
    """opus-tools and its libraries from Debian packages, with wrappers that point the loader at them."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", *OPUS_DEBS], check=True, cwd=tmp, stdout=subprocess.DEVNULL)
        unpacked = Path(tmp) / "root"
        for deb in Path(tmp).glob("*.deb"):
            subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True)
        lib, bin_ = out / "opus" / "lib", out / "bin"
        lib.mkdir(parents=True, exist_ok=True)
        bin_.mkdir(parents=True, exist_ok=True)
        # Links become plain copies under their sonames: a link does not always travel.
        for so in (unpacked / "usr" / "lib" / "x86_64-linux-gnu").glob("*.so.[0-9]*"):
            if so.name.count(".") == 2:  # libopus.so.0: the soname the programs ask for
                shutil.copyfile(so.resolve(), lib / so.name)
        for tool in ("opusenc", "opusdec"):
            shutil.copyfile(unpacked / "usr" / "bin" / tool, out / "opus" / tool)
            os.chmod(out / "opus" / tool, 0o755)
            wrapper = bin_ / tool
            wrapper.write_text(
                "#!/bin/sh\n"
                "# opus-tools from Debian packages (scripts/device_bundle.py): its libraries for it alone.\n"
                'D=$(dirname "$(readlink -f "$0")")/../opus\n'
                f'LD_LIBRARY_PATH="$D/lib" exec "$D/{tool}" "$@"\n'
            )
            wrapper.chmod(0o755)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu")
    parser.add_argument("--corpus", type=Path, help="a ULCA corpus to carry (none: wheels and tools only)")
    parser.add_argument("--corpus-mb", type=float, default=30.0, help="most MB of FLAC to carry")
    parser.add_argument("--python", default="3.12", help="the GPU machine's Python version")
    parser.add_argument("--build-python", help="an interpreter of that version, to build pesq")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="for prepare.split and seed")
    parser.add_argument("--no-opus", action="store_true")
    args = parser.parse_args()
    fetch_wheels(args.out / "wheels", args.python, args.build_python)
    if not args.no_opus:
        opus_tools(args.out)
    if args.corpus is not None:
        from pipeline.params import load_params

        params = load_params(args.params)
        split = params.prepare.split
        corpus = args.out / "corpus" / args.corpus.resolve().name
        left = flac_corpus(args.corpus, corpus, int(args.corpus_mb * 1e6), split.valid, split.test, params.seed)
        (args.out / "left-out.txt").write_text("".join(f"{i}\n" for i in left))
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {args.out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
