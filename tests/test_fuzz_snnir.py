"""Property-based fuzzing of the `.snnir` reader (issue 9): mutated valid files fail only with snnc's
own one-line errors. A bounded, derandomized run here; ``make fuzz`` runs 100,000 cases."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from fuzz_snnir import check, mutate, prepare, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    return prepare(tmp_path_factory.mktemp("fuzz"))


@settings(
    max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=st.integers(0, 2**32 - 1), which=st.integers(0, 1))
def test_mutated_snnir_fails_only_with_snnc_errors(seeds: list[tuple[str, Path]], case: int, which: int) -> None:
    text, folder = seeds[which]
    check(mutate(text, random.Random(case)), folder)


def test_seeds_are_valid_and_the_campaign_runner_reports_failures(tmp_path: Path, seeds: list) -> None:
    for text, folder in seeds:
        check(text, folder)  # the unmutated seeds load and verify
    assert run(50, seed=1, out=tmp_path / "failures", progress=False) == 0
    assert not (tmp_path / "failures").exists()
