"""Content negotiation, ``_format``/``_pretty`` and the ``Prefer`` header.

JSON only: ``application/fhir+json`` and ``application/json`` are served; a client that can
accept only XML gets 406, and an XML body 415, each with an OperationOutcome.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from starlette.requests import Request

from fhir_adapters.operation_outcome import error
from register.errors import FhirError

FHIR_JSON = "application/fhir+json"
JSON_FORMATS = {
    "json",
    "application/json",
    "application/fhir+json",
    "application/json+fhir",
    "text/json",
}
ACCEPT_ANY = {"*/*", "application/*", "text/*"}
XML_FORMATS = {"xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir"}
BODY_TYPES = {"application/fhir+json", "application/json", "application/json+fhir", "text/json"}
PATCH_TYPES = {"application/json-patch+json"}
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Format:
    """How to shape the response: media type and whether to indent."""

    media_type: str = FHIR_JSON
    pretty: bool = False

    def render(self, body: bytes) -> bytes:
        """The body as sent: stored bytes as they are, or re-indented for ``_pretty``."""
        if not self.pretty or not body:
            return body
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)

    @property
    def content_type(self) -> str:
        """The Content-Type header value."""
        return f"{self.media_type}; charset=utf-8"


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def response_format(request: Request) -> Format:
    """The format to answer in, from ``_format`` or Accept; 406 when only XML (or other) will do."""
    pretty = request.query_params.get("_pretty", "false").lower() == "true"
    requested = request.query_params.get("_format")
    if requested is not None:
        media = _media(requested.replace(" ", "+"))
        if media in JSON_FORMATS:
            return Format(FHIR_JSON if media != "application/json" else "application/json", pretty)
        raise _not_acceptable(f"_format '{requested[:40]}' is not supported; use json.")
    accept = request.headers.get("accept")
    if not accept:
        return Format(FHIR_JSON, pretty)
    offered = [_media(part) for part in accept.split(",") if part.strip()]
    acceptable = [m for m in offered if m in JSON_FORMATS or m in ACCEPT_ANY]
    if not acceptable:
        raise _not_acceptable("This server answers in JSON only (application/fhir+json).")
    if acceptable == ["application/json"]:
        return Format("application/json", pretty)
    return Format(FHIR_JSON, pretty)


def _not_acceptable(message: str) -> FhirError:
    return FhirError(406, error("not-supported", message))


def check_body_type(request: Request, *, patch: bool = False, form: bool = False) -> str:
    """The request body's media type if acceptable; 415 otherwise (XML included)."""
    media = _media(request.headers.get("content-type", ""))
    if not media:
        return FHIR_JSON
    if media in BODY_TYPES or (patch and media in PATCH_TYPES) or (form and media == FORM_TYPE):
        return media
    if media in XML_FORMATS:
        raise FhirError(415, error("not-supported", "XML is not supported; send JSON."))
    raise FhirError(415, error("not-supported", f"Content-Type '{media[:60]}' is not supported."))


@dataclass(frozen=True)
class Prefer:
    """The parts of the Prefer header the register honours."""

    return_: str | None = None  # minimal | representation | OperationOutcome
    handling: str = "lenient"  # lenient | strict

    @property
    def minimal(self) -> bool:
        """Whether the client asked for no body."""
        return self.return_ == "minimal"


def prefer(request: Request) -> Prefer:
    """Parse the Prefer header (RFC 7240) for ``return`` and ``handling``."""
    header = request.headers.get("prefer", "")
    values: dict[str, str] = {}
    for part in header.replace(";", ",").split(","):
        if "=" in part:
            key, _, value = part.partition("=")
            values[key.strip().lower()] = value.strip().strip('"')
    return_ = values.get("return")
    if return_ not in (None, "minimal", "representation", "OperationOutcome"):
        return_ = None
    handling = values.get("handling", "lenient")
    return Prefer(return_, "strict" if handling == "strict" else "lenient")
