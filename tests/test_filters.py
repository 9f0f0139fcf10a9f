"""Attribute scoping filters (pure): every operator at its edges, parsing errors, OR of ANDs."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.core.filters import Operator, in_filters, parse_filters, why_filtered_out
from syncd.core.records import is_user_attribute

EXT = "extension_0123456789abcdef0123456789abcdef_costCenter"


def clause(attribute: str, operator: str, *value: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"attribute": attribute, "operator": operator}
    if value:
        raw["value"] = value[0]
    return raw


def holds(raw: dict[str, Any], user_value: Any) -> bool:
    [scope_filter] = parse_filters([{"clauses": [raw]}], is_user_attribute)
    return in_filters([scope_filter], lambda name: user_value)


NULLS = [None, "", [], {}]

CASES = [
    # (clause, value, holds)
    (clause("department", "EQUALS", "Sales"), "Sales", True),
    (clause("department", "EQUALS", "Sales"), "sALES", True),  # strings ignore case
    (clause("department", "EQUALS", "Sales"), "Sales ", False),  # no trimming
    (clause("department", "EQUALS", "Sales"), "Sale", False),
    (clause("department", "equals", "Sales"), "Sales", True),  # operator names ignore case
    (clause(EXT, "EQUALS", 5), "5", True),  # numbers compare as their text
    (clause(EXT, "EQUALS", "5"), 5.0, True),
    (clause("accountEnabled", "EQUALS", "true"), True, True),
    (clause("proxyAddresses", "EQUALS", "smtp:a@x"), ["SMTP:b@x", "smtp:A@x"], True),
    (clause("department", "NOT EQUALS", "Sales"), "HR", True),
    (clause("department", "NOT EQUALS", "Sales"), "sales", False),
    (clause("accountEnabled", "IS TRUE"), True, True),
    (clause("accountEnabled", "IS TRUE"), False, False),
    (clause(EXT, "IS TRUE"), "True", True),  # a string extension holding a boolean
    (clause(EXT, "IS TRUE"), "yes", False),
    (clause("accountEnabled", "IS FALSE"), False, True),
    (clause("accountEnabled", "IS FALSE"), True, False),
    (clause(EXT, "IS FALSE"), "false", True),
    (clause(EXT, "IS FALSE"), "no", False),
    (clause(EXT, "IS NOT NULL"), "x", True),
    (clause(EXT, "IS NOT NULL"), 0, True),  # zero is a value
    (clause(EXT, "IS NOT NULL"), False, True),
    (clause(EXT, "IS NULL"), "x", False),
    (clause(EXT, "REGEX MATCH", "CC-[0-9]{3}"), "CC-123", True),
    (clause(EXT, "REGEX MATCH", "CC-[0-9]{3}"), "cc-123", False),  # regex: no flags
    (clause(EXT, "REGEX MATCH", "CC-[0-9]{3}"), "CC-1234", False),  # fullmatch: anchored
    (clause(EXT, "REGEX MATCH", "CC-[0-9]{3}"), "xCC-123", False),
    (clause(EXT, "REGEX MATCH", "(?i)cc-.*"), "CC-9", True),  # flags only inline
    (clause(EXT, "NOT REGEX MATCH", "CC-.*"), "DD-1", True),
    (clause(EXT, "NOT REGEX MATCH", "CC-.*"), "CC-1", False),
    (clause(EXT, "GREATER THAN", 10), 11, True),
    (clause(EXT, "GREATER THAN", 10), 10, False),  # strictly
    (clause(EXT, "GREATER THAN", 10), "10.5", True),  # numbers as strings
    (clause(EXT, "GREATER THAN", 10), " 12 ", True),
    (clause(EXT, "GREATER THAN", 10), "ten", False),  # not a number: does not hold
    (clause(EXT, "GREATER THAN", 10), True, False),  # a boolean is no number
    (clause(EXT, "GREATER THAN", -1.5), -1, True),
    (clause(EXT, "LESS THAN", 10), 9.99, True),
    (clause(EXT, "LESS THAN", 10), 10, False),
    (clause(EXT, "LESS THAN", 10), "nan", False),
    (clause("department", "INCLUDES", ["Sales", "HR"]), "hr", True),
    (clause("department", "INCLUDES", ["Sales", "HR"]), "IT", False),
    (clause(EXT, "INCLUDES", [1, 2]), "2", True),
    (clause("department", "NOT INCLUDES", ["Sales", "HR"]), "IT", True),
    (clause("department", "NOT INCLUDES", ["Sales", "HR"]), "SALES", False),
]


@pytest.mark.parametrize(
    ("raw", "value", "expected"),
    CASES,
    ids=[f"{c['attribute'][:10]} {c['operator']} {c.get('value')!r} on {v!r}" for c, v, _ in CASES],
)
def test_an_operator_on_a_value(raw: dict[str, Any], value: Any, expected: bool) -> None:
    assert holds(raw, value) is expected


NULL_HOLDS = {"IS NULL", "IS FALSE", "NOT EQUALS", "NOT REGEX MATCH", "NOT INCLUDES"}
WITH_VALUE = {
    "EQUALS": "x",
    "NOT EQUALS": "x",
    "REGEX MATCH": ".*",
    "NOT REGEX MATCH": ".*",
    "GREATER THAN": -1000,
    "LESS THAN": 1000,
    "INCLUDES": [""],
    "NOT INCLUDES": [""],
}


@pytest.mark.parametrize("null", NULLS, ids=repr)
@pytest.mark.parametrize("operator", [o.value for o in Operator])
def test_a_null_value_satisfies_only_the_negative_operators(operator: str, null: Any) -> None:
    raw = clause(EXT, operator, *([WITH_VALUE[operator]] if operator in WITH_VALUE else []))
    assert holds(raw, null) is (operator in NULL_HOLDS)


def test_a_filter_is_an_and_of_clauses_and_filters_are_an_or() -> None:
    filters = parse_filters(
        [
            {
                "clauses": [
                    clause("userType", "NOT EQUALS", "Guest"),
                    clause("department", "EQUALS", "Sales"),
                ]
            },
            {"clauses": [clause("userType", "EQUALS", "Guest"), clause(EXT, "IS NOT NULL")]},
        ],
        is_user_attribute,
    )

    def user(**values: Any) -> Any:
        return lambda name: values.get(name)

    assert in_filters(filters, user(userType="Member", department="Sales"))
    assert not in_filters(filters, user(userType="Member", department="HR"))
    assert in_filters(filters, user(userType="Guest", **{EXT: "CC-1"}))
    assert not in_filters(filters, user(userType="Guest", department="Sales"))
    assert in_filters((), user())  # no filter: everyone passes
    assert why_filtered_out(filters, user(userType="Member", department="HR")) == (
        "[[scope.filter]] 1: department EQUALS 'Sales' does not hold (department is 'HR'); "
        "[[scope.filter]] 2: userType EQUALS 'Guest' does not hold (userType is 'Member')"
    )
    assert "is null" in why_filtered_out(filters, user(userType="Guest"))


BAD = [
    ({"clauses": [clause("department", "LIKE", "x")]}, "clause 1: operator 'LIKE' is not one of"),
    ({"clauses": [clause(EXT, "REGEX MATCH", "(")]}, "does not compile"),
    ({"clauses": [clause(EXT, "GREATER THAN", "10")]}, "compares numbers; '10' is not a number"),
    ({"clauses": [clause(EXT, "GREATER THAN", True)]}, "is not a number"),
    ({"clauses": [clause("department", "INCLUDES", "Sales")]}, "needs a list of values"),
    ({"clauses": [clause("department", "EQUALS")]}, "EQUALS needs a value"),
    ({"clauses": [clause("department", "IS NULL", "x")]}, "IS NULL takes no value"),
    ({"clauses": [clause("departmnet", "EQUALS", "x")]}, "'departmnet' is not a Graph user"),
    ({"clauses": [clause("extension_abc_x", "EQUALS", "x")]}, "is not a Graph user property"),
    (
        {"clauses": [clause("onPremisesExtensionAttributes.extensionAttribute16", "IS NULL")]},
        "is not a Graph user property",
    ),
    ({"clauses": []}, "clauses must be a non-empty list"),
    ({"clause": []}, "a filter is a table with one key, clauses"),
    ({"clauses": [{"attribute": "department"}]}, "a clause is { attribute, operator, value }"),
    ({"clauses": [clause("department", "EQUALS", ["x"])]}, "needs a string value"),
]


@pytest.mark.parametrize(("table", "message"), BAD, ids=[m for _, m in BAD])
def test_a_bad_filter_is_refused_naming_the_table_and_clause(
    table: dict[str, Any], message: str
) -> None:
    good = {"clauses": [clause("department", "EQUALS", "Sales")]}
    with pytest.raises(ValueError, match=r"^\[\[scope\.filter\]\] 2") as raised:
        parse_filters([good, table], is_user_attribute)
    assert message in str(raised.value)
