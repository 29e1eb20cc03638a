"""JSON Schema generated from the spec models (never written by hand).

Standard JSON Schema validators (editors through yaml-language-server,
``check-jsonschema`` in CI) must mean what ``qoectl validate`` means for a single
document. So the document's model is selected by ``kind`` with ``if``/``then``
(an OpenAPI ``discriminator`` is ignored by them, and a plain ``oneOf`` reports
the other kinds' errors), and the models' own rules travel along as
``json_schema_extra`` (see :mod:`controller.spec.rules`). ``$comment`` lists the
rules JSON Schema cannot state; tests/test_schema_corpus.py holds both to it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import models_json_schema

from controller.spec import lab, v1

# Every kind a qoectl/v1 file may hold: the policy kinds, and Lab (read by `qoectl lab`, never part of a policy).
SCHEMA_MODELS: dict[str, type[v1.Strict]] = {**v1.DOC_MODELS, "Lab": lab.LabDoc}

NOT_EXPRESSED = (
    "Checked by qoectl validate only (JSON Schema cannot state them): a prefix's host bits are zero; "
    "a gateway is not an unspecified, loopback or multicast address; "
    "a port range has low <= high; verify.period is at least verify.window; "
    "bandwidth_kbps is at most port_speed_kbps; min_kbps <= bandwidth_kbps <= max_kbps <= port_speed_kbps; "
    "loop.min_kbps is at most loop.max_kbps; an adjustment's time is a real date; "
    "a whole number is not written as 2.0; "
    "and every rule across documents (names that refer to each other, capacity, platform support); "
    "in a Lab file: names that refer to its hosts, routers and generators, IPv4 prefixes inside 198.18.0.0/15 "
    "that do not overlap, receivers on one host on ports of their own."
)


def _name_keys(node: Any) -> None:
    """Give ``propertyNames`` the key pattern of ``patternProperties`` (pydantic leaves other keys allowed)."""
    if isinstance(node, dict):
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in node:
            node.setdefault("propertyNames", {})["pattern"] = next(iter(patterns))
        for value in node.values():
            _name_keys(value)
    elif isinstance(node, list):
        for value in node:
            _name_keys(value)


def json_schema() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(model, "validation") for model in SCHEMA_MODELS.values()], ref_template="#/$defs/{model}"
    )
    _name_keys(defs)
    kinds = list(SCHEMA_MODELS)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://qoectl.dev/schema/qoectl-v1.schema.json",
        "title": "qoectl/v1 document: a policy document (Journey, Inventory, ServiceClasses, Settings or "
        "Adjustments) or a Lab file",
        "$comment": NOT_EXPRESSED,
        "type": "object",
        "required": ["apiVersion", "kind"],
        "properties": {"apiVersion": {"const": v1.API_VERSION}, "kind": {"enum": kinds}},
        "allOf": [
            {
                "if": {"required": ["kind"], "properties": {"kind": {"const": kind}}},
                "then": {"$ref": f"#/$defs/{model.__name__}"},
            }
            for kind, model in SCHEMA_MODELS.items()
        ],
        **defs,
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
