"""SCIM filter and PATCH path parsing and evaluation (RFC 7644 §3.4.2.2 and §3.5.2)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "And",
    "AttrPath",
    "Compare",
    "Expr",
    "FilterError",
    "Not",
    "Or",
    "PatchPath",
    "Present",
    "ValuePath",
    "eq_template",
    "matches",
    "parse_filter",
    "parse_path",
    "resolve",
]

COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
_ORDER_OPS = frozenset({"gt", "ge", "lt", "le"})
_STRING_OPS = frozenset({"co", "sw", "ew"})


class FilterError(ValueError):
    """A filter or path that does not parse, or names an attribute the schema does not know."""


@dataclass(frozen=True, slots=True)
class AttrPath:
    """An attribute reference: optional schema URN, attribute name, optional sub-attribute.

    As parsed, names are as written. Once resolved against a schema (see :func:`resolve`),
    names are canonical, ``urn`` is ``None`` for core attributes (or the extension's URN), and
    ``type``/``case_exact`` describe the addressed (sub-)attribute. Inside a value filter the
    path is relative to one element of the multi-valued attribute.
    """

    urn: str | None
    name: str
    sub: str | None = None
    type: str = "string"
    case_exact: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    """``attrPath compareOp compValue``."""

    path: AttrPath
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class Present:
    """``attrPath pr``."""

    path: AttrPath


@dataclass(frozen=True, slots=True)
class And:
    """``left and right``."""

    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Or:
    """``left or right``."""

    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Not:
    """``not (expr)``."""

    expr: Expr


@dataclass(frozen=True, slots=True)
class ValuePath:
    """``attrPath[valFilter]``: true when one element of the attribute matches the filter."""

    path: AttrPath
    filter: Expr


Expr = Compare | Present | And | Or | Not | ValuePath


@dataclass(frozen=True, slots=True)
class PatchPath:
    """A PATCH ``path``: ``attrPath`` or ``valuePath [subAttr]`` (RFC 7644 §3.5.2, Figure 7)."""

    attr: AttrPath
    filter: Expr | None = None
    sub: str | None = None


_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<lparen>\() | (?P<rparen>\)) | (?P<lbrack>\[) | (?P<rbrack>\])
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?=[\s()\[\]]|$)
    | (?P<word>(?:urn:[A-Za-z0-9._:-]*:)?[A-Za-z_$][\w$-]*(?:\.[A-Za-z_$][\w$-]*)?)
    | (?P<subattr>\.[A-Za-z_$][\w$-]*)
    """,
    re.VERBOSE,
)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FilterError(f"unexpected character {text[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group()))
        pos = match.end()
    return tokens


def _attr_path(word: str) -> AttrPath:
    # A URN-qualified name ends at the last colon; "2.0" dots sit inside the URN part.
    urn: str | None = None
    rest = word
    if word[:4].lower() == "urn:":
        cut = word.rfind(":")
        urn, rest = word[:cut], word[cut + 1 :]
    name, _, sub = rest.partition(".")
    return AttrPath(urn, name, sub or None)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str) -> str:
        token = self.peek()
        if token is None or token[0] != kind:
            found = "end of input" if token is None else repr(token[1])
            raise FilterError(f"expected {kind}, found {found} in {self.text!r}")
        self.pos += 1
        return token[1]

    def at_word(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].lower() == word

    def done(self) -> None:
        token = self.peek()
        if token is not None:
            raise FilterError(f"unexpected {token[1]!r} in {self.text!r}")

    # Precedence per RFC 7644 §3.4.2.2: "not" binds tightest, then "and", then "or".
    def filter(self) -> Expr:
        expr = self.conjunction()
        while self.at_word("or"):
            self.pos += 1
            expr = Or(expr, self.conjunction())
        return expr

    def conjunction(self) -> Expr:
        expr = self.unary()
        while self.at_word("and"):
            self.pos += 1
            expr = And(expr, self.unary())
        return expr

    def unary(self) -> Expr:
        token = self.peek()
        if token is None:
            raise FilterError(f"incomplete filter {self.text!r}")
        if self.at_word("not"):
            self.pos += 1
            self.take("lparen")
            inner = self.filter()
            self.take("rparen")
            return Not(inner)
        if token[0] == "lparen":
            self.pos += 1
            inner = self.filter()
            self.take("rparen")
            return inner
        path = _attr_path(self.take("word"))
        nxt = self.peek()
        if nxt is not None and nxt[0] == "lbrack":
            self.pos += 1
            inner = self.filter()
            self.take("rbrack")
            return ValuePath(path, inner)
        op = self.take("word").lower()
        if op == "pr":
            return Present(path)
        if op not in COMPARE_OPS:
            raise FilterError(f"unsupported operator {op!r} in {self.text!r}")
        return Compare(path, op, self.value())

    def value(self) -> Any:
        token = self.peek()
        if token is None:
            raise FilterError(f"missing comparison value in {self.text!r}")
        kind, text = token
        self.pos += 1
        if kind == "string":
            try:
                return json.loads(text)
            except ValueError as exc:
                raise FilterError(f"bad string literal {text}") from exc
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "word" and text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text.lower()]
        raise FilterError(f"bad comparison value {text!r} in {self.text!r}")


def parse_filter(text: str) -> Expr:
    """Parse a SCIM filter expression (RFC 7644 §3.4.2.2), raising :class:`FilterError`."""
    parser = _Parser(text)
    expr = parser.filter()
    parser.done()
    return expr


def parse_path(text: str) -> PatchPath:
    """Parse a PATCH path such as ``emails[type eq "work"].value`` (RFC 7644 §3.5.2)."""
    parser = _Parser(text)
    attr = _attr_path(parser.take("word"))
    flt: Expr | None = None
    sub: str | None = None
    token = parser.peek()
    if token is not None and token[0] == "lbrack":
        if attr.sub is not None:
            raise FilterError(f"a value filter cannot follow a sub-attribute in {text!r}")
        parser.pos += 1
        flt = parser.filter()
        parser.take("rbrack")
        token = parser.peek()
        if token is not None and token[0] == "subattr":
            sub = parser.take("subattr")[1:]
    parser.done()
    return PatchPath(attr, flt, sub)


Resolver = Callable[[AttrPath, AttrPath | None], AttrPath]


def resolve(expr: Expr, resolver: Resolver, parent: AttrPath | None = None) -> Expr:
    """Return ``expr`` with every path resolved by ``resolver(path, parent)``.

    ``parent`` is the multi-valued attribute a value filter applies to (``None`` at top level).
    Operator and type combinations the RFC rules out become :class:`FilterError`.
    """
    if isinstance(expr, Compare):
        path = resolver(expr.path, parent)
        _check_operator(path, expr.op, expr.value)
        return Compare(path, expr.op, expr.value)
    if isinstance(expr, Present):
        return Present(resolver(expr.path, parent))
    if isinstance(expr, And):
        return And(resolve(expr.left, resolver, parent), resolve(expr.right, resolver, parent))
    if isinstance(expr, Or):
        return Or(resolve(expr.left, resolver, parent), resolve(expr.right, resolver, parent))
    if isinstance(expr, Not):
        return Not(resolve(expr.expr, resolver, parent))
    if parent is not None:
        raise FilterError("value filters cannot be nested")
    outer = resolver(expr.path, None)
    return ValuePath(outer, resolve(expr.filter, resolver, outer))


def _check_operator(path: AttrPath, op: str, value: Any) -> None:
    # RFC 7644 §3.4.2.2: ordering on booleans/binaries is an invalid filter; "co"/"sw"/"ew"
    # only make sense on strings.
    if path.type in ("boolean", "binary") and op in _ORDER_OPS:
        raise FilterError(f"operator {op!r} is not supported on {path.type} attributes")
    if op in _STRING_OPS and not isinstance(value, str):
        raise FilterError(f"operator {op!r} needs a string value")
    if op in _ORDER_OPS and (value is None or isinstance(value, bool)):
        raise FilterError(f"operator {op!r} needs a string or number value")


def _raw(obj: dict[str, Any], path: AttrPath) -> Any:
    container = obj if path.urn is None else obj.get(path.urn)
    if not isinstance(container, dict):
        return None
    return container.get(path.name)


def _values(obj: dict[str, Any], path: AttrPath) -> Iterator[Any]:
    raw = _raw(obj, path)
    if raw is None:
        return
    for item in raw if isinstance(raw, list) else (raw,):
        if path.sub is not None:
            if isinstance(item, dict) and item.get(path.sub) is not None:
                yield item[path.sub]
        elif isinstance(item, dict):
            # A complex attribute compared without a sub-attribute compares its "value".
            if item.get("value") is not None:
                yield item["value"]
        else:
            yield item


def _as_datetime(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _compare(op: str, actual: Any, expected: Any, path: AttrPath) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        # bool is an int in Python; SCIM booleans only equal booleans.
        same = isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
        return same if op == "eq" else False
    if isinstance(actual, str) and isinstance(expected, str):
        if path.type == "dateTime" and op in _ORDER_OPS | {"eq"}:
            left, right = _as_datetime(actual), _as_datetime(expected)
            if left is not None and right is not None:
                return _order(op, left, right)
        if not path.case_exact:
            actual, expected = actual.lower(), expected.lower()
        if op == "co":
            return bool(expected in actual)
        if op == "sw":
            return bool(actual.startswith(expected))
        if op == "ew":
            return bool(actual.endswith(expected))
        return _order(op, actual, expected)
    numbers = (int, float)
    if isinstance(actual, numbers) and isinstance(expected, numbers):
        return _order(op, actual, expected)
    return False


def _order(op: str, left: Any, right: Any) -> bool:
    if op == "eq":
        return bool(left == right)
    if op == "gt":
        return bool(left > right)
    if op == "ge":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    if op == "le":
        return bool(left <= right)
    return False


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def matches(expr: Expr, obj: dict[str, Any]) -> bool:
    """Evaluate a resolved filter against a resource (or one element, inside a value filter)."""
    if isinstance(expr, Compare):
        if expr.value is None:
            present = any(True for _ in _values(obj, expr.path))
            return not present if expr.op == "eq" else present
        if expr.op == "ne":
            # "ne" is the negation of "eq": an unassigned attribute is "not equal".
            return not any(
                _compare("eq", v, expr.value, expr.path) for v in _values(obj, expr.path)
            )
        return any(_compare(expr.op, v, expr.value, expr.path) for v in _values(obj, expr.path))
    if isinstance(expr, Present):
        raw = _raw(obj, expr.path)
        if expr.path.sub is None:
            return _present(raw)
        items = raw if isinstance(raw, list) else [raw]
        return any(isinstance(i, dict) and _present(i.get(expr.path.sub)) for i in items)
    if isinstance(expr, And):
        return matches(expr.left, obj) and matches(expr.right, obj)
    if isinstance(expr, Or):
        return matches(expr.left, obj) or matches(expr.right, obj)
    if isinstance(expr, Not):
        return not matches(expr.expr, obj)
    raw = _raw(obj, expr.path)
    items = raw if isinstance(raw, list) else [raw]
    return any(isinstance(i, dict) and matches(expr.filter, i) for i in items)


def eq_template(expr: Expr) -> dict[str, Any] | None:
    """The element a value filter made only of ``eq`` and ``and`` describes, else ``None``.

    ``type eq "work"`` gives ``{"type": "work"}``: what a PATCH creates when its filtered
    path matches no element (the behaviour Entra ID expects).
    """
    if isinstance(expr, Compare) and expr.op == "eq" and expr.path.sub is None:
        if expr.path.urn is None and expr.value is not None:
            return {expr.path.name: expr.value}
        return None
    if isinstance(expr, And):
        left, right = eq_template(expr.left), eq_template(expr.right)
        if left is None or right is None:
            return None
        return {**left, **right}
    return None
