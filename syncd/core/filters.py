"""Attribute scoping filters, as Entra defines them: a user is in scope when any filter matches,
and a filter matches when every one of its clauses holds.

Pure: clauses are parsed and checked once (``parse_filters``), then evaluated on the values a
directory user holds. String comparisons ignore case; REGEX MATCH is ``re.fullmatch`` without
flags. A null value (absent, empty) satisfies only IS NULL, IS FALSE, NOT EQUALS, NOT REGEX
MATCH and NOT INCLUDES.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Operator(StrEnum):
    EQUALS = "EQUALS"
    NOT_EQUALS = "NOT EQUALS"
    IS_TRUE = "IS TRUE"
    IS_FALSE = "IS FALSE"
    IS_NULL = "IS NULL"
    IS_NOT_NULL = "IS NOT NULL"
    REGEX_MATCH = "REGEX MATCH"
    NOT_REGEX_MATCH = "NOT REGEX MATCH"
    GREATER_THAN = "GREATER THAN"
    LESS_THAN = "LESS THAN"
    INCLUDES = "INCLUDES"
    NOT_INCLUDES = "NOT INCLUDES"


_NO_VALUE = frozenset({Operator.IS_TRUE, Operator.IS_FALSE, Operator.IS_NULL, Operator.IS_NOT_NULL})
_NUMBERS = frozenset({Operator.GREATER_THAN, Operator.LESS_THAN})
_LISTS = frozenset({Operator.INCLUDES, Operator.NOT_INCLUDES})
_REGEX = frozenset({Operator.REGEX_MATCH, Operator.NOT_REGEX_MATCH})
# What a null value satisfies.
_NULL_HOLDS = frozenset(
    {
        Operator.IS_NULL,
        Operator.IS_FALSE,
        Operator.NOT_EQUALS,
        Operator.NOT_REGEX_MATCH,
        Operator.NOT_INCLUDES,
    }
)


def is_null(value: Any) -> bool:
    """Absent or empty: None, "", an empty list or object."""
    return value is None or (isinstance(value, str | list | tuple | dict) and not value)


def _text(value: Any) -> str:
    """A value as text to compare: booleans as Graph writes them, numbers without ".0"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _elements(value: Any) -> Sequence[Any]:
    """A multi-valued attribute holds when one of its values does."""
    return value if isinstance(value, list | tuple) else (value,)


@dataclass(frozen=True)
class Clause:
    """One clause: ``attribute OPERATOR value``."""

    attribute: str
    operator: Operator
    value: Any = None  # str | float | frozenset[str] (folded) | re.Pattern[str] | None
    written: Any = None  # the value as the configuration wrote it, for messages

    def holds(self, value: Any) -> bool:
        """Whether this clause holds for a user whose ``attribute`` is ``value``."""
        if is_null(value):
            return self.operator in _NULL_HOLDS
        return _TESTS[self.operator](self, value)

    def __str__(self) -> str:
        shown = "" if self.operator in _NO_VALUE else f" {self.written!r}"
        return f"{self.attribute} {self.operator}{shown}"


def _equals(clause: Clause, value: Any) -> bool:
    return any(_text(v).casefold() == clause.value for v in _elements(value))


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().casefold() == "true")


def _is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.strip().casefold() == "false")


def _regex(clause: Clause, value: Any) -> bool:
    pattern: re.Pattern[str] = clause.value
    return any(pattern.fullmatch(_text(v)) is not None for v in _elements(value))


def _compare(clause: Clause, value: Any, greater: bool) -> bool:
    numbers = [n for v in _elements(value) if (n := _number(v)) is not None]
    return any(n > clause.value if greater else n < clause.value for n in numbers)


def _includes(clause: Clause, value: Any) -> bool:
    return any(_text(v).casefold() in clause.value for v in _elements(value))


_TESTS: Mapping[Operator, Callable[[Clause, Any], bool]] = {
    Operator.EQUALS: _equals,
    Operator.NOT_EQUALS: lambda c, v: not _equals(c, v),
    Operator.IS_TRUE: lambda c, v: _is_true(v),
    Operator.IS_FALSE: lambda c, v: _is_false(v),
    Operator.IS_NULL: lambda c, v: False,
    Operator.IS_NOT_NULL: lambda c, v: True,
    Operator.REGEX_MATCH: _regex,
    Operator.NOT_REGEX_MATCH: lambda c, v: not _regex(c, v),
    Operator.GREATER_THAN: lambda c, v: _compare(c, v, greater=True),
    Operator.LESS_THAN: lambda c, v: _compare(c, v, greater=False),
    Operator.INCLUDES: _includes,
    Operator.NOT_INCLUDES: lambda c, v: not _includes(c, v),
}


@dataclass(frozen=True)
class ScopeFilter:
    """One ``[[scope.filter]]`` table: it matches when all of its clauses hold."""

    number: int  # 1-based, as people count the tables of the configuration
    clauses: tuple[Clause, ...]

    def failing(self, value_of: Callable[[str], Any]) -> Clause | None:
        """The first clause that does not hold (None: the filter matches)."""
        return next((c for c in self.clauses if not c.holds(value_of(c.attribute))), None)


def in_filters(filters: Sequence[ScopeFilter], value_of: Callable[[str], Any]) -> bool:
    """Whether a user passes the filters: no filters, or at least one that matches."""
    return not filters or any(f.failing(value_of) is None for f in filters)


def why_filtered_out(filters: Sequence[ScopeFilter], value_of: Callable[[str], Any]) -> str:
    """For a user no filter matches: which clause of each filter fails, and on what value."""
    reasons = []
    for scope_filter in filters:
        clause = scope_filter.failing(value_of)
        if clause is None:
            continue
        value = value_of(clause.attribute)
        shown = "null" if is_null(value) else repr(value)
        reasons.append(
            f"[[scope.filter]] {scope_filter.number}: {clause} does not hold "
            f"({clause.attribute} is {shown})"
        )
    return "; ".join(reasons)


def parse_filters(
    tables: Sequence[Mapping[str, Any]], is_attribute: Callable[[str], bool]
) -> tuple[ScopeFilter, ...]:
    """The ``[[scope.filter]]`` tables, checked; ValueError names the table and the clause.

    ``is_attribute`` says whether a name is a Graph user property syncd can read.
    """
    filters = []
    for number, table in enumerate(tables, start=1):
        where = f"[[scope.filter]] {number}"
        if not isinstance(table, Mapping) or set(table) != {"clauses"}:
            raise ValueError(f"{where}: a filter is a table with one key, clauses")
        raw = table["clauses"]
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"{where}: clauses must be a non-empty list of clauses")
        clauses = tuple(
            _parse_clause(clause, f"{where} clause {i}", is_attribute)
            for i, clause in enumerate(raw, start=1)
        )
        filters.append(ScopeFilter(number, clauses))
    return tuple(filters)


def _parse_clause(raw: Any, where: str, is_attribute: Callable[[str], bool]) -> Clause:
    if not isinstance(raw, Mapping) or not {"attribute", "operator"} <= set(raw) <= {
        "attribute",
        "operator",
        "value",
    }:
        raise ValueError(f"{where}: a clause is {{ attribute, operator, value }}")
    attribute, operator = raw["attribute"], raw["operator"]
    if not isinstance(attribute, str) or not is_attribute(attribute):
        raise ValueError(f"{where}: {attribute!r} is not a Graph user property syncd can read")
    try:
        op = Operator(str(operator).strip().upper())
    except ValueError:
        known = ", ".join(o.value for o in Operator)
        raise ValueError(f"{where}: operator {operator!r} is not one of {known}") from None
    value = raw.get("value")
    return Clause(attribute, op, _clause_value(op, value, "value" in raw, where), value)


def _clause_value(op: Operator, value: Any, given: bool, where: str) -> Any:
    if op in _NO_VALUE:
        if given:
            raise ValueError(f"{where}: {op} takes no value")
        return None
    if not given:
        raise ValueError(f"{where}: {op} needs a value")
    if op in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: {op} compares numbers; {value!r} is not a number")
        return float(value)
    if op in _LISTS:
        if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
            raise ValueError(f'{where}: {op} needs a list of values, e.g. ["a", "b"]')
        return frozenset(_text(v).casefold() for v in value)
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"{where}: {op} needs a string value, not {value!r}")
    if op in _REGEX:
        try:
            return re.compile(str(value))
        except re.error as exc:
            raise ValueError(
                f"{where}: the regular expression {value!r} does not compile: {exc}"
            ) from None
    return _text(value).casefold()
