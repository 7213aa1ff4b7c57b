"""Settings: one torch-free module per section of params.yaml, and ``convert`` (plain dicts <-> these dataclasses,
strictly typed). Importing any of them loads neither torch nor scikit-learn.
"""
