"""Scoping filters at their edges beyond tests/test_filters.py: booleans and numbers as text,
infinities, how a clause is shown, and the messages of a user filtered out or a bad operator."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.core.filters import Operator, parse_filters, why_filtered_out
from syncd.core.records import is_user_attribute

EXT = "extension_0123456789abcdef0123456789abcdef_costCenter"


def one(attribute: str, operator: str, *value: Any) -> Any:
    raw: dict[str, Any] = {"attribute": attribute, "operator": operator}
    if value:
        raw["value"] = value[0]
    [scope_filter] = parse_filters([{"clauses": [raw]}], is_user_attribute)
    [clause] = scope_filter.clauses
    return clause


@pytest.mark.parametrize(
    ("attribute", "operator", "value", "user_value", "holds"),
    [
        # a boolean is compared as Graph writes it: "true", "false" (a regex has no flags)
        ("accountEnabled", "REGEX MATCH", "true", True, True),
        ("accountEnabled", "REGEX MATCH", "false", False, True),
        ("accountEnabled", "REGEX MATCH", "true", False, False),
        ("accountEnabled", "EQUALS", "false", False, True),
        ("accountEnabled", "EQUALS", "true", False, False),
        ("accountEnabled", "INCLUDES", ["false"], False, True),
        # a whole float is its integer's text
        (EXT, "REGEX MATCH", "5", 5.0, True),
        (EXT, "REGEX MATCH", "5.5", 5.5, True),
        # infinities and NaN written as text are no numbers
        (EXT, "GREATER THAN", 5, "inf", False),
        (EXT, "LESS THAN", 5, "-Infinity", False),
        (EXT, "GREATER THAN", 5, "1e400", False),
        (EXT, "GREATER THAN", 5, float("inf"), True),  # a JSON number is taken as it is
        (EXT, "GREATER THAN", 5, ["x", "7"], True),  # any element of a multi-valued one
        (EXT, "GREATER THAN", 5, {"not": "a number"}, False),
        # regex anchors: fullmatch, with or without them
        (EXT, "REGEX MATCH", "^CC-1$", "CC-1", True),
        (EXT, "REGEX MATCH", "CC", "CC-1", False),
        (EXT, "NOT REGEX MATCH", "CC", "CC-1", True),
        # the empty string is null
        (EXT, "NOT EQUALS", "x", "", True),
        (EXT, "IS NULL", None, "", True),
        (EXT, "IS FALSE", None, "", True),
        (EXT, "IS TRUE", None, "", False),
        (EXT, "IS NOT NULL", None, "", False),
        (EXT, "REGEX MATCH", ".*", "", False),
        (EXT, "NOT INCLUDES", ["x"], "", True),
    ],
)
def test_clause_edges(
    attribute: str, operator: str, value: Any, user_value: Any, holds: bool
) -> None:
    clause = one(attribute, operator, value) if value is not None else one(attribute, operator)
    assert clause.holds(user_value) is holds


def test_a_clause_is_shown_as_written() -> None:
    assert str(one(EXT, "IS NULL")) == f"{EXT} IS NULL"
    assert str(one(EXT, "is not null")) == f"{EXT} IS NOT NULL"
    assert str(one("department", "EQUALS", "Sales")) == "department EQUALS 'Sales'"
    assert str(one(EXT, "GREATER THAN", 5)) == f"{EXT} GREATER THAN 5"


def test_why_filtered_out_names_each_failing_filter_and_skips_a_matching_one() -> None:
    filters = parse_filters(
        [
            {"clauses": [{"attribute": "department", "operator": "EQUALS", "value": "Sales"}]},
            {"clauses": [{"attribute": EXT, "operator": "IS NULL"}]},
            {"clauses": [{"attribute": "jobTitle", "operator": "IS NOT NULL"}]},
        ],
        is_user_attribute,
    )
    values = {"department": "Sales", EXT: "CC-1", "jobTitle": ""}
    assert why_filtered_out(filters, values.__getitem__) == (
        f"[[scope.filter]] 2: {EXT} IS NULL does not hold ({EXT} is 'CC-1'); "
        "[[scope.filter]] 3: jobTitle IS NOT NULL does not hold (jobTitle is null)"
    )


def test_an_unknown_operator_is_refused_with_the_known_ones() -> None:
    known = ", ".join(o.value for o in Operator)
    assert known.startswith("EQUALS, NOT EQUALS, IS TRUE")
    with pytest.raises(ValueError) as refused:
        one("department", "LIKE", "x")
    assert str(refused.value) == (
        f"[[scope.filter]] 1 clause 1: operator 'LIKE' is not one of {known}"
    )
