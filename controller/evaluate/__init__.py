"""evaluate stage: measured samples + the compiled policy -> verdicts, error budgets, ranking, reports.

:mod:`engine` judges each journey per segment, :mod:`measures` computes the
measures per window and per segment, :mod:`slo` the error budgets and
burn-rate alerts, :mod:`report` and :mod:`html` the outputs.
"""
