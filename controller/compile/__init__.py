"""Compile: policy -> budgets per journey and a frozen plan per device.

The names below are compile's public API: what later stages (validate, the
loop's adjustments) may use of the compiler's rules. Its modules are internal:
``lint-imports`` refuses ``controller.validate`` importing them directly.
"""

from controller.compile.adjustments import Adjusted, strict_class
from controller.compile.budgets import Budget
from controller.compile.compiler import NETWORK_CONTROL, class_name_for, ident, in_scope, marking_dscp
from controller.compile.scope import ScopeKey, Scopes

__all__ = [
    "NETWORK_CONTROL",
    "Adjusted",
    "Budget",
    "ScopeKey",
    "Scopes",
    "class_name_for",
    "ident",
    "in_scope",
    "marking_dscp",
    "strict_class",
]
