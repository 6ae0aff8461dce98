"""Figures the hardening suites publish (SECURITY.md, docs/reliability.md).

A suite calls `record("tenant-wall cases", 1234)` (or `add(...)` to sum over
tests); the suite's terminal summary prints every figure recorded in the run,
so the published numbers can be checked against what the suites really did.
"""

from __future__ import annotations

FIGURES: dict[str, int | float | str] = {}


def record(name: str, value: int | float | str) -> None:
    FIGURES[name] = value


def add(name: str, amount: int | float = 1) -> None:
    FIGURES[name] = FIGURES.get(name, 0) + amount
