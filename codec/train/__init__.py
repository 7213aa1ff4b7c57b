"""Training stage of the codec: config, streaming crop data, checkpoints, schedule and the loop.

Entry point: :func:`codec.train.loop.train` (re-exported here).
"""

from codec.train.checkpoint import CheckpointError
from codec.train.config import OptimizerConfig, ScheduleConfig, TrainConfig
from codec.train.loop import MetricsLogger, TrainingDiverged, TrainResult, train
from codec.weights import WeightsError, load_codec, save_codec_weights

__all__ = ["CheckpointError", "MetricsLogger", "OptimizerConfig", "ScheduleConfig", "TrainConfig",
           "TrainResult", "TrainingDiverged", "WeightsError", "load_codec", "save_codec_weights", "train"]
