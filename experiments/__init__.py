"""Experiment drivers: the pipeline's own stages run on a corpus outside DVC and Snakemake (recipe budget, scaling
curve, convergence, GPU check), as ``python -m experiments.<name>`` from the checkout's root. The speed benchmarks
are in ``benchmarks/``."""
