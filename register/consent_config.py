"""The consent policy's data: which labels are sensitive or not for the patient, which types are
never withheld, which dates are a resource's clinical date (``register/data/consent-policy.json``
and ``register/data/sensitive-codes.json``), turned into :class:`auth.policy.PolicyConfig` values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from auth.policy import SharingModel
from register import sensitivity

DATA_FILE = Path(__file__).with_name("data") / "consent-policy.json"


@dataclass(frozen=True)
class ConsentData:
    """The contents of ``consent-policy.json``."""

    not_for_patient_labels: frozenset[str]
    not_for_patient_label: tuple[str, str, str]  # the first: system, code, display
    always_shared_types: frozenset[str]
    clinical_date_params: tuple[str, ...]


@lru_cache(maxsize=2)
def load(path: Path = DATA_FILE) -> ConsentData:
    """Read the consent policy data file."""
    raw = orjson.loads(path.read_bytes())
    labels = raw["not_for_patient_labels"]
    first = labels[0]
    return ConsentData(
        frozenset(f"{item['system']}|{item['code']}" for item in labels),
        (first["system"], first["code"], first.get("display", first["code"])),
        frozenset(raw["always_shared_types"]),
        tuple(raw["clinical_date_params"]),
    )


def policy_settings(default_model: str) -> dict[str, Any]:
    """The consent fields of :class:`auth.policy.PolicyConfig` for a register."""
    data = load()
    return {
        "sharing_model": SharingModel(default_model),
        "sensitive_labels": sensitivity.load().sensitive_labels,
        "not_for_patient_labels": data.not_for_patient_labels,
        "always_shared_types": data.always_shared_types,
    }
