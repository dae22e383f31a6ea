"""Which Patients' compartments a resource belongs to, from the R4 Patient CompartmentDefinition.

The definition (``data/compartment-patient.json``) names, per resource type, the search
parameters whose Patient references place a resource in a Patient's compartment (Observation:
``subject``, ``performer``). The register uses this for two facts it stores with every resource:
the compartment (every Patient the resource concerns, for ``Patient/[id]/*`` searches and
access) and the primary patient (the Patient whose record it is: the first Patient found, in the
order the data file lists the parameters).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from fhir_adapters.search_extraction import ReferenceEntry, extract_parameter
from fhir_adapters.search_parameters import get


@cache
def compartment_parameters() -> Mapping[str, tuple[str, ...]]:
    """Resource type -> the Patient compartment's parameter names, in primary order."""
    text = (
        resources.files("fhir_adapters")
        .joinpath("data/compartment-patient.json")
        .read_text(encoding="utf-8")
    )
    table = json.loads(text)["resources"]
    return MappingProxyType({kind: tuple(names) for kind, names in table.items()})


def _patient_ids(resource: Mapping[str, Any], local_bases: tuple[str, ...]) -> list[str]:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise ValueError("resource has no resourceType")
    ids: list[str] = []
    if resource_type == "Patient" and isinstance(resource.get("id"), str):
        ids.append(resource["id"])
    for name in compartment_parameters().get(resource_type, ()):
        param = get(resource_type, name)
        if param is None:
            continue  # a type the register has no parameters for: see test_compartments
        for entry in extract_parameter(param, resource, local_bases=local_bases):
            if (
                isinstance(entry, ReferenceEntry)
                and entry.target_type == "Patient"
                and entry.target_id is not None
            ):
                ids.append(entry.target_id)
    return list(dict.fromkeys(ids))


def patient_compartment(
    resource: Mapping[str, Any], *, local_bases: tuple[str, ...] = ()
) -> list[str]:
    """Ids of the Patients whose compartment holds this resource, primary patient first.

    Only references to Patients on this server count (relative ``Patient/id``, or absolute under
    one of ``local_bases``); a Patient is in its own compartment. Resource types outside the
    Patient compartment (Practitioner, Organization, Medication, ...) give an empty list.
    """
    return _patient_ids(resource, local_bases)


def primary_patient(
    resource: Mapping[str, Any], *, local_bases: tuple[str, ...] = ()
) -> str | None:
    """The Patient whose record this is: the Patient itself, else the first compartment Patient.

    ``Observation.subject`` wins over ``Observation.performer``, ``AllergyIntolerance.patient``
    over ``recorder``: the order of the parameters in the compartment data file decides.
    """
    ids = _patient_ids(resource, local_bases)
    return ids[0] if ids else None


def compartment_types() -> Sequence[str]:
    """Resource types that can be in a Patient compartment."""
    return sorted(compartment_parameters())
