"""The schema's address reader (controller.spec.types._ip_address) reads dotted quads itself: it must accept,
refuse and return exactly what ipaddress.ip_address does, for any text."""

from __future__ import annotations

import ipaddress

from hypothesis import example, given, settings
from hypothesis import strategies as st

from controller.spec import types

OCTETS = st.one_of(
    st.integers(0, 300).map(str),
    st.text("0123456789", min_size=0, max_size=4),  # leading zeros, empty and long octets
    st.sampled_from(["\u0661", "\uff11", "+1", "-0", " 1", "1 ", "0x1"]),  # non-ASCII digits, signs, spaces
)
QUADS = st.lists(OCTETS, min_size=1, max_size=6).map(".".join)
ADDRESSES = st.ip_addresses().map(str)


def _same(text: str) -> None:
    try:
        expected: object = ipaddress.ip_address(text)
    except ValueError:
        expected = ValueError
    try:
        got: object = types._ip_address(text)
    except ValueError:
        got = ValueError
    assert type(got) is type(expected)
    assert got == expected
    if expected is not ValueError:
        assert str(got) == str(expected) and hash(got) == hash(expected)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(QUADS, ADDRESSES, st.text("0123456789.:abcdefABCDEF%/", max_size=20)))
@example("0.0.0.0")
@example("255.255.255.255")
@example("256.1.1.1")
@example("01.1.1.1")
@example("1.1.1.1\n")
@example("::ffff:1.2.3.4")
def test_ip_address_is_ipaddress(text: str) -> None:
    _same(text)


@given(ADDRESSES)
def test_parse_address_verdicts_unchanged(text: str) -> None:
    """Through the schema's validator: the same address back, or a refusal for the same addresses."""
    addr = ipaddress.ip_address(text)
    refused = addr.is_unspecified or addr.is_loopback or addr.is_multicast
    try:
        got = types._parse_address(text)
    except types.SpecValueError:
        assert refused
    else:
        assert not refused and got == addr and type(got) is type(addr)
