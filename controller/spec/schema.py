"""JSON Schema generated from the spec models (never written by hand)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from controller.spec import v1


def json_schema() -> dict[str, Any]:
    schema = TypeAdapter(v1.AnyDoc).json_schema(ref_template="#/$defs/{model}")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://qoectl.dev/schema/qoectl-v1.schema.json"
    schema["title"] = "qoectl/v1 policy document (Journey, Inventory, ServiceClasses or Settings)"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
