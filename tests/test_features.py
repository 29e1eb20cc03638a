"""Binds every scenario in features/ to the shipped step library (controller.testing.bdd_steps)."""

from __future__ import annotations

from pytest_bdd import scenarios

from controller.testing.bdd_steps import *  # noqa: F403 - the steps are fixtures pytest-bdd finds by name

scenarios("voice.feature", "validation.feature")  # relative to bdd_features_base_dir = "features/"
