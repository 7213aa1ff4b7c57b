"""Training objectives: the codec's reconstruction, commitment and adversarial losses, and the discriminators."""
