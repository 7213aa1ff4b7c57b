"""Speech data: corpus readers, decoding and clean-up, speaker-disjoint splits, Parquet shards, the `synth` and
`prepare` stages, and the random crops training and codebook seeding read.
"""
