"""Export: the compiled policy's SLOs for the tools people already watch (Prometheus rules, Grafana dashboards).

A stage after validate and compile: it reads the :class:`controller.pipeline.Build` (journeys, their verify
settings and derived budgets), never the raw YAML, and judges with the objective, windows and burn-rate factors
of :mod:`controller.evaluate.slo`, so the alerts say what ``qoectl verify`` says.
"""
