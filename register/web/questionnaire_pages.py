"""Clinicians' questionnaires: start one pre-filled from the register, confirm or change each
answer, submit it as a QuestionnaireResponse.

The pre-fill is the SDC engine (``fhir_adapters/sdc.py``, ``populate``) run over the patient's
record as the clinician may see it (``record.load_record``, through the FHIR API, so nothing the
policy withholds can be pre-filled), searched in memory (``fhir_adapters/memory_search``). The
Questionnaires are the ones the register ships (``register/data/questionnaires``).

An answer the clinician confirms is submitted exactly as pre-filled, with its ``prefill-source``
extension, so the duplicate rules count it as confirmed, not asked again; an answer typed afresh
has none. The QuestionnaireResponse is written through the FHIR API as the clinician.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fhir_adapters.memory_search import MemoryFetch
from fhir_adapters.sdc import LAST_KNOWN_URL, PREFILL_SOURCE_URL, populate
from fhir_adapters.sourced import Sourced
from register.web import plain
from register.web.fhir_client import Fhir
from register.web.guard import form_of, session_for
from register.web.record import Record, load_record
from register.web.render import page

router = APIRouter(include_in_schema=False)
ROLE = "clinician"
QUESTIONNAIRES = ("diabetes-annual-review", "admission-clerking")
UNIT_URL = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"


def shipped(questionnaire_id: str) -> dict[str, Any] | None:
    """One of the Questionnaires the register ships, by id."""
    if questionnaire_id not in QUESTIONNAIRES:
        return None
    folder = resources.files("register").joinpath("data/questionnaires")
    text = folder.joinpath(f"{questionnaire_id}.json").read_text("utf-8")
    return dict(json.loads(text))


def answer_text(answer: dict[str, Any]) -> str:
    """An answer (or a last-known value) in words."""
    for key, value in answer.items():
        if not key.startswith("value"):
            continue
        if key == "valueQuantity":
            return plain.quantity(value)
        if key in ("valueCoding", "valueReference"):
            return plain.concept(value) or str(value.get("reference", ""))
        if key in ("valueDate", "valueDateTime"):
            return plain.day(value)
        if key == "valueBoolean":
            return "Yes" if value else "No"
        return str(value)
    return ""


def _source(extensions: list[dict[str, Any]]) -> str:
    parts = {e.get("url"): e for e in extensions}
    author = plain.concept((parts.get("author") or {}).get("valueReference"))
    when = plain.day((parts.get("date") or {}).get("valueDateTime"))
    return ", ".join(p for p in (f"recorded by {author}" if author else "", when) if p)


def _sub(element: dict[str, Any], url: str) -> list[dict[str, Any]]:
    for extension in element.get("extension") or []:
        if extension.get("url") == url:
            return list(extension.get("extension") or [])
    return []


def _leaves(items: list[dict[str, Any]], group: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for item in items:
        if item.get("type") == "group":
            yield from _leaves(item.get("item") or [], item.get("text") or "")
        elif item.get("type") != "display":
            yield group, item


def _by_link(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        out[str(item.get("linkId"))] = item
        out.update(_by_link(item.get("item") or []))
    return out


async def _prefill(
    request: Request, session: Any, patient_id: str, questionnaire: dict[str, Any]
) -> tuple[Record, dict[str, Any]]:
    record = await load_record(Fhir(request, session), patient_id)
    if record.patient is None:
        return record, {}
    records = [e.sourced() for e in record.entries]
    patient = Sourced(record.patient)
    response, _ = populate(
        questionnaire,
        patient=patient,
        fetch=MemoryFetch([patient, *records]),
        now=datetime.now(UTC),
        organisations=record.organisations,
    )
    return record, response


def questions(questionnaire: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    """Each question with its pre-filled answers (and their source) or last-known value."""
    filled = _by_link(response.get("item") or [])
    out = []
    for group, item in _leaves(questionnaire.get("item") or []):
        link = str(item["linkId"])
        answered = filled.get(link, {})
        answers = [
            {"text": answer_text(a), "source": _source(_sub(a, PREFILL_SOURCE_URL))}
            for a in answered.get("answer") or []
        ]
        last = _sub(answered, LAST_KNOWN_URL)
        last_value = next((e for e in last if e.get("url") == "value"), None)
        out.append(
            {
                "link": link,
                "field": "q-" + "".join(c if c.isalnum() else "-" for c in link),
                "text": item.get("text") or link,
                "group": group,
                "type": item.get("type"),
                "answers": answers,
                "last_known": answer_text(last_value) if last_value else "",
                "last_source": _source(last) if last_value else "",
                "unit": plain.concept(_unit(item)),
            }
        )
    return out


def _unit(item: dict[str, Any]) -> dict[str, Any] | None:
    for extension in item.get("extension") or []:
        if extension.get("url") == UNIT_URL:
            return dict(extension.get("valueCoding") or {})
    return None


def typed_answer(item: dict[str, Any], text: str) -> dict[str, Any] | None:
    """An answer typed by the clinician, as the item's type wants it (None: not understood)."""
    text = text.strip()
    kind = item.get("type")
    if kind in ("quantity", "decimal", "integer"):
        try:
            number = Decimal(text.split()[0])
        except (InvalidOperation, IndexError):
            return None
        if kind == "integer":
            return {"valueInteger": int(number)}
        if kind == "decimal":
            return {"valueDecimal": float(number)}
        unit = _unit(item) or {}
        quantity: dict[str, Any] = {"value": float(number)}
        if unit.get("code"):
            quantity.update(
                unit=unit.get("display") or unit["code"],
                system=unit.get("system", "http://unitsofmeasure.org"),
                code=unit["code"],
            )
        return {"valueQuantity": quantity}
    if kind in ("date", "dateTime"):
        try:
            datetime.strptime(text, "%Y-%m-%d")
        except ValueError:
            return None
        return {"valueDate": text} if kind == "date" else {"valueDateTime": text}
    if kind == "boolean":
        return {"valueBoolean": text.lower() in ("yes", "true", "y")}
    if kind == "reference":
        return {"valueReference": {"display": text}}
    if kind == "choice":
        return {"valueCoding": {"display": text}}
    return {"valueString": text}


def build_response(
    questionnaire: dict[str, Any],
    prefilled: dict[str, Any],
    form: dict[str, str],
    *,
    author: str | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The completed QuestionnaireResponse from the form, and any errors by field."""
    filled = _by_link(prefilled.get("item") or [])
    errors: dict[str, str] = {}

    def build(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            link = str(item["linkId"])
            entry: dict[str, Any] = {"linkId": link}
            if item.get("text"):
                entry["text"] = item["text"]
            if item.get("type") == "group":
                children = build(item.get("item") or [])
                if children:
                    entry["item"] = children
                    out.append(entry)
                continue
            field = "q-" + "".join(c if c.isalnum() else "-" for c in link)
            earlier = filled.get(link, {}).get("answer") or []
            label = item.get("text") or link
            choice = form.get(f"{field}-keep", "change" if not earlier else "")
            typed = form.get(field, "")
            if earlier and choice == "keep":
                entry["answer"] = earlier  # as pre-filled, with its prefill-source
            elif typed.strip():
                answer = typed_answer(item, typed)
                if answer is None:
                    errors[field] = f"{label}: enter the answer in the form asked"
                    continue
                entry["answer"] = [answer]
            elif earlier and not choice:
                errors[f"{field}-keep"] = f"{label}: confirm or change the answer"
                continue
            else:
                continue
            out.append(entry)
        return out

    items = build(questionnaire.get("item") or [])
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": prefilled.get("subject"),
        "authored": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if prefilled.get("questionnaire"):
        response["questionnaire"] = prefilled["questionnaire"]
    if author:
        response["author"] = {"reference": author}
    if items:
        response["item"] = items
    return response, errors


@router.get("/clinician/patients/{patient_id}/questionnaires/{questionnaire_id}")
async def start(request: Request, patient_id: str, questionnaire_id: str) -> Response:
    """The questionnaire pre-filled from the register, each answer to confirm or change."""
    session = await session_for(request, ROLE)
    questionnaire = shipped(questionnaire_id)
    if questionnaire is None:
        return _missing(request, session)
    record, response = await _prefill(request, session, patient_id, questionnaire)
    if record.patient is None:
        return _missing(request, session)
    return _form(request, session, patient_id, questionnaire, record, response, {}, {})


def _form(
    request: Request,
    session: Any,
    patient_id: str,
    questionnaire: dict[str, Any],
    record: Record,
    response: dict[str, Any],
    errors: dict[str, str],
    form: dict[str, str],
) -> Response:
    asked = questions(questionnaire, response)
    return page(
        request,
        "clinician/questionnaire.html",
        session,
        status=400 if errors else 200,
        title=str(questionnaire.get("title") or "Questionnaire"),
        questionnaire_id=questionnaire["id"],
        patient_id=patient_id,
        patient_name=plain.human_name(record.patient or {}),
        questions=asked,
        prefilled=sum(1 for q in asked if q["answers"]),
        errors=errors,
        form=form,
        break_glass_reason=session.break_glass.get(patient_id),
    )


def _missing(request: Request, session: Any) -> Response:
    return page(
        request,
        "message.html",
        session,
        status=404,
        title="Not available",
        message="That questionnaire or record is not available to you.",
        link="/clinician",
        link_text="Back to find a patient",
    )


@router.post("/clinician/patients/{patient_id}/questionnaires/{questionnaire_id}")
async def submit(request: Request, patient_id: str, questionnaire_id: str) -> Response:
    """Submit the answers as a QuestionnaireResponse (confirmed answers as pre-filled)."""
    session = await session_for(request, ROLE)
    form = await form_of(request, session)
    questionnaire = shipped(questionnaire_id)
    if questionnaire is None:
        return _missing(request, session)
    record, prefilled = await _prefill(request, session, patient_id, questionnaire)
    if record.patient is None:
        return _missing(request, session)
    response, errors = build_response(
        questionnaire, prefilled, form, author=session.identity.fhir_user
    )
    if errors:
        return _form(request, session, patient_id, questionnaire, record, prefilled, errors, form)
    answer = await Fhir(request, session).post(
        "QuestionnaireResponse", response, patient_id=patient_id
    )
    if not answer.ok:
        errors = {"answers": " ".join(answer.issues()) or "The register did not accept it."}
        return _form(request, session, patient_id, questionnaire, record, prefilled, errors, form)
    return RedirectResponse(
        f"/clinician/patients/{patient_id}?type=QuestionnaireResponse&submitted=1",
        status_code=303,
    )
