"""Fixtures for the ask-once engines: the shipped Questionnaires and the Synthea patients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.ask_once.synthea import SyntheaPatient, all_patients
from tests.conftest import shared_data

QUESTIONNAIRES = Path(__file__).resolve().parents[2] / "register" / "data" / "questionnaires"


def questionnaire(name: str) -> dict[str, Any]:
    """A shipped Questionnaire by file name (without .json)."""
    return json.loads((QUESTIONNAIRES / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def annual_review() -> dict[str, Any]:
    """The diabetes annual review Questionnaire."""
    return questionnaire("diabetes-annual-review")


@pytest.fixture(scope="session")
def clerking() -> dict[str, Any]:
    """The admission clerking Questionnaire."""
    return questionnaire("admission-clerking")


@pytest.fixture(scope="session")
def synthea() -> list[SyntheaPatient]:
    """Every Synthea patient of the shared data, as register records."""
    return list(all_patients(shared_data("synthea")))
