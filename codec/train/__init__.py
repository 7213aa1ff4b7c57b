"""Training: the loop (``loop.train``), checkpoints and their fingerprint, schedule, validation, DDP plumbing, and
the k-means seeding of the codebooks before it (``seeding``).
"""
