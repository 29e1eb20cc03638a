"""Testing helpers shipped with qoectl, so policy repositories can test their own policies.

``controller.testing.bdd_steps`` is a pytest-bdd step library written in a
network engineer's words (see docs/bdd-steps.md); ``config_probes`` reads
rendered configs back. Both need the ``test`` extra (pytest, pytest-bdd).
"""
