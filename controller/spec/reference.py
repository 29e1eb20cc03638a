"""Markdown reference of the policy language, generated from the spec models.

Like the JSON Schema, the reference is never written by hand:
``python -m controller.spec.reference > docs/policy-reference.md``; a test keeps
the committed file current.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from controller.spec import lab, v1
from controller.spec import types as t

ALIASES: dict[Any, str] = {
    t.Name: "name",
    t.InterfaceName: "interface name",
    t.Host: "host name or address",
    t.EnvVarName: "environment variable name",
    t.FilePath: "file path",
    t.FreeText: "text",
    t.Description: "text (may span lines)",
    t.Dscp: "DSCP (ef, af41, cs1, le, default or 0-63)",
    t.PortRange: "port or range `low-high`",
    t.Prefix: "IP prefix",
    v1.UtcTime: "UTC time `YYYY-MM-DDThh:mm:ssZ`",
}

ROOTS: tuple[type[BaseModel], ...] = (
    v1.JourneyDoc,
    v1.InventoryDoc,
    v1.ServiceClassesDoc,
    v1.SettingsDoc,
    v1.AdjustmentsDoc,
    lab.LabDoc,  # a Lab file (qoectl lab), not a policy document
)


def _type_name(annotation: Any) -> str:
    for alias, text in ALIASES.items():
        if annotation == alias:
            return text
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map {_type_name(args[0])} -> {_type_name(args[1])}"
    if origin is typing.Literal:
        return " / ".join(f"`{a}`" for a in args)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation))


PATTERNS = {
    t.NAME_PATTERN: "name",
    t.INTERFACE_PATTERN: "interface name",
    t.HOST_PATTERN: "host name or address",
    t.ENV_PATTERN: "environment variable name",
    t.FILE_PATTERN: "file path",
    v1.TIME_PATTERN: "UTC time `YYYY-MM-DDThh:mm:ssZ`",
}


def _field_type(info: FieldInfo) -> str:
    """Top-level ``Annotated`` aliases are flattened by pydantic: recognise them by their metadata."""
    for meta in info.metadata:
        if meta is v1.RegisteredPlatform:
            return v1.RegisteredPlatform.reference_text()
        pattern = getattr(meta, "pattern", None)
        if pattern in PATTERNS:
            return PATTERNS[pattern]
        func = getattr(getattr(meta, "func", None), "__name__", "")
        if func == "_parse_dscp":
            return ALIASES[t.Dscp]
        if func == "_parse_prefix":
            return ALIASES[t.Prefix]
    return _type_name(info.annotation)


def _models(root: type[BaseModel], seen: dict[str, type[BaseModel]]) -> None:
    if root.__name__ in seen:
        return
    seen[root.__name__] = root
    for info in root.model_fields.values():
        stack = [info.annotation]
        while stack:
            ann = stack.pop()
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                _models(ann, seen)
            stack.extend(typing.get_args(ann))


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    if info.default_factory is not None:
        return "empty"
    if info.default is PydanticUndefined or info.default is None:
        return "-"
    return f"`{info.default}`"


def _description(info: FieldInfo) -> str:
    if info.description:
        return info.description
    for meta in typing.get_args(info.annotation) if typing.get_origin(info.annotation) is typing.Annotated else ():
        if isinstance(meta, FieldInfo) and meta.description:
            return meta.description
    bounds = [f"{k} {getattr(m, k)}" for m in info.metadata for k in ("ge", "gt", "le", "lt") if hasattr(m, k)]
    return ", ".join(bounds)


def reference() -> str:
    seen: dict[str, type[BaseModel]] = {}
    for root in ROOTS:
        _models(root, seen)
    lines = [
        "# Policy language reference (`qoectl/v1`)",
        "",
        "Generated from `controller/spec/v1.py` (Lab files: `controller/spec/lab.py`) by "
        "`python -m controller.spec.reference`; do not edit.",
        "Unknown keys are errors. Names that reach device configs allow only letters, digits, `-`, `_`, `.`.",
        "",
    ]
    for name, model in seen.items():
        lines += [f"## {name}", ""]
        doc = (model.__doc__ or "").strip().splitlines()
        if doc and not doc[0].startswith("!!!"):
            lines += [doc[0], ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, info in model.model_fields.items():
            meaning = _description(info).replace("|", "\\|")
            lines.append(f"| `{info.alias or key}` | {_field_type(info)} | {_default(info)} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(reference(), end="")
