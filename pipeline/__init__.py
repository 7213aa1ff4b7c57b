"""Thin stage entry points: ``python -m pipeline.<stage>``. Each parses its arguments,
loads the typed parameters from ``params.yaml`` and calls one library function."""
