"""The consent policy as a plain Python function, written from the README table ("What is
shared: consent"), for tests only.

It walks the Consent's provision tree as R4 nests it (it does not use the register's flattened
rules or its SQL), so the property tests compare two independent readings of the same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

SENSITIVE = frozenset(
    {
        "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
        "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|V",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|SEX",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|STD",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|HIV",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|MH",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|PSY",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|BH",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|SUD",
        "https://fhir.shared-care-register.nhs.uk/CodeSystem/sensitivity|reproductive-health",
        "https://fhir.shared-care-register.nhs.uk/CodeSystem/sensitivity|gender-identity",
    }
)
NOT_FOR_PATIENT = "https://fhir.shared-care-register.nhs.uk/CodeSystem/sensitivity|not-for-patient"
ALWAYS_SHARED = frozenset({"Patient", "Consent"})


@dataclass(frozen=True)
class Record:
    """A resource of a patient's record, as the policy sees it."""

    resource_type: str
    patient: str
    author_org: str | None
    labels: frozenset[str] = frozenset()  # "system|code", as stored (after labelling on write);
    # for a Provenance, its target's
    codes: frozenset[str] = frozenset()  # "system|code"
    date: datetime | None = None


@dataclass(frozen=True)
class Provision:
    """A Consent provision as written (R4), with its nested provisions."""

    effect: str  # permit | deny
    actors: frozenset[str] = frozenset()  # ODS codes; empty: any
    purposes: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()  # "system|code"
    labels: frozenset[str] = frozenset()  # "system|code"
    data_start: datetime | None = None
    data_end: datetime | None = None
    children: tuple[Provision, ...] = ()

    def matches(self, record: Record, org: str | None, purpose: str) -> bool:
        """Every criterion this provision states holds (the README's criteria table)."""
        if self.actors and org not in self.actors:
            return False
        if self.purposes and purpose not in self.purposes:
            return False
        if self.classes and record.resource_type not in self.classes:
            return False
        if self.codes and not (self.codes & record.codes):
            return False
        if self.labels and not (self.labels & record.labels):
            return False
        if self.data_start is not None or self.data_end is not None:
            if record.date is None:
                return False  # the model only generates dated records when periods are used
            if self.data_start is not None and record.date < self.data_start:
                return False
            if self.data_end is not None and record.date >= self.data_end:
                return False
        return True


@dataclass
class World:
    """What the policy decides on: care relationships, break-glass grants, Consents in force."""

    opt_in: bool = False
    relationships: set[tuple[str, str]] = field(default_factory=set)  # (org, patient)
    break_glass: set[tuple[str, str]] = field(default_factory=set)  # (clinician key, patient)
    consents: dict[str, Provision] = field(default_factory=dict)  # patient -> root, in force


@dataclass(frozen=True)
class Requester:
    """A clinician (``person`` set), an organisation's system, or a patient."""

    role: str  # clinician | system | patient
    org: str | None = None
    person: str | None = None
    patient: str | None = None
    purpose: str = "TREAT"


def _deciding(
    root: Provision, record: Record, org: str | None, purpose: str
) -> tuple[Provision, bool] | None:
    """The deepest matching provision (a nested one matches only inside a matching parent);
    at one depth a deny, then a permit naming a label or code (itself or a provision it is
    nested in), then any other permit. With it: whether it names a label or code."""
    found: list[tuple[int, int, Provision, bool]] = []

    def walk(node: Provision, depth: int, named_above: bool) -> None:
        if not node.matches(record, org, purpose):
            return
        named = named_above or bool(node.labels or node.codes)
        rank = 0 if node.effect == "deny" else (1 if named else 2)
        found.append((-depth, rank, node, named))
        for child in node.children:
            walk(child, depth + 1, named)

    walk(root, 0, False)
    if not found:
        return None
    best = min(found, key=lambda item: (item[0], item[1]))
    return best[2], best[3]


def shared(world: World, record: Record, org: str | None, purpose: str) -> bool:
    """Rules 3 and 5-7 for a requester in a care relationship (README table)."""
    if record.resource_type in ALWAYS_SHARED:
        return True
    if record.resource_type == "Provenance":  # rule 4; its labels are its target's
        return (
            not world.opt_in
            and record.patient not in world.consents
            and not (record.labels & SENSITIVE)
        )
    root = world.consents.get(record.patient)
    deciding = _deciding(root, record, org, purpose) if root is not None else None
    if record.labels & SENSITIVE:
        return deciding is not None and deciding[0].effect == "permit" and deciding[1]
    if deciding is not None:
        return deciding[0].effect == "permit"
    return not world.opt_in


def visible(world: World, who: Requester, record: Record) -> bool:
    """Whether ``who`` sees ``record`` (the README table, rules 1-9)."""
    if who.role == "patient":
        return record.patient == who.patient and NOT_FOR_PATIENT not in record.labels
    if who.org is not None and record.author_org == who.org:
        return True  # rule 1
    if who.role == "clinician" and (f"{who.org}|{who.person}", record.patient) in world.break_glass:
        return True  # rule 2
    if (who.org, record.patient) in world.relationships:
        return shared(world, record, who.org, who.purpose)  # rules 3, 5-7
    return False
