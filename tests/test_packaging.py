"""The lean install: the distribution without extras gives the library, the CLI and the onnxruntime backend.

pyproject.toml's ``dependencies`` are what ``codec.api`` and ``telucodec`` need; the pipeline, the evaluation stack
and the ONNX writer are extras. Two tests keep it so:

- in ``make test``: the library and the CLI encode and decode with every module of the extras made unimportable
  (the modules are read from the installed distributions, so a dependency moved in pyproject.toml moves the test);
- a workflow check (``make check-lean``, minutes: it installs PyTorch): the wheel built from the checkout, installed
  alone into a fresh virtual environment outside the checkout (pins from requirements.lock), encodes and decodes a
  real clip with the shipped codec through the CLI (PyTorch and onnxruntime backends) and the Python API.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "pretrained" / "telucodec-te" / "telucodec-te.safetensors"
CORPUS = ROOT.parent / "shared" / "corpora" / "chai-bisket-te"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _closure(names: set[str]) -> set[str]:
    """Every distribution that ``names`` pull in (their unconditional requirements, recursively), installed ones."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r]
    return seen


def extras_only_modules() -> list[str]:
    """Top-level modules that only the extras bring: installed by an extra's distribution (or what it pulls in),
    not by the lean dependencies or what they pull in."""
    lean = _closure({_name(r) for r in PROJECT["dependencies"]})
    extras = {_name(r) for name, reqs in PROJECT["optional-dependencies"].items() if name != "all" for r in reqs}
    extra = _closure(extras - {"telucodec"}) - lean
    owners = metadata.packages_distributions()
    return sorted(
        module
        for module, dists in owners.items()
        if module.isidentifier()
        and not module.startswith("_")
        and {d.lower().replace("_", "-") for d in dists} <= extra
        and module not in ("codec", "pipeline", "tests")
    )


def test_the_lean_dependencies_leave_out_the_pipeline_and_the_evaluation_stack():
    lean = {_name(r) for r in PROJECT["dependencies"]}
    assert {"torch", "numpy", "safetensors", "soundfile", "soxr", "constriction", "onnxruntime"} <= lean
    assert not lean & {"dvc", "snakemake", "pyarrow", "scikit-learn", "matplotlib", "librosa", "pesq", "pystoi"}
    modules = extras_only_modules()
    assert {"dvc", "snakemake", "pyarrow", "sklearn", "matplotlib", "librosa", "pesq", "yaml", "onnx"} <= set(modules)


LEAN_RUN = r"""
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # `import name` fails as if it were not installed
import numpy as np, soundfile as sf
from codec.api import TeluCodec
from codec.cli.main import main

model, wav, out = sys.argv[2], sys.argv[3], sys.argv[4]
assert main(["encode", "--model", model, wav, out + "/a.tcq"]) == 0
assert main(["decode", "--model", model, out + "/a.tcq", out + "/a.wav"]) == 0
codec = TeluCodec.load(model)
audio, rate = sf.read(wav, dtype="float32")
codes = codec.encode(audio, rate, levels=6)
decoded = codec.decode(codes)
print(codes.shape[0], decoded.shape[-1], sf.info(out + "/a.wav").frames)
for name in sys.argv[1].split(","):
    assert sys.modules.get(name) is None, name
"""


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped codec is not in this checkout")
def test_the_library_and_the_cli_run_without_any_module_of_the_extras(tmp_path):
    import numpy as np
    import soundfile as sf

    rate = 16000
    t = np.arange(rate) / rate
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))) / 2, rate)
    banned = extras_only_modules()
    done = subprocess.run(
        [sys.executable, "-c", LEAN_RUN, ",".join(banned), str(SHIPPED), str(tmp_path / "in.wav"), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    levels, samples, written = map(int, done.stdout.split()[-3:])
    assert levels == 6 and samples == written >= rate  # whole frames, at least the input's second


def _clip() -> Path:
    clips = sorted(CORPUS.glob("*.wav"))
    if not clips:
        pytest.skip(f"no real clip: {CORPUS} is not on this machine")
    return clips[0]


@pytest.mark.check
@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped codec is not in this checkout")
def test_the_wheel_alone_in_a_fresh_environment_encodes_and_decodes_a_real_clip(tmp_path):
    clip = _clip()
    source = tmp_path / "source"  # the build's own folders (build/, *.egg-info) stay out of the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("codec", "pipeline"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", wheels, source], check=True)
    (wheel,) = wheels.glob("telucodec-*.whl")
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", env_dir], check=True)
    python = env_dir / "bin" / "python"
    lock = ROOT / "requirements.lock"
    subprocess.run([python, "-m", "pip", "install", "--quiet", "-c", lock, wheel], check=True)
    installed = subprocess.run([python, "-m", "pip", "list", "--format", "json"], capture_output=True, check=True)
    names = sorted(p["name"].lower() for p in json.loads(installed.stdout))
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size / 1e3:.0f} kB; installs {len(names)}: {', '.join(names)}")
    assert not set(names) & {"dvc", "snakemake", "pyarrow", "scikit-learn", "matplotlib", "librosa", "onnx"}

    work = tmp_path / "work"  # outside the checkout: the installed package, not the checkout's
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    cli = env_dir / "bin" / "telucodec"

    def run(*args: str | Path) -> None:
        done = subprocess.run([str(a) for a in args], cwd=work, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]

    run(cli, "encode", "--model", SHIPPED, clip, "a.tcq")
    run(cli, "decode", "--model", SHIPPED, "a.tcq", "a.wav")
    onnx = tmp_path / "graphs"  # written by the checkout's environment (the writer needs the onnx extra)
    writer = "import sys\nfrom codec.cli.main import main\nsys.exit(main(['export-onnx', *sys.argv[1:]]))"
    subprocess.run([sys.executable, "-c", writer, SHIPPED, onnx], check=True, capture_output=True)
    run(cli, "encode", "--model", SHIPPED, "--backend", "onnx", "--onnx", onnx, clip, "b.tcq")
    run(cli, "decode", "--model", SHIPPED, "--backend", "onnx", "--onnx", onnx, "b.tcq", "b.wav")
    api = (
        "import sys, soundfile as sf\nfrom codec.api import TeluCodec\n"
        "codec = TeluCodec.load(sys.argv[1])\naudio, rate = sf.read(sys.argv[2], dtype='float32')\n"
        "codes = codec.encode(audio, rate)\nsf.write('c.wav', codec.decode(codes), codec.sample_rate)\n"
        "import codec as c; assert 'site-packages' in c.__file__, c.__file__\n"
    )
    run(python, "-c", api, SHIPPED, clip)
    import soundfile as sf

    frames = {name: sf.info(work / name).frames for name in ("a.wav", "b.wav", "c.wav")}
    assert frames["a.wav"] == frames["b.wav"] == round(sf.info(clip).duration * 16000), frames
    assert frames["c.wav"] >= frames["a.wav"], frames  # the API decodes whole frames
