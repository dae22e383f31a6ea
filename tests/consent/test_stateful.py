"""A hypothesis state machine over HTTP: random organisations' records, care relationships,
labelled data, Consents and break-glass, and random requests from random roles through every
read path; what the server returns must equal what the reference model (tests/consent/
reference.py, written from the README table) allows, every time, and totals never count what
is hidden. Runs on SQLite and PostgreSQL.

Each example works in its own corner of the database (organisation codes and ids carry a fresh
tag), so examples share one app and database without seeing each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.consent.helpers import ACT, CONF, consent, has_notice
from tests.consent.reference import (
    NOT_FOR_PATIENT as NFP,
)
from tests.consent.reference import (
    Provision,
    Record,
    Requester,
    World,
    visible,
)

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ORG_KEYS = ("A", "B", "C")
PATIENT_KEYS = (0, 1)
CODES = {  # code -> label the register adds on write
    f"{LOINC}|4548-4": None,
    f"{SNOMED}|35489007": f"{ACT}|MH",  # depressive disorder
    f"{SNOMED}|169553002": f"{ACT}|SEX",  # contraceptive implant
    f"{SNOMED}|44054006": None,  # diabetes type 2
}
EXTRA_LABELS = {
    "none": None,
    "restricted": f"{CONF}|R",
    "substance": f"{ACT}|ETH",
    "not-for-patient": NFP,
}
YEARS = (2015, 2020)
PERIODS = (
    (datetime(2010, 1, 1, tzinfo=UTC), datetime(2016, 1, 1, tzinfo=UTC)),
    (datetime(2018, 1, 1, tzinfo=UTC), datetime(2023, 1, 1, tzinfo=UTC)),
)
LABEL_CHOICES = (f"{ACT}|MH", f"{ACT}|SEX", f"{ACT}|ETH", f"{CONF}|R")


def _one_or_none(values: Any) -> Any:
    return st.one_of(st.just(frozenset()), st.sampled_from(values).map(lambda v: frozenset({v})))


def provisions(depth: int = 0) -> Any:
    """Random provision trees (at most two levels of nesting, a few criteria each)."""
    node = st.builds(
        lambda effect, actors, classes, labels, codes, period, purposes, children: Provision(
            effect,
            actors=actors,
            classes=classes,
            labels=labels,
            codes=codes,
            data_start=period[0] if period else None,
            data_end=period[1] if period else None,
            purposes=purposes,
            children=tuple(children),
        ),
        effect=st.sampled_from(["permit", "deny"]),
        actors=_one_or_none(ORG_KEYS),  # keys, replaced by the example's ODS codes
        classes=_one_or_none(("Observation", "Condition", "Encounter")),
        labels=_one_or_none(LABEL_CHOICES),
        codes=_one_or_none(tuple(CODES)),
        period=st.one_of(st.none(), st.none(), st.sampled_from(PERIODS)),
        purposes=st.sampled_from(
            [frozenset(), frozenset(), frozenset({"TREAT"}), frozenset({"ETREAT"})]
        ),
        children=st.lists(provisions(depth + 1), max_size=2) if depth < 2 else st.just([]),
    )
    return node


def _with_codes(node: Provision, codes: dict[str, str]) -> Provision:
    """The tree with organisation keys replaced by ODS codes."""
    return Provision(
        node.effect,
        actors=frozenset(codes[a] for a in node.actors),
        purposes=node.purposes,
        classes=node.classes,
        codes=node.codes,
        labels=node.labels,
        data_start=node.data_start,
        data_end=node.data_end,
        children=tuple(_with_codes(c, codes) for c in node.children),
    )


def _instant(year: int) -> str:
    return f"{year}-06-01T10:00:00Z"


class ConsentMachine(RuleBasedStateMachine):
    """One example: three organisations, two patients, and whatever the rules do to them."""

    http: Any
    token_for: Callable[..., str]

    def __init__(self) -> None:
        super().__init__()
        self.tag = uuid.uuid4().hex[:6].upper()
        self.ods = {key: f"{key}{self.tag}" for key in ORG_KEYS}
        self.model = World()
        self.records: dict[str, Record] = {}  # "Type/id" -> record (its current version)
        self.versions: dict[str, list[Record]] = {}  # "Type/id" -> each version, oldest first
        self.provenances: list[Record] = []  # of each Patient version written
        self.consents: dict[str, list[tuple[str, Provision | None, bool]]] = {}
        self.tokens: dict[Requester, str] = {}
        self.count = 0

    # --- helpers --------------------------------------------------------------------------

    def pid(self, key: int) -> str:
        return f"pt-{self.tag}-{key}"

    def token(self, who: Requester) -> str:
        found = self.tokens.get(who)
        if found is None:
            if who.role == "patient":
                found = self.token_for(
                    "patient", fhir_user=f"Patient/{who.patient}", subject=who.patient
                )
            elif who.role == "clinician":
                found = self.token_for(
                    "clinician",
                    org=who.org,
                    fhir_user=f"Practitioner/{who.person}",
                    subject=who.person,
                )
            else:
                found = self.token_for("system", org=who.org, subject=f"sys-{who.org}")
            self.tokens[who] = found
        return found

    def system(self, key: str) -> Requester:
        return Requester("system", org=self.ods[key])

    def clinician(self, key: str) -> Requester:
        return Requester("clinician", org=self.ods[key], person=f"doc-{self.ods[key]}")

    def patient(self, key: int) -> Requester:
        return Requester("patient", patient=self.pid(key))

    def send(self, who: Requester, method: str, url: str, body: Any = None, **headers: str) -> Any:
        headers = {"Authorization": f"Bearer {self.token(who)}", **headers}
        return self.http.request(method, f"/fhir/{url}", json=body, headers=headers)

    def put(
        self,
        who: Requester,
        resource: dict[str, Any],
        patient: str | None = None,
        labels: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        response = self.send(who, "PUT", f"{resource['resourceType']}/{resource['id']}", resource)
        assert response.status_code in (200, 201), response.text
        if resource["resourceType"] == "Patient" and patient is not None:
            # The register records a Provenance of every version; only those whose target is
            # the Patient are in the patient's compartment (R4's Provenance ``patient``
            # parameter), so only they are part of what $everything returns or withholds.
            self.provenances.append(Record("Provenance", patient, who.org, labels))
        return dict(response.json())

    def new_id(self, kind: str) -> str:
        self.count += 1
        return f"{kind}-{self.tag}-{self.count}"

    def requesters(self) -> list[Requester]:
        return (
            [self.clinician(k) for k in ORG_KEYS]
            + [self.system(k) for k in ORG_KEYS]
            + [self.patient(k) for k in PATIENT_KEYS]
        )

    # --- the world ------------------------------------------------------------------------

    @initialize()
    def build(self) -> None:
        for key in ORG_KEYS:
            self.put(
                self.system("A"),
                {
                    "resourceType": "Organization",
                    "id": f"org-{self.ods[key]}",
                    "identifier": [{"system": ODS, "value": self.ods[key]}],
                },
            )
        for key in PATIENT_KEYS:
            pid = self.pid(key)
            self.put(
                self.system("A"),
                {"resourceType": "Patient", "id": pid, "name": [{"family": f"Fam{self.tag}{key}"}]},
                patient=pid,
            )
            self.records[f"Patient/{pid}"] = Record("Patient", pid, self.ods["A"])

    def relate_to(self, org: str, patient: int) -> None:
        ods, pid = self.ods[org], self.pid(patient)
        if (ods, pid) in self.model.relationships:
            return
        rid = self.new_id("enc")
        self.put(
            self.system(org),
            {
                "resourceType": "Encounter",
                "id": rid,
                "status": "in-progress",
                "class": {"system": f"{ACT}", "code": "AMB"},
                "subject": {"reference": f"Patient/{pid}"},
                "serviceProvider": {"reference": f"Organization/org-{ods}"},
            },
            patient=pid,
        )
        self.records[f"Encounter/{rid}"] = Record("Encounter", pid, ods)
        self.model.relationships.add((ods, pid))

    @rule(org=st.sampled_from(ORG_KEYS), patient=st.sampled_from(PATIENT_KEYS))
    def relate(self, org: str, patient: int) -> None:
        self.relate_to(org, patient)

    @rule(
        org=st.sampled_from(ORG_KEYS),
        patient=st.sampled_from(PATIENT_KEYS),
        kind=st.sampled_from(["Observation", "Condition"]),
        code=st.sampled_from(tuple(CODES)),
        extra=st.sampled_from(tuple(EXTRA_LABELS)),
        year=st.sampled_from(YEARS),
    )
    def record(self, org: str, patient: int, kind: str, code: str, extra: str, year: int) -> None:
        if org != "A":
            self.relate_to(org, patient)  # A registered the patients; others need a relationship
        self.write_version(
            org, self.pid(patient), kind, self.new_id(kind[:3].lower()), code, extra, year
        )

    @precondition(
        lambda self: any(r.split("/")[0] in ("Observation", "Condition") for r in self.records)
    )
    @rule(
        data=st.data(),
        code=st.sampled_from(tuple(CODES)),
        extra=st.sampled_from(tuple(EXTRA_LABELS)),
        year=st.sampled_from(YEARS),
    )
    def amend(self, data: st.DataObject, code: str, extra: str, year: int) -> None:
        """The organisation that recorded an Observation or Condition corrects it: a new
        version with other codes, labels or date (an earlier version keeps its own)."""
        ref = data.draw(
            st.sampled_from(
                sorted(r for r in self.records if r.split("/")[0] in ("Observation", "Condition"))
            )
        )
        kind, rid = ref.split("/")
        current = self.records[ref]
        org = next(k for k, ods in self.ods.items() if ods == current.author_org)
        self.write_version(org, current.patient, kind, rid, code, extra, year)

    def write_version(
        self, org: str, pid: str, kind: str, rid: str, code: str, extra: str, year: int
    ) -> None:
        system, _, value = code.rpartition("|")
        body: dict[str, Any] = {
            "resourceType": kind,
            "id": rid,
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": system, "code": value}]},
        }
        if kind == "Observation":
            body |= {"status": "final", "effectiveDateTime": _instant(year)}
        else:
            body["onsetDateTime"] = _instant(year)
        label = EXTRA_LABELS[extra]
        if label is not None:
            s, _, c = label.rpartition("|")
            body["meta"] = {"security": [{"system": s, "code": c}]}
        labels = {x for x in (label, CODES[code]) if x is not None}
        self.put(self.system(org), body, patient=pid, labels=frozenset(labels))
        self.records[f"{kind}/{rid}"] = Record(
            kind,
            pid,
            self.ods[org],
            frozenset(labels),
            frozenset({code}),
            datetime(year, 6, 1, 10, tzinfo=UTC),
        )
        self.versions.setdefault(f"{kind}/{rid}", []).append(self.records[f"{kind}/{rid}"])

    @rule(patient=st.sampled_from(PATIENT_KEYS), root=provisions(), by_clinician=st.booleans())
    def write_consent(self, patient: int, root: Provision, by_clinician: bool) -> None:
        pid = self.pid(patient)
        tree = _with_codes(root, self.ods)
        rid = self.new_id("consent")
        body = consent(pid, tree, rid=rid)
        writer = self.patient(patient)
        if by_clinician:
            writer = self.clinician("A")  # A registered the patient: it may record for them
            body |= {
                "performer": [{"reference": f"Patient/{pid}"}],
                "verification": [{"verified": True, "verificationDate": "2026-11-01"}],
            }
        self.put(writer, body, patient=pid)
        history = self.consents.setdefault(pid, [])
        history.append((rid, tree, True))
        self.records[f"Consent/{rid}"] = Record(
            "Consent", pid, self.ods["A"] if by_clinician else None
        )
        self._in_force(pid)

    @precondition(lambda self: any(active for h in self.consents.values() for _, _, active in h))
    @rule(data=st.data())
    def withdraw_consent(self, data: st.DataObject) -> None:
        choices = sorted((pid, rid) for pid, h in self.consents.items() for rid, _, a in h if a)
        pid, rid = data.draw(st.sampled_from(choices))
        response = self.send(self.patient(PATIENT_KEYS[int(pid[-1])]), "GET", f"Consent/{rid}")
        assert response.status_code == 200, response.text
        self.put(
            self.patient(PATIENT_KEYS[int(pid[-1])]),
            {**response.json(), "status": "inactive"},
            patient=pid,
        )
        # The patient wrote the current version: it is no longer an organisation's record.
        self.records[f"Consent/{rid}"] = Record("Consent", pid, None)
        history = self.consents[pid]
        tree = next(t for r, t, _ in history if r == rid)
        history[:] = [item for item in history if item[0] != rid] + [(rid, tree, False)]
        self._in_force(pid)

    def _in_force(self, pid: str) -> None:
        active = [tree for _, tree, on in self.consents.get(pid, []) if on]
        if active and active[-1] is not None:
            self.model.consents[pid] = active[-1]
        else:
            self.model.consents.pop(pid, None)

    @rule(org=st.sampled_from(ORG_KEYS), patient=st.sampled_from(PATIENT_KEYS))
    def break_glass(self, org: str, patient: int) -> None:
        who, pid = self.clinician(org), self.pid(patient)
        reason = {"X-Break-Glass-Reason": "Collapsed, needs history"}
        response = self.send(who, "GET", f"Patient/{pid}", **reason)
        assert response.status_code == 200, response.text
        if (who.org, pid) not in self.model.relationships:
            self.model.break_glass.add((f"{who.org}|{who.person}", pid))

    # --- requests -------------------------------------------------------------------------

    def allowed(self, who: Requester, *types: str, patient: str | None = None) -> set[str]:
        return {
            ref
            for ref, rec in self.records.items()
            if rec.resource_type in types
            and (patient is None or rec.patient == patient)
            and visible(self.model, who, rec)
        }

    def withheld(self, who: Requester, types: tuple[str, ...], patient: str) -> bool:
        """Whether the consent rules removed a record of these types (what the notice says)."""
        if who.role == "patient":
            return False
        for rec in [*self.records.values(), *self.provenances]:
            if rec.resource_type not in types or rec.patient != patient:
                continue
            reachable = (
                rec.author_org == who.org
                or (who.org, rec.patient) in self.model.relationships
                or (
                    who.role == "clinician"
                    and (f"{who.org}|{who.person}", rec.patient) in self.model.break_glass
                )
            )
            if reachable and not visible(self.model, who, rec):
                return True
        return False

    def pages(self, who: Requester, url: str) -> tuple[list[dict[str, Any]], Any]:
        response = self.send(who, "GET", url)
        assert response.status_code == 200, response.text
        bundle = response.json()
        total, entries = bundle.get("total"), list(bundle.get("entry", []))
        first = bundle
        while nxt := next(
            (x["url"] for x in bundle.get("link", []) if x["relation"] == "next"), None
        ):
            response = self.http.get(nxt, headers={"Authorization": f"Bearer {self.token(who)}"})
            assert response.status_code == 200, response.text
            bundle = response.json()
            entries += bundle.get("entry", [])
        return entries, (total, first)

    @staticmethod
    def refs(entries: list[dict[str, Any]], mode: str | None = None) -> list[str]:
        return [
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in entries
            if e["resource"]["resourceType"] != "OperationOutcome"
            and (mode is None or e["search"]["mode"] == mode)
        ]

    @rule(
        data=st.data(),
        kind=st.sampled_from(["Observation", "Condition", "Encounter", "Consent"]),
        patient=st.sampled_from(PATIENT_KEYS),
    )
    def search(self, data: st.DataObject, kind: str, patient: int) -> None:
        who = data.draw(st.sampled_from(self.requesters()))
        pid = self.pid(patient)
        entries, (total, first) = self.pages(who, f"{kind}?patient={pid}&_total=accurate&_count=2")
        found = self.refs(entries)
        want = self.allowed(who, kind, patient=pid)
        assert sorted(found) == sorted(want), (who, kind)
        assert len(found) == len(set(found))
        assert total == len(want)
        assert has_notice(first) == self.withheld(who, (kind,), pid), (who, kind)
        counted = self.send(who, "GET", f"{kind}?patient={pid}&_summary=count").json()
        assert counted["total"] == len(want)

    @precondition(lambda self: len(self.records) > 2)
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        who = data.draw(st.sampled_from(self.requesters()))
        ref = data.draw(st.sampled_from(sorted(self.records)))
        expected = visible(self.model, who, self.records[ref])
        response = self.send(who, "GET", ref)
        assert response.status_code == (200 if expected else 404), (who, ref, response.text)
        history = self.send(who, "GET", f"{ref}/_history")
        assert history.status_code == (200 if expected else 404), (who, ref)
        if expected:
            assert {e["resource"]["id"] for e in history.json()["entry"]} == {ref.split("/")[1]}

    @precondition(lambda self: any(len(v) > 1 for v in self.versions.values()))
    @rule(data=st.data())
    def read_versions(self, data: st.DataObject) -> None:
        ref = data.draw(st.sampled_from(sorted(r for r, v in self.versions.items() if len(v) > 1)))
        who = data.draw(st.sampled_from(self.requesters()))
        self.check_versions(who, ref)

    def check_versions(self, who: Requester, ref: str) -> None:
        """History and vread of a corrected record: an earlier version is served only if the
        resource is visible now and the version is visible as what it was (its own codes,
        labels and date)."""
        versions = self.versions[ref]
        now = visible(self.model, who, self.records[ref])
        shown = {
            str(number)
            for number, rec in enumerate(versions, start=1)
            if now and visible(self.model, who, rec)
        }
        history = self.send(who, "GET", f"{ref}/_history")
        assert history.status_code == (200 if now else 404), (who, ref)
        if now:
            served = {e["resource"]["meta"]["versionId"] for e in history.json()["entry"]}
            assert served == shown, (who, ref, versions)
        for number in range(1, len(versions) + 1):
            vread = self.send(who, "GET", f"{ref}/_history/{number}")
            assert vread.status_code == (200 if str(number) in shown else 404), (who, ref, number)

    @rule(data=st.data(), patient=st.sampled_from(PATIENT_KEYS))
    def includes(self, data: st.DataObject, patient: int) -> None:
        who, pid = data.draw(st.sampled_from(self.requesters())), self.pid(patient)
        url = f"Patient?_id={pid}&_revinclude=Observation:patient&_revinclude=Condition:subject"
        entries, _ = self.pages(who, url)
        patient_seen = visible(self.model, who, self.records[f"Patient/{pid}"])
        assert self.refs(entries, "match") == ([f"Patient/{pid}"] if patient_seen else [])
        want = self.allowed(who, "Observation", "Condition", patient=pid) if patient_seen else set()
        assert sorted(self.refs(entries, "include")) == sorted(want)
        # Forward: each visible Observation includes its Patient only when the Patient is visible
        entries, _ = self.pages(who, f"Observation?patient={pid}&_include=Observation:subject")
        assert sorted(self.refs(entries, "match")) == sorted(
            self.allowed(who, "Observation", patient=pid)
        )
        included = self.refs(entries, "include")
        assert included == (
            [f"Patient/{pid}"] if patient_seen and self.refs(entries, "match") else []
        )

    @rule(data=st.data(), patient=st.sampled_from(PATIENT_KEYS), code=st.sampled_from(tuple(CODES)))
    def has_and_chain(self, data: st.DataObject, patient: int, code: str) -> None:
        who, pid = data.draw(st.sampled_from(self.requesters())), self.pid(patient)
        patient_seen = visible(self.model, who, self.records[f"Patient/{pid}"])
        entries, _ = self.pages(who, f"Patient?_id={pid}&_has:Condition:patient:code={code}")
        hit = any(
            self.records[r].codes == {code} for r in self.allowed(who, "Condition", patient=pid)
        )
        assert self.refs(entries) == ([f"Patient/{pid}"] if patient_seen and hit else [])
        entries, (total, _) = self.pages(
            who, f"Condition?subject:Patient.name=Fam{self.tag}{patient}&_total=accurate"
        )
        want = self.allowed(who, "Condition", patient=pid) if patient_seen else set()
        assert sorted(self.refs(entries)) == sorted(want) and total == len(want)

    @rule(data=st.data(), patient=st.sampled_from(PATIENT_KEYS))
    def everything(self, data: st.DataObject, patient: int) -> None:
        who, pid = data.draw(st.sampled_from(self.requesters())), self.pid(patient)
        response = self.send(who, "GET", f"Patient/{pid}/$everything?_count=1000")
        if not visible(self.model, who, self.records[f"Patient/{pid}"]):
            assert response.status_code == 404
            return
        assert response.status_code == 200, response.text
        entries = response.json().get("entry", [])
        types = ("Observation", "Condition", "Encounter", "Consent", "Patient")
        found = [r for r in self.refs(entries) if r.split("/")[0] in types]
        assert sorted(found) == sorted(self.allowed(who, *types, patient=pid)), who
        assert has_notice(response.json()) == self.withheld(who, (*types, "Provenance"), pid)

    @invariant()
    def nothing_to_check(self) -> None:
        pass


def test_the_server_returns_what_the_model_allows(client, token_for) -> None:  # type: ignore[no-untyped-def]
    ConsentMachine.http = client
    ConsentMachine.token_for = staticmethod(token_for)  # type: ignore[assignment]
    run_state_machine_as_test(
        ConsentMachine,
        settings=settings(
            max_examples=int(__import__("os").environ.get("CONSENT_EXAMPLES", "10")),
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )


VERSION = st.tuples(
    st.sampled_from(tuple(CODES)), st.sampled_from(tuple(EXTRA_LABELS)), st.sampled_from(YEARS)
)


def test_earlier_versions_are_judged_by_their_own_facts(client, token_for) -> None:  # type: ignore[no-untyped-def]
    """A record corrected once or twice (codes, labels, dates change), random care
    relationships and a random Consent: every requester's history and vreads of it must be
    what the reference model allows for each version (with the resource visible now)."""
    ConsentMachine.http = client
    ConsentMachine.token_for = staticmethod(token_for)  # type: ignore[assignment]

    @settings(
        max_examples=int(__import__("os").environ.get("CONSENT_EXAMPLES", "10")) * 2,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(
        author=st.sampled_from(ORG_KEYS),
        kind=st.sampled_from(["Observation", "Condition"]),
        versions=st.lists(VERSION, min_size=2, max_size=3),
        carers=st.sets(st.sampled_from(ORG_KEYS)),
        root=st.one_of(st.none(), provisions()),
    )
    def check(
        author: str,
        kind: str,
        versions: list[tuple[str, str, int]],
        carers: set[str],
        root: Provision | None,
    ) -> None:
        machine = ConsentMachine()
        machine.build()
        for org in sorted(carers | ({author} - {"A"})):
            machine.relate_to(org, 0)
        if root is not None:
            machine.write_consent(0, root, by_clinician=False)
        rid = machine.new_id(kind[:3].lower())
        for code, extra, year in versions:
            machine.write_version(author, machine.pid(0), kind, rid, code, extra, year)
        for who in machine.requesters():
            machine.check_versions(who, f"{kind}/{rid}")

    check()
