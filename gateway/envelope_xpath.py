"""The XPaths a passthrough route reads its entity and key with, held to one value per envelope.

A path (`//customer`, or `string(//customer)`) is evaluated as a node-set, and matches that disagree
are refused: one customer of the key's own entity and one of another's cannot pass the scope check
on the first one. A computed expression (`concat('ACME-', substring(string(//customer), 3, 2))`)
reads only the first node of each path its string and number functions are given. Those paths are
found when the route is loaded (elementpath parses the expression; lxml evaluates it), and each is
also evaluated on its own and held to the same rule.

Only the Body is read (request.body_of drops the Header first). There is no namespace map: a
prefixed name (`//o:customer`) is refused at load, with `local-name()` as the way to write it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import elementpath
from elementpath.tdop import Token
from lxml import etree

from gateway.problems import Problem

# functions and operators that read the first node of a node-set given to them
_FIRST_NODE = frozenset(
    {
        "string",
        "normalize-space",
        "concat",
        "substring",
        "substring-before",
        "substring-after",
        "translate",
        "string-length",
        "starts-with",
        "contains",
        "number",
        "floor",
        "ceiling",
        "round",
        "+",
        "-",
        "div",
        "mod",
    }
)
_SCALAR = frozenset({"literal", "function", "variable"})  # an argument that is no node-set of the envelope's
_STEPS = frozenset({"/", "//", "["})  # not walked into: a predicate's paths are read from each node, not the Body


class XPathError(ValueError):
    """An expression the gateway cannot evaluate or cannot hold to one value per envelope."""


@dataclass(frozen=True)
class EnvelopeXPath:
    expression: etree.XPath
    parts: tuple[etree.XPath, ...] = ()  # the paths whose first node a computed expression reads

    def text(self, scope: Any) -> str | None:
        """What the expression finds in `scope`; matches that disagree are refused (400)."""
        found = self.expression(scope)
        if isinstance(found, list):
            return _agreed(found)
        for part in self.parts:
            nodes = part(scope)
            if isinstance(nodes, list) and len(nodes) > 1:
                _agreed(nodes)
        return str(found) or None


def compile_xpath(expression: str) -> EnvelopeXPath:
    """The expression compiled, with the paths to check beside it; XPathError says why it cannot be."""
    try:
        tree = elementpath.XPath1Parser().parse(expression)
    except elementpath.ElementPathError as exc:
        message = str(exc)
        if "prefix" in message:
            message += " (the gateway has no namespace map: write //*[local-name()='customer'])"
        raise XPathError(message) from None
    # `string(X)` of a path reads the first match only: X itself gives every match, to check they agree
    # (the parse tells it from parentheses that only look like one call, as in `string(a) = string(b)`)
    wrapped = re.fullmatch(r"\s*string\s*\((.*)\)\s*", expression, re.DOTALL)
    if tree.symbol == "string" and len(tree) == 1 and wrapped and _may_be_nodes(tree[0]):
        return EnvelopeXPath(etree.XPath(wrapped.group(1)))
    try:
        compiled = etree.XPath(expression)
    except etree.XPathSyntaxError as exc:
        raise XPathError(str(exc)) from None
    return EnvelopeXPath(compiled, tuple(etree.XPath(source) for source in _first_node_reads(tree)))


def _first_node_reads(token: Token[Any]) -> list[str]:
    """The sources of the arguments, anywhere in `token`, that a function or operator reads only the
    first node of, when they can be node-sets."""
    found: list[str] = []
    reads_first = token.symbol in _FIRST_NODE or (token.symbol == "*" and len(token) == 2)  # `*`: or a wildcard
    for child in token:
        if reads_first and _may_be_nodes(child) and child.source not in found:
            found.append(child.source)
        if child.symbol not in _STEPS:
            found += [source for source in _first_node_reads(child) if source not in found]
    return found


def _may_be_nodes(token: Token[Any]) -> bool:
    if token.label == "operator":  # arithmetic and comparisons give numbers and booleans
        return token.symbol in _STEPS or token.symbol in ("(", "|")
    return token.label not in _SCALAR


def _text(node: Any) -> str:
    """An XPath match as text: an element's text (a leaf's without walking it), or the value itself."""
    if isinstance(node, etree._Element):
        return (node.text or "" if len(node) == 0 else "".join(str(text) for text in node.itertext())).strip()
    return str(node).strip()


def _agreed(found: list[Any]) -> str | None:
    if len(found) == 1:  # the usual envelope: one match, nothing to compare it with
        return _text(found[0]) or None
    values = {_text(node) for node in found} - {""}
    if len(values) > 1:
        raise Problem(
            400, "Ambiguous envelope", f"the Body names {len(values)} different values where the route reads one"
        )
    return values.pop() if values else None
