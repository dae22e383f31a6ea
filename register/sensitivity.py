"""Sensitive data: which resources are sensitive, and the labels the register adds on write.

A resource is sensitive when its ``meta.security`` carries a category label from
``register/data/sensitive-codes.json`` or a restricted confidentiality (v3-Confidentiality R or
V), or when one of its codes is listed under a category, in which case the register labels it
on write so every later decision, and every other system, sees the label.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

DATA_FILE = Path(__file__).with_name("data") / "sensitive-codes.json"
# Elements whose codes can make a resource sensitive.
CODED_ELEMENTS = ("code", "medicationCodeableConcept", "vaccineCode", "type", "category")


@dataclass(frozen=True)
class Category:
    """A sensitive category: its label and the codes that belong to it."""

    key: str
    name: str
    label: tuple[str, str, str]  # system, code, display
    labels: frozenset[str]  # "system|code" of every label meaning this category
    codes: frozenset[str]


@dataclass(frozen=True)
class SensitivityConfig:
    """The sensitive categories and restricted confidentiality codes."""

    categories: tuple[Category, ...]
    restricted: frozenset[str]  # "system|code" of restricted confidentiality labels

    def category_of_label(self, label: str) -> Category | None:
        """The category a ``system|code`` label belongs to."""
        return next((c for c in self.categories if label in c.labels), None)

    @property
    def sensitive_labels(self) -> frozenset[str]:
        """Every label that makes a resource sensitive."""
        return self.restricted.union(*(c.labels for c in self.categories))


@lru_cache(maxsize=2)
def load(path: Path = DATA_FILE) -> SensitivityConfig:
    """Read the sensitive-codes data file."""
    raw = orjson.loads(path.read_bytes())
    categories = []
    for item in raw["categories"]:
        label = item["label"]
        labels = {f"{label['system']}|{label['code']}"} | {
            f"{extra['system']}|{extra['code']}" for extra in item.get("also_labels", [])
        }
        categories.append(
            Category(
                key=item["key"],
                name=item["name"],
                label=(label["system"], label["code"], label.get("display", label["code"])),
                labels=frozenset(labels),
                codes=frozenset(f"{c['system']}|{c['code']}" for c in item["codes"]),
            )
        )
    system = raw["confidentiality_system"]
    return SensitivityConfig(
        tuple(categories),
        frozenset(f"{system}|{code}" for code in raw["restricted_confidentiality"]),
    )


def _codes(resource: dict[str, Any]) -> Iterator[str]:
    for element in CODED_ELEMENTS:
        values = resource.get(element)
        for concept in values if isinstance(values, list) else [values]:
            if isinstance(concept, dict):
                for coding in concept.get("coding", []) or []:
                    if isinstance(coding, dict) and coding.get("code"):
                        yield f"{coding.get('system', '')}|{coding['code']}"


def security_labels(resource: dict[str, Any]) -> frozenset[str]:
    """The ``system|code`` labels in a resource's ``meta.security``."""
    meta = resource.get("meta") or {}
    return frozenset(
        f"{label.get('system', '')}|{label['code']}"
        for label in meta.get("security", []) or []
        if isinstance(label, dict) and label.get("code")
    )


def label_sensitive(
    resource: dict[str, Any], config: SensitivityConfig | None = None
) -> dict[str, Any]:
    """The resource with a category label added for each listed code it carries (idempotent)."""
    config = config or load()
    codes = set(_codes(resource))
    if not codes:
        return resource
    present = security_labels(resource)
    missing = [
        category
        for category in config.categories
        if category.codes & codes and not (category.labels & present)
    ]
    if not missing:
        return resource
    meta = dict(resource.get("meta") or {})
    security = list(meta.get("security") or [])
    for category in missing:
        system, code, display = category.label
        security.append({"system": system, "code": code, "display": display})
    meta["security"] = security
    return {**resource, "meta": meta}


def sensitive_categories(
    resource: dict[str, Any], config: SensitivityConfig | None = None
) -> frozenset[str]:
    """The sensitive categories (keys, plus ``restricted``) a resource belongs to."""
    config = config or load()
    labels = security_labels(resource)
    found = {c.key for c in config.categories if c.labels & labels}
    if labels & config.restricted:
        found.add("restricted")
    return frozenset(found)
