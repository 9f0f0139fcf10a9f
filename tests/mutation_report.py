"""`make mutate`'s verdict: mutmut's results for the pure core, per module, against the list of
equivalent mutants (tests/mutation-equivalents.md).

Run after `mutmut run` (from the repository's root); reads mutmut's meta files under mutants/.
Exits 1 when a mutant survived or is covered by no test and is not listed as equivalent, when a
listed mutant is no longer one that survives (the list is stale), when a mutant was not run to a
verdict, or when a module has less than 95 % of its non-equivalent mutants killed.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parent.parent
CORE = Path("syncd/core")
EQUIVALENTS = ROOT / "tests" / "mutation-equivalents.md"
MINIMUM = 0.95

# A line of the equivalents file: "syncd.core.<module>.<mutant>__mutmut_<n>: why", optionally
# as a list item and with the id in backquotes.
_LISTED = re.compile(r"^(?:[-*]\s+)?`?(syncd\.core\.[^\s`:]+__mutmut_\d+)`?:\s*(.*)$")

KILLED = frozenset({"killed", "timeout", "caught by type check"})  # a test (or the run) failed
UNDETECTED = frozenset({"survived", "no tests"})  # equivalent, or a test is missing


def listed_equivalents(path: Path = EQUIVALENTS) -> tuple[dict[str, str], list[str]]:
    """The listed mutant ids with their reasons, and the lines that list one without a reason."""
    listed: dict[str, str] = {}
    errors: list[str] = []
    if not path.exists():
        return listed, errors
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _LISTED.match(line.strip())
        if match is None:
            continue
        mutant, why = match.groups()
        if not why.strip():
            errors.append(f"{path.name}:{number}: {mutant} is listed without a reason")
        if mutant in listed:
            errors.append(f"{path.name}:{number}: {mutant} is listed twice")
        listed[mutant] = why.strip()
    return listed, errors


def results(root: Path = ROOT) -> dict[str, dict[str, str]]:
    """Module name -> mutant id -> mutmut's status, from mutmut's meta files."""
    by_module: dict[str, dict[str, str]] = {}
    metas = sorted((root / "mutants" / CORE).glob("*.py.meta"))
    for meta in metas:
        module = meta.name.removesuffix(".py.meta")
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        by_module[module] = {key: status_by_exit_code[code] for key, code in codes.items()}
    return by_module


def shown(score: float) -> str:
    """A share as a percentage rounded down: 94.96 % is shown 94.9 %, never 95.0 %."""
    return f"{math.floor(score * 1000) / 10:.1f}%"


def main() -> int:
    by_module = results()
    if not by_module:
        print("no mutmut results under mutants/: run `make mutate`", file=sys.stderr)
        return 1
    listed, problems = listed_equivalents()
    seen: set[str] = set()
    header = (
        f"{'module':<12} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} "
        f"{'not covered':>11} {'equivalent':>10} {'killed of non-equivalent':>24}"
    )
    print(header)
    print("-" * len(header))
    totals: Counter[str] = Counter()
    for module, statuses in sorted(by_module.items()):
        if not statuses:
            continue
        counts = Counter(statuses.values())
        equivalent = 0
        for mutant, status in sorted(statuses.items()):
            seen.add(mutant)
            if mutant in listed:
                if status in UNDETECTED:
                    equivalent += 1
                else:
                    problems.append(f"{mutant}: listed as equivalent but {status} (stale entry)")
            elif status in UNDETECTED:
                problems.append(f"{mutant}: {status}, and not listed as equivalent")
            elif status not in KILLED:
                problems.append(f"{mutant}: {status} (run `make mutate` again)")
        killed = sum(counts[s] for s in KILLED)
        relevant = len(statuses) - equivalent
        score = killed / relevant if relevant else 1.0
        print(
            f"{module:<12} {len(statuses):>7} {counts['killed']:>6} {counts['timeout']:>7} "
            f"{counts['survived']:>8} {counts['no tests']:>11} {equivalent:>10} "
            f"{shown(score):>24}{'' if score >= MINIMUM else ' <'}"
        )
        if score < MINIMUM:
            problems.append(f"{module}: {shown(score)} of its non-equivalent mutants killed")
        totals.update(counts)
        totals["mutants"] += len(statuses)
        totals["equivalent"] += equivalent
        totals["relevant_killed"] += killed
    relevant = totals["mutants"] - totals["equivalent"]
    print("-" * len(header))
    print(
        f"{'all':<12} {totals['mutants']:>7} {totals['killed']:>6} {totals['timeout']:>7} "
        f"{totals['survived']:>8} {totals['no tests']:>11} {totals['equivalent']:>10} "
        f"{shown(totals['relevant_killed'] / relevant if relevant else 1.0):>24}"
    )
    problems += [
        f"{m}: listed as equivalent but no such mutant (stale entry)" for m in listed.keys() - seen
    ]
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"\nevery surviving mutant is one of the {len(listed)} listed as equivalent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
