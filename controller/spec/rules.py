"""JSON Schema forms of the spec models' own rules (their ``model_validator`` methods).

A model states each rule twice, side by side: in Python for ``qoectl validate``
(with a message and a hint) and, through ``json_schema_extra``, in JSON Schema
for editors and standard validators. A value of ``null`` counts as not given,
as it does for the models.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def given(*keys: str) -> Schema:
    """Every key is present and not null."""
    return {"required": list(keys), "properties": {k: {"not": {"type": "null"}} for k in keys}}


def absent(*keys: str) -> Schema:
    """No key has a value (missing or null); an error names the key that has one."""
    return {"properties": {k: {"type": "null"} for k in keys}}


def nonempty(key: str) -> Schema:
    """The list ``key`` is present and has items."""
    return {"required": [key], "properties": {key: {"type": "array", "minItems": 1}}}


def equals(key: str, value: Any) -> Schema:
    return {"required": [key], "properties": {key: {"const": value}}}


def when(condition: Schema, then: Schema) -> Schema:
    return {"if": condition, "then": then}


def rules(*schemas: Schema) -> dict[str, Any]:
    """``json_schema_extra`` for a model: every schema must hold."""
    return {"allOf": list(schemas)}
