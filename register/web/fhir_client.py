"""The pages read and write through the register's own FHIR API, in process, as the signed-in user.

A page never decides what someone may see. It asks the FHIR routes of the same app (through
``httpx.ASGITransport``: no network, the full middleware, gate, policy decision point, storage
visibility and audit), with an access token issued by the embedded issuer for the session's
identity. So a page shows exactly what that person would get from the API with their own token.

Tokens are short-lived; one is kept per session until a minute before it expires. Break-glass
declared in the session is sent as ``X-Break-Glass-Reason`` on requests about that patient.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from starlette.requests import Request

from auth.principal import Role
from register.api.deps import base_url
from register.web.sessions import WebSession

CLIENT_ID = "careregister-web"
_TOKENS: dict[str, tuple[str, float]] = {}
_MAX_CACHED = 10_000


@dataclass(frozen=True)
class FhirAnswer:
    """A FHIR response: status and parsed JSON body (None when there was none)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def entries(self, resource_type: str | None = None) -> list[dict[str, Any]]:
        """The resources of a Bundle answer (of ``resource_type`` only, when given)."""
        if not self.ok or not isinstance(self.body, dict):
            return []
        found = [e.get("resource") or {} for e in self.body.get("entry") or []]
        if resource_type:
            found = [r for r in found if r.get("resourceType") == resource_type]
        return found

    def issues(self) -> list[str]:
        """Human-readable issue texts of an OperationOutcome answer (or one inside a Bundle)."""
        outcomes: list[dict[str, Any]] = []
        if isinstance(self.body, dict):
            if self.body.get("resourceType") == "OperationOutcome":
                outcomes.append(self.body)
            outcomes += [r for r in self.entries() if r.get("resourceType") == "OperationOutcome"]
        texts = []
        for outcome in outcomes:
            for issue in outcome.get("issue") or []:
                text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
                if text:
                    texts.append(str(text))
        return texts


def access_token(request: Request, session: WebSession) -> str:
    """An access token for the session's identity (reused until a minute before expiry)."""
    cached = _TOKENS.get(session.key_hash)
    now = time.time()
    if cached is not None and cached[1] - 60 > now:
        return cached[0]
    identity = session.identity
    endpoints = request.app.state.access.endpoints(base_url(request))
    issued = endpoints.issuer.issue(
        role=Role(identity.role),
        subject=identity.username,
        client_id=CLIENT_ID,
        scope=identity.scope,
        fhir_user=identity.fhir_user,
        organisation=identity.organisation,
    )
    if len(_TOKENS) >= _MAX_CACHED:
        _TOKENS.clear()
    _TOKENS[session.key_hash] = (issued.access_token, float(issued.expires_at))
    return issued.access_token


def forget(session: WebSession) -> None:
    """Drop the cached token of a session that ended."""
    _TOKENS.pop(session.key_hash, None)


class Fhir:
    """The FHIR API of this app, called in process as the session's user."""

    def __init__(self, request: Request, session: WebSession) -> None:
        self._request = request
        self._session = session
        fhir_base = base_url(request)
        parts = urlsplit(fhir_base)
        self._root = f"{parts.scheme}://{parts.netloc}"
        self._path = parts.path.rstrip("/")

    def _headers(self, patient_id: str | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {access_token(self._request, self._session)}",
            "Accept": "application/fhir+json",
        }
        reason = self._session.break_glass.get(patient_id or "")
        if reason:
            headers["X-Break-Glass-Reason"] = reason
        return headers

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | dict[str, str] | None = None,
        body: Any = None,
        patient_id: str | None = None,
        break_glass_reason: str | None = None,
    ) -> FhirAnswer:
        """Send one FHIR request (``path`` relative to the FHIR base) and parse the answer."""
        headers = self._headers(patient_id)
        if break_glass_reason:
            headers["X-Break-Glass-Reason"] = break_glass_reason
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["Content-Type"] = "application/fhir+json"
        transport = httpx.ASGITransport(app=self._request.app)
        async with httpx.AsyncClient(transport=transport, base_url=self._root) as client:
            response = await client.request(
                method,
                f"{self._path}/{path.lstrip('/')}",
                params=params,
                content=content,
                headers=headers,
            )
        parsed = orjson.loads(response.content) if response.content else None
        return FhirAnswer(response.status_code, parsed)

    async def get(self, path: str, **options: Any) -> FhirAnswer:
        """GET ``path`` (see :meth:`call`)."""
        return await self.call("GET", path, **options)

    async def post(self, path: str, body: Any, **options: Any) -> FhirAnswer:
        """POST ``body`` to ``path`` (see :meth:`call`)."""
        return await self.call("POST", path, body=body, **options)

    async def search_all(
        self,
        path: str,
        params: list[tuple[str, str]],
        *,
        patient_id: str | None = None,
        limit: int = 2000,
    ) -> tuple[list[dict[str, Any]], FhirAnswer]:
        """Every resource of a search (following ``next`` links up to ``limit``) and the first
        page's answer (for its OperationOutcome notices)."""
        first = await self.get(path, params=params, patient_id=patient_id)
        resources = first.entries()
        answer = first
        while answer.ok and len(resources) < limit:
            links = answer.body.get("link") or []
            link = next((x.get("url") for x in links if x.get("relation") == "next"), None)
            if not link:
                break
            relative = link.split(self._path, 1)[-1] if self._path in link else link
            answer = await self.get(relative, patient_id=patient_id)
            resources += answer.entries()
        return resources, first
