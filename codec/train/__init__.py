"""Training stage of the codec: config, streaming crop data, checkpoints, schedule and the loop.

Entry point: :func:`codec.train.loop.train` (re-exported here).
"""

from codec.lazy import lazy_exports
from codec.train.config import OptimizerConfig, ScheduleConfig, TrainConfig

# The torch modules load on first use, so that pipeline.params (every stage CLI, the Snakefile at
# parse time) can import TrainConfig without importing torch (see codec.lazy).
_LAZY = {
    "CheckpointError": "codec.train.checkpoint",
    "MetricsLogger": "codec.train.loop",
    "TrainResult": "codec.train.loop",
    "TrainingDiverged": "codec.train.loop",
    "train": "codec.train.loop",
    "WeightsError": "codec.weights",
    "load_codec": "codec.weights",
    "save_codec_weights": "codec.weights",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = ["OptimizerConfig", "ScheduleConfig", "TrainConfig", *_LAZY]
