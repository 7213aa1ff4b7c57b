"""TeluCodec: a neural speech codec library (data, quantizer, model, training, metrics).

This package never reads YAML, DVC or Snakemake state: the thin stage scripts in
``pipeline/`` parse ``params.yaml`` and pass typed configs in. Its version is the distribution's
(``importlib.metadata.version("telucodec")``, from pyproject.toml).
"""
