"""The one place that imports fhir.resources.

Always the R4B models: the bare ``fhir.resources`` package is R5 and silently drops R4 fields
such as ``MedicationRequest.medication[x]``. R4B's models validate R4 content; the handful of R4
types that R4B removed (the MedicinalProduct* and Substance* families, the two evidence
syntheses) have no model here and are checked only for their common elements.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.meta import Meta
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

__all__ = ["Meta", "PydanticValidationError", "model_for"]


@lru_cache(maxsize=256)
def model_for(resource_type: str) -> type[BaseModel] | None:
    """The R4B model class for ``resource_type``, or None when R4B has none."""
    try:
        cls: Any = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None
    return cls
