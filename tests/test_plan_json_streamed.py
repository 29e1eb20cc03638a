"""``qoectl plan --json`` is written one device at a time (:func:`controller.cli.plan_report.json_streamed`).

The pieces must join to exactly what ``json.dumps(..., indent=2, sort_keys=True)`` writes for the whole
document, whatever the values (nested, unicode, newlines and quotes inside strings, empty lists).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.cli.plan_report import json_streamed

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    head=st.dictionaries(st.text(max_size=8).filter(lambda k: k != "devices"), values, max_size=4),
    items=st.lists(values, max_size=5),
)
def test_the_pieces_are_json_dumps_of_the_whole(head: dict[str, Any], items: list[Any]) -> None:
    whole = json.dumps({**head, "devices": items}, indent=2, sort_keys=True, default=str)
    assert "".join(json_streamed(head, "devices", iter(items))) == whole
