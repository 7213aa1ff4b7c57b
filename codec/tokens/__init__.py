"""Corpus to codes: tokenizing corpora with an exported codec (``corpus``) and code statistics (``stats``)."""
