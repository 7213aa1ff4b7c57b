"""The evaluation stage's library: score the codec at several bitrates against an Opus baseline.

Modules: ``sets`` (test split and extra corpora), ``opus`` (the opusenc/opusdec round trip), ``scoring``
(codec runs, metrics per utterance, timing), ``dnsmos`` (no-reference scores), ``spectrum`` (artefact check),
``summary`` (means and the headline scores), ``figures`` / ``html`` / ``report`` (the written report), ``run``
(the whole evaluation). Metric definitions live in :mod:`codec.dsp.metrics`, settings in
:mod:`codec.config.evaluate`.
"""
