"""The syntax of indented, block-structured CLI configs (IOS-XE, EOS, Cisco SD-WAN's ConfD CLI): text -> tree.

One reader for the rendered files and for what a device prints (``show
running-config``): apply diffs the two trees, and the platforms' parsers read
their meaning from the same tree. A line's children are the lines indented
deeper under it; ``!`` lines, ``end`` and blank lines are no config, white space
inside a line is folded. A ``! NOTE`` comment right before a line is kept on
that line's node (:attr:`Node.comment`): Cisco SD-WAN's rendered policies name
each journey's sequence that way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from controller.configtext.meaning import dscp_value


@dataclass
class Node:
    line: str
    children: list[Node] = field(default_factory=list)
    comment: str | None = None  # the "! ..." comment right before the line, without the "!"

    def render(self, depth: int = 0) -> list[str]:
        out = [" " * depth + self.line]
        for c in self.children:
            out += c.render(depth + 1)
        return out

    def copy(self) -> Node:
        return Node(self.line, [c.copy() for c in self.children], self.comment)

    @property
    def words(self) -> list[str]:
        return self.line.split()

    def child(self, prefix: str) -> list[Node]:
        """The children that are ``prefix`` or start with ``prefix`` and a space."""
        return find(self.children, prefix)

    def value(self, key: str) -> str | None:
        """The rest of the first child line ``key ...`` (None: no such line)."""
        return next((c.line[len(key) + 1 :] for c in self.children if c.line.startswith(key + " ")), None)

    def texts(self) -> list[str]:
        return [c.line for c in self.children]


def find(nodes: Sequence[Node], prefix: str) -> list[Node]:
    """The nodes that are ``prefix`` or start with ``prefix`` and a space."""
    return [n for n in nodes if n.line == prefix or n.line.startswith(prefix + " ")]


def parse(text: str) -> list[Node]:
    """Indentation tree of a config (top-level nodes); ``!`` lines, ``end`` and blanks are dropped."""
    roots: list[Node] = []
    stack: list[tuple[int, Node]] = []
    comment: str | None = None
    for raw in text.replace("\r", "").splitlines():
        stripped = raw.strip()
        if stripped.startswith("!"):
            comment = stripped[1:].strip() or None
            continue
        if not stripped or stripped == "end":
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        node = Node(" ".join(stripped.split()), comment=comment)
        comment = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        (stack[-1][1].children if stack else roots).append(node)
        stack.append((indent, node))
    return roots


def journey_classes(
    inputs: Mapping[str, str], policies: Mapping[str, Mapping[str, list[str]]], key_of: Callable[[str], str | None]
) -> Iterator[tuple[str, str, str, str, list[str]]]:
    """(LAN interface, input policy, class, journey key, class lines) of every journey class (``key_of`` gives its
    journey, None for other classes) of every interface's MQC input policy, in the policy's order."""
    for ifname, policy in sorted(inputs.items()):
        for cls, lines in policies[policy].items():
            key = key_of(cls)
            if key is not None:
                yield ifname, policy, cls, key, lines


def set_dscp(lines: Sequence[str], dscp: int) -> int:
    """The DSCP a packet leaves an MQC class with: the class's ``set dscp`` value, else the one it had."""
    return next((dscp_value(line.split()[-1]) for line in lines if line.startswith("set dscp ")), dscp)
