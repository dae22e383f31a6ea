"""Patient matching for duplicate registrations and ``Patient/$match``.

A candidate's score is the sum of weights of the demographics that agree (NHS number alone
decides); grades follow the FHIR match-grade value set. Pure functions of two identities.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
WEIGHTS = {"family": 0.3, "given": 0.2, "birth_date": 0.3, "gender": 0.1, "postcode": 0.1}
STRONG_MATCH = 0.9  # family, given, birth date and gender at least
GRADES = ((0.9, "probable"), (0.7, "possible"))


def normalise(text: str | None) -> str:
    """Case-, accent- and space-insensitive form of a name or postcode."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isalnum()).casefold()


@dataclass(frozen=True)
class Identity:
    """The demographics used to match patients."""

    patient_id: str
    nhs_number: str | None
    family: str
    given: str
    birth_date: str | None
    gender: str | None
    postcode: str

    @classmethod
    def of(cls, patient: dict[str, Any]) -> Identity:
        """The identity of a Patient resource (official name first, home address first)."""
        nhs = next(
            (
                i.get("value")
                for i in patient.get("identifier", []) or []
                if isinstance(i, dict) and i.get("system") == NHS_SYSTEM and i.get("value")
            ),
            None,
        )
        names = [n for n in patient.get("name", []) or [] if isinstance(n, dict)]
        name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
        given = (name.get("given") or [""])[0] if isinstance(name.get("given"), list) else ""
        addresses = [a for a in patient.get("address", []) or [] if isinstance(a, dict)]
        address = next(
            (a for a in addresses if a.get("use") == "home"), addresses[0] if addresses else {}
        )
        return cls(
            patient_id=str(patient.get("id", "")),
            nhs_number=str(nhs).replace(" ", "")[:16] if nhs else None,
            family=normalise(name.get("family"))[:100],
            given=normalise(given)[:100],
            birth_date=patient.get("birthDate"),
            gender=patient.get("gender"),
            postcode=normalise(address.get("postalCode"))[:16],
        )


def score(query: Identity, candidate: Identity) -> float:
    """How strongly ``candidate`` is the same person as ``query`` (0..1)."""
    if query.nhs_number and candidate.nhs_number:
        return 1.0 if query.nhs_number == candidate.nhs_number else 0.0
    total = 0.0
    if query.family and query.family == candidate.family:
        total += WEIGHTS["family"]
    if query.given and candidate.given:
        if query.given == candidate.given:
            total += WEIGHTS["given"]
        elif query.given[0] == candidate.given[0]:
            total += WEIGHTS["given"] / 2
    if query.birth_date and query.birth_date == candidate.birth_date:
        total += WEIGHTS["birth_date"]
    if query.gender and query.gender == candidate.gender:
        total += WEIGHTS["gender"]
    if query.postcode and query.postcode == candidate.postcode:
        total += WEIGHTS["postcode"]
    return round(total, 4)


def grade(query: Identity, candidate: Identity, value: float) -> str:
    """The match-grade: certain (same NHS number), probable, possible or certainly-not."""
    if query.nhs_number and query.nhs_number == candidate.nhs_number:
        return "certain"
    for threshold, name in GRADES:
        if value >= threshold:
            return name
    return "certainly-not"
