"""Signal measures shared by the losses, validation and evaluation: STFT and mel spectra, quality metrics."""
