"""Validating resources against the R4 models, with errors that name the element at fault."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from fhir_adapters.models import Meta, PydanticValidationError, model_for
from fhir_adapters.operation_outcome import Issue, ResourceInvalid, error
from fhir_adapters.resource_types import is_resource_type

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def is_valid_id(value: str) -> bool:
    """Whether ``value`` follows FHIR's id rules (1-64 of A-Z a-z 0-9 - .)."""
    return bool(ID_PATTERN.match(value))


def validate_resource(resource: Any, *, expected_type: str | None = None) -> str:
    """Check that ``resource`` is a valid R4 resource; return its type or raise ResourceInvalid."""
    if not isinstance(resource, dict):
        raise ResourceInvalid([error("structure", "A resource must be a JSON object.")])
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise ResourceInvalid(
            [error("required", "The resource has no resourceType.", "resourceType")]
        )
    if not is_resource_type(resource_type):
        raise ResourceInvalid(
            [
                error(
                    "not-supported",
                    f"'{_clip(resource_type)}' is not a FHIR R4 resource type.",
                    "resourceType",
                )
            ]
        )
    if expected_type is not None and resource_type != expected_type:
        raise ResourceInvalid(
            [
                error(
                    "invalid",
                    f"The resource is a {resource_type} but the request is for {expected_type}.",
                    "resourceType",
                )
            ]
        )
    rid = resource.get("id")
    if rid is not None and (not isinstance(rid, str) or not is_valid_id(rid)):
        raise ResourceInvalid(
            [error("value", "The id does not follow FHIR's id rules.", f"{resource_type}.id")]
        )
    model = model_for(resource_type)
    try:
        if model is None:
            _validate_common(resource)
        else:
            instance = model.model_validate(resource)
            problems = list(_code_problems(instance, resource_type))
            if problems:
                raise ResourceInvalid(problems[:20])
    except PydanticValidationError as exc:
        raise ResourceInvalid(_issues_from(exc, resource_type)) from None
    except (ValueError, TypeError) as exc:
        raise ResourceInvalid([error("invalid", _clip(str(exc), 300), resource_type)]) from None
    return resource_type


def _code_problems(instance: BaseModel, path: str) -> Iterator[Issue]:
    """Codes outside a required binding's fixed list (R4B models do not check these)."""
    fields = type(instance).model_fields
    for name, info in fields.items():
        value = getattr(instance, name, None)
        if value is None:
            continue
        element = f"{path}.{info.alias or name}"
        extra = info.json_schema_extra
        allowed = extra.get("enum_values") if isinstance(extra, dict) else None
        if isinstance(allowed, list) and allowed and "+" not in allowed:
            for index, item in enumerate(value if isinstance(value, list) else [value]):
                code = getattr(item, "value", item)
                if isinstance(code, str) and code not in allowed:
                    where = f"{element}[{index}]" if isinstance(value, list) else element
                    yield error(
                        "code-invalid",
                        f"{where}: '{code[:40]}' is not one of {', '.join(allowed)}.",
                        where,
                    )
        if isinstance(value, BaseModel):
            yield from _code_problems(value, element)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from _code_problems(item, f"{element}[{index}]")


def _validate_common(resource: dict[str, Any]) -> None:
    """For R4 types R4B has no model for: check the elements every resource shares."""
    meta = resource.get("meta")
    if meta is None:
        return
    try:
        Meta.model_validate(meta)
    except PydanticValidationError as exc:
        raise ResourceInvalid(_issues_from(exc, resource["resourceType"], ("meta",))) from None


def _issues_from(
    exc: PydanticValidationError, resource_type: str, prefix: tuple[str, ...] = ()
) -> list[Issue]:
    issues: list[Issue] = []
    for item in exc.errors(include_url=False, include_input=False)[:20]:
        path = _fhirpath(resource_type, prefix + tuple(item.get("loc", ())))
        kind = item.get("type", "")
        code = "required" if "missing" in kind else "value"
        if kind == "extra_forbidden":
            code = "structure"
        message = item.get("msg", "invalid value")
        if kind == "extra_forbidden":
            message = "Unknown element (not part of this resource type in FHIR R4)."
        issues.append(error(code, f"{path}: {_clip(message, 300)}", path))
    return issues or [error("invalid", "The resource is not valid.", resource_type)]


def _fhirpath(resource_type: str, loc: tuple[Any, ...]) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("__root__", "") or not isinstance(part, str):
            continue
        else:
            path += f".{part}"
    return path


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
