"""Files the codec reads and writes: weights (safetensors + config), the export, and the `.tcq` bitstream."""
