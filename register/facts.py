"""The facts the access policy needs about a resource, derived on every write."""

from __future__ import annotations

from typing import Any

from fhir_adapters import compartments
from register.storage import Facts


def facts_for(
    resource: dict[str, Any], *, author_org: str | None, local_bases: tuple[str, ...] = ()
) -> Facts:
    """Whose record ``resource`` belongs to, and which organisation recorded it.

    ``local_bases`` are the server's base URLs (the request's), so an absolute reference to a
    Patient held here counts like ``Patient/id``.
    """
    return Facts(
        patient_id=primary_patient(resource, local_bases=local_bases), author_org=author_org
    )


def primary_patient(resource: dict[str, Any], *, local_bases: tuple[str, ...] = ()) -> str | None:
    """The id of the Patient whose record this resource is part of, if any.

    The R4 Patient compartment decides (``fhir_adapters.compartments``): the Patient itself,
    else the first local Patient named by the type's compartment parameters, in their order.
    """
    return compartments.primary_patient(resource, local_bases=local_bases)
