"""Residual vector quantization with EMA codebooks (see core_vq.py)."""
