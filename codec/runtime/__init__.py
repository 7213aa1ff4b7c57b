"""Process plumbing: atomic file writes, clean exits on signals, usable CPU cores, sharded stage runs."""
