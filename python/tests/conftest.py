"""Fixtures: the runs made by tests/python_package.rs with the real binary (paths in env vars)
and the shipped models. A missing variable fails the test: these tests only mean something
against real output."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run_dir(var: str) -> Path:
    value = os.environ.get(var)
    if not value:
        pytest.fail(f"{var} is not set: run these tests through `cargo test --test python_package`")
    return Path(value)


@pytest.fixture(scope="session")
def tiny() -> Path:
    """tiny-train run: trained checkpoints, rollout.h5 (sigma 0, a snapshot every step) and the
    exports models/ (float32), half/ (--half), raw/ (--thermalizer-only, rollout.ema=false)."""
    return _run_dir("THERMALIZER_TEST_TINY")


@pytest.fixture(scope="session")
def shipped_run() -> Path:
    """Kolmogorov data of the small experiment's system, rolled out with the shipped models of
    data/kolmogorov-small (sigma 0, a snapshot every step)."""
    return _run_dir("THERMALIZER_TEST_SHIPPED")


@pytest.fixture(scope="session")
def shipped() -> Path:
    return REPO / "data"
