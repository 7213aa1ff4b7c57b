import subprocess
import sys

import yaml

from pipeline.params import load_params, params_from_dict


def test_repo_params_yaml_is_valid(repo_root):
    params = load_params(f"{repo_root}/params.yaml")
    assert params.sample_rate > 0
    assert params.quantizer.codebook_size > 1


def test_unknown_key_exits_with_its_path(tmp_path, repo_root):
    data = yaml.safe_load(open(f"{repo_root}/params.yaml", encoding="utf-8"))
    data["quantizer"]["decayy"] = 0.5
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    code = f"from pipeline.params import load_params; load_params({str(bad)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root)
    assert proc.returncode != 0
    assert "params.quantizer" in proc.stderr and "decayy" in proc.stderr


def test_wrong_type_is_rejected(repo_root):
    data = yaml.safe_load(open(f"{repo_root}/params.yaml", encoding="utf-8"))
    data["seed"] = "abc"
    try:
        params_from_dict(data)
    except ValueError as exc:
        assert "params.seed" in str(exc)
    else:
        raise AssertionError("a string seed was accepted")


def test_import_loads_neither_torch_nor_sklearn(repo_root):
    # Every stage CLI and the Snakefile (at parse time) import pipeline.params: reading params.yaml
    # must not cost the seconds torch and scikit-learn take to import.
    code = "import sys, pipeline.params; print(' '.join(m for m in ('torch', 'sklearn') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []
