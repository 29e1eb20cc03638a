"""Moved to :mod:`controller.plan` (a leaf that compile, render and apply share); kept for old imports."""

from controller.plan import DevicePlan as DevicePlan
