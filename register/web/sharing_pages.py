"""Patients' sharing choices, written as their FHIR Consent (scope ``patient-privacy``).

The choices a person makes here, and the Consent they become (enforced by the register on every
read path from the very next request: README "What is shared: consent"):

=========================== ===========================================================
choice                      Consent provision
=========================== ===========================================================
every organisation caring   root ``permit``
only some organisations     root ``deny``; nested ``permit`` per chosen organisation
                            (``actor`` by ODS code)
none beyond the recorder    root ``deny`` (an organisation always sees what it recorded)
a sensitive category shared ``permit`` naming the category's ``securityLabel``, nested
                            in each permit above (so it follows the same organisations)
=========================== ===========================================================

A sensitive category not chosen stays withheld (the register withholds sensitive data unless a
permit names it). Every change is shown back for confirmation before it is saved; saving writes
the Consent through the FHIR API with the patient's own token (a new Consent the first time,
then a new version of the same one).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from register.relationships import ODS_SYSTEM
from register.sensitivity import load as sensitive_categories
from register.web.fhir_client import Fhir
from register.web.guard import form_lists, form_of, session_for
from register.web.record import load_record
from register.web.render import page

router = APIRouter(include_in_schema=False)
ROLE = "patient"
SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CHOICES = {
    "all": "Share with every organisation caring for me",
    "some": "Share only with the organisations I choose",
    "none": "Do not share: each organisation sees only what it recorded itself",
}


def _categories() -> list[dict[str, str]]:
    return [
        {
            "key": c.key,
            "name": c.name,
            "system": c.label[0],
            "code": c.label[1],
            "display": c.label[2],
        }
        for c in sensitive_categories().categories
    ]


def consent_for(
    patient_id: str, choice: str, organisations: list[str], shared: list[str]
) -> dict[str, Any]:
    """The Consent that says ``choice`` (with the chosen organisations' ODS codes and the keys
    of the sensitive categories to share)."""
    labels = [
        {"system": c["system"], "code": c["code"], "display": c["display"]}
        for c in _categories()
        if c["key"] in shared
    ]
    sensitive = [{"type": "permit", "securityLabel": labels}] if labels else []
    if choice == "all":
        provision: dict[str, Any] = {"type": "permit"}
        if sensitive:
            provision["provision"] = sensitive
    elif choice == "some":
        provision = {
            "type": "deny",
            "provision": [
                {
                    "type": "permit",
                    "actor": [
                        {
                            "role": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
                            "reference": {"identifier": {"system": ODS_SYSTEM, "value": code}},
                        }
                    ],
                    **({"provision": sensitive} if sensitive else {}),
                }
                for code in organisations
            ],
        }
        if not organisations:
            provision = {"type": "deny"}
    else:
        provision = {"type": "deny"}
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": datetime.now(UTC).isoformat(timespec="seconds"),
        "performer": [{"reference": f"Patient/{patient_id}"}],
        "policyRule": {
            "coding": [{"system": ACT_CODE, "code": "OPTOUT" if choice == "none" else "OPTIN"}]
        },
        "provision": provision,
    }


def choices_of(consent: dict[str, Any] | None) -> dict[str, Any]:
    """What a Consent written by this page says, as the form's choices (None: no Consent)."""
    if consent is None:
        return {"choice": "all", "organisations": [], "shared": [], "recorded": False}
    root = consent.get("provision") or {}
    nested = root.get("provision") or []
    organisations = [
        actor["reference"]["identifier"]["value"]
        for p in nested
        for actor in p.get("actor") or []
        if (actor.get("reference") or {}).get("identifier", {}).get("value")
    ]
    labels = {
        f"{label.get('system')}|{label.get('code')}"
        for p in [root, *nested, *(q for n in nested for q in n.get("provision") or [])]
        for label in p.get("securityLabel") or []
    }
    shared = [c["key"] for c in _categories() if f"{c['system']}|{c['code']}" in labels]
    if root.get("type") == "permit":
        choice = "all"
    elif organisations:
        choice = "some"
    else:
        choice = "none"
    return {"choice": choice, "organisations": organisations, "shared": shared, "recorded": True}


def _codings(concept: Any) -> list[dict[str, Any]]:
    return list((concept or {}).get("coding") or []) if isinstance(concept, dict) else []


async def _current(fhir: Fhir, patient_id: str) -> dict[str, Any] | None:
    answer = await fhir.get(
        "Consent",
        params={"patient": f"Patient/{patient_id}", "status": "active", "_count": "100"},
        patient_id=patient_id,
    )
    sharing = [
        c
        for c in answer.entries("Consent")
        if any(x.get("code") == "patient-privacy" for x in _codings(c.get("scope")))
    ]
    sharing.sort(key=lambda c: (c.get("meta") or {}).get("lastUpdated", ""), reverse=True)
    return sharing[0] if sharing else None


async def _context(request: Request, session: Any) -> dict[str, Any]:
    patient_id = (session.identity.fhir_user or "").split("/", 1)[-1]
    fhir = Fhir(request, session)
    record = await load_record(fhir, patient_id)
    current = await _current(fhir, patient_id)
    return {
        "patient_id": patient_id,
        "current": current,
        "organisations": sorted(record.organisations.items(), key=lambda item: item[1]),
        "categories": _categories(),
        "chosen": choices_of(current),
    }


@router.get("/my/sharing")
async def sharing(request: Request, saved: str = "") -> Response:
    """My sharing choices: who may see my record, and whether sensitive parts are shared."""
    session = await session_for(request, ROLE)
    context = await _context(request, session)
    return page(
        request,
        "patient/sharing.html",
        session,
        title="My sharing choices",
        saved=bool(saved),
        choices=CHOICES,
        errors={},
        **context,
    )


@router.post("/my/sharing")
async def change(request: Request) -> Response:
    """Check the new choices with the person, then (once confirmed) save them as their Consent."""
    session = await session_for(request, ROLE)
    form = await form_of(request, session)
    lists = await form_lists(request)
    context = await _context(request, session)
    known = {code for code, _ in context["organisations"]}
    choice = form.get("choice", "")
    organisations = [o for o in lists.get("organisation", []) if o in known]
    shared = [k for k in lists.get("share", []) if k in {c["key"] for c in context["categories"]}]
    errors: dict[str, str] = {}
    if choice not in CHOICES:
        errors["choice-all"] = "Choose who may see your record"
    elif choice == "some" and not organisations:
        errors["organisation-0"] = "Choose at least one organisation, or choose another option"
    wanted = {
        "choice": choice,
        "organisations": organisations,
        "shared": shared,
        "recorded": context["chosen"]["recorded"],
    }
    if errors:
        context["chosen"] = wanted
        return page(
            request,
            "patient/sharing.html",
            session,
            status=400,
            title="My sharing choices",
            saved=False,
            choices=CHOICES,
            errors=errors,
            **context,
        )
    if form.get("confirm") != "yes":
        return page(
            request,
            "patient/sharing_confirm.html",
            session,
            title="Check your sharing choices",
            choices=CHOICES,
            wanted=wanted,
            names=dict(context["organisations"]),
            categories=context["categories"],
        )
    consent = consent_for(context["patient_id"], choice, organisations, shared)
    fhir = Fhir(request, session)
    current = context["current"]
    if current is not None:
        consent["id"] = current["id"]
        answer = await fhir.call("PUT", f"Consent/{current['id']}", body=consent)
    else:
        answer = await fhir.post("Consent", consent)
    if not answer.ok:
        return page(
            request,
            "message.html",
            session,
            status=400,
            title="Not saved",
            message=" ".join(answer.issues()) or "The register did not accept it.",
            link="/my/sharing",
            link_text="Back to my sharing choices",
        )
    return RedirectResponse("/my/sharing?saved=1", status_code=303)
