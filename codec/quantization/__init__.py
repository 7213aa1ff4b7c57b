"""Residual vector quantization with EMA codebooks (``core_vq``), its DDP statistics (``distributed``) and k-means
seeding (``kmeans``).
"""
