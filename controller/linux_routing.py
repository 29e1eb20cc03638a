"""What qoectl owns of a Linux SD-WAN edge's policy routing: one byte of the packet mark, a range of
``ip rule`` priorities and a range of routing tables.

Shared by the linux renderer (which writes them) and the linux apply driver (which reads, diffs and
restores exactly these, and nothing outside them); the two never import each other.

* **Mark**: bits ``0x0000ff00`` of ``meta mark`` / ``fwmark``. A steered journey's packets get
  ``(n << 8)``, ``n`` = 1..255 its position among the device's path preferences; the other 24 bits
  are kept as they were (``meta mark set meta mark & 0xffff00ff | ...``).
* **Rules**: priorities ``30000``-``32599``, below ``main`` (32766). Journey ``n`` owns
  ``30000 + 10 n`` .. ``30000 + 10 n + 9``: its transports' tables in order, then ``unreachable`` if
  it is strict. Rules outside this range are never read or changed.
* **Tables**: ``29101``-``29199``. The device's transports, sorted by name, get 29101, 29102, ...;
  each holds ``default via <gateway> dev <interface> onlink`` (IPv4 or IPv6, the gateway's family).
"""

from __future__ import annotations

MARK_MASK = 0x0000FF00
MARK_SHIFT = 8
MAX_MARKS = 255  # journeys one device can steer: the values of one byte but 0

RULE_FIRST = 30000
RULE_LAST = 32599
RULES_PER_JOURNEY = 10  # its transports' tables (at most 9) and, if strict, unreachable

TABLE_FIRST = 29101
TABLE_LAST = 29199
MAX_TRANSPORTS = min(TABLE_LAST - TABLE_FIRST + 1, RULES_PER_JOURNEY - 1)


def mark(n: int) -> int:
    """The mark value (within :data:`MARK_MASK`) of steered journey ``n`` (1-based)."""
    if not 1 <= n <= MAX_MARKS:
        raise ValueError(f"journey mark {n} outside 1-{MAX_MARKS}")
    return n << MARK_SHIFT


def rule_priority(n: int, i: int) -> int:
    """The priority of rule ``i`` (0-based) of steered journey ``n`` (1-based)."""
    if not 0 <= i < RULES_PER_JOURNEY:
        raise ValueError(f"rule {i} of a journey outside 0-{RULES_PER_JOURNEY - 1}")
    return RULE_FIRST + RULES_PER_JOURNEY * n + i


def table(k: int) -> int:
    """The routing table of the device's ``k``-th transport (0-based, by transport name)."""
    if not 0 <= k <= TABLE_LAST - TABLE_FIRST:
        raise ValueError(f"transport {k} outside the {TABLE_LAST - TABLE_FIRST + 1} tables qoectl owns")
    return TABLE_FIRST + k
