"""The evaluation stage's library: score the codec at several bitrates against an Opus baseline.

Modules: ``config`` (EvaluateConfig), ``sets`` (test split and extra corpora), ``opus`` (the
opusenc/opusdec round trip), ``scoring`` (codec runs, metrics per utterance, timing), ``summary``
(means and the metrics.json layout), ``figures`` / ``html`` / ``report`` (the written report),
``run`` (the whole evaluation). Metric definitions live in :mod:`codec.metrics`.
"""

from codec.evaluation.config import EvaluateConfig, ExtraCorpus
from codec.evaluation.sets import EvaluationError

__all__ = ["EvaluateConfig", "EvaluationError", "ExtraCorpus"]
