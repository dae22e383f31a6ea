"""The duplicate rules' data files, loaded once into plain frozen structures.

The files live in ``register/data/duplicates/``; clinicians tune intervals, medicines and
question concepts there without code changes (``REGISTER_DUPLICATES_DIR`` may point at a copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "data" / "duplicates"


@dataclass(frozen=True)
class Confirmation:
    """When a repeat inside the interval is a legitimate confirmation of the earlier result."""

    within_days: int
    at_least: tuple[tuple[float, str], ...] = ()  # (value, unit) pairs
    below: tuple[tuple[float, str], ...] = ()


@dataclass(frozen=True)
class RetestGroup:
    """A test with a minimum retesting interval, and the codes that mean it."""

    key: str
    name: str
    interval_days: int
    codes: frozenset[str]  # "system|code"
    confirmation: Confirmation | None = None


@dataclass(frozen=True)
class HeldBy:
    """A kind of record that answers a question concept."""

    resource: str
    codes: frozenset[str] = frozenset()
    status: frozenset[str] = frozenset()
    element: str | None = None


@dataclass(frozen=True)
class Concept:
    """A question patients are asked repeatedly, and what answers it already."""

    key: str
    name: str
    item_codes: frozenset[str]
    held_by: tuple[HeldBy, ...]
    freshness_days: int | None


@dataclass(frozen=True)
class DuplicateConfig:
    """Everything the rules need to know, from the data files."""

    groups: tuple[RetestGroup, ...]
    code_to_group: dict[str, str]
    ingredients: dict[str, str]  # name or synonym -> ingredient name
    ingredient_class: dict[str, str]  # ingredient -> ATC level-4 class
    class_names: dict[str, str]
    product_ingredients: dict[str, tuple[str, ...]]  # "system|code" -> ingredients
    concepts: tuple[Concept, ...]
    item_code_to_concept: dict[str, str]
    link_ids: dict[str, dict[str, str]]  # questionnaire url -> linkId -> concept

    def group(self, key: str) -> RetestGroup:
        """The retest group named ``key``."""
        return next(g for g in self.groups if g.key == key)

    def concept(self, key: str) -> Concept:
        """The question concept named ``key``."""
        return next(c for c in self.concepts if c.key == key)


def _code(item: dict[str, Any]) -> str:
    return f"{item['system']}|{item['code']}"


def _bounds(spec: dict[str, Any] | None) -> tuple[tuple[float, str], ...]:
    if not spec:
        return ()
    pairs = [(float(spec["value"]), str(spec["unit"]))]
    if "alt_value" in spec:
        pairs.append((float(spec["alt_value"]), str(spec["alt_unit"])))
    return tuple(pairs)


def load_config(directory: Path) -> DuplicateConfig:
    """Read the three data files in ``directory``."""
    retest = orjson.loads((directory / "retest-intervals.json").read_bytes())
    medicines = orjson.loads((directory / "medicines.json").read_bytes())
    questions = orjson.loads((directory / "question-concepts.json").read_bytes())
    groups = []
    for raw in retest["groups"]:
        confirmation = raw.get("confirmation")
        groups.append(
            RetestGroup(
                key=raw["key"],
                name=raw["name"],
                interval_days=int(raw["interval_days"]),
                codes=frozenset(_code(c) for c in raw["codes"]),
                confirmation=Confirmation(
                    within_days=int(confirmation["within_days"]),
                    at_least=_bounds(confirmation.get("when_prior_at_least")),
                    below=_bounds(confirmation.get("when_prior_below")),
                )
                if confirmation
                else None,
            )
        )
    code_to_group = {code: g.key for g in groups for code in g.codes}
    ingredients: dict[str, str] = {}
    ingredient_class: dict[str, str] = {}
    for raw in medicines["ingredients"]:
        name = raw["name"].lower()
        ingredients[name] = name
        for synonym in raw.get("synonyms", []):
            ingredients[synonym.lower()] = name
        ingredient_class[name] = raw["atc"][:5]
    products = {
        _code(p): tuple(i.strip().lower() for i in str(p["ingredient"]).split("+") if i.strip())
        for p in medicines.get("products", [])
    }
    concepts = tuple(
        Concept(
            key=raw["key"],
            name=raw["name"],
            item_codes=frozenset(_code(c) for c in raw["item_codes"]),
            held_by=tuple(
                HeldBy(
                    resource=h["resource"],
                    codes=frozenset(_code(c) for c in h.get("codes", [])),
                    status=frozenset(h.get("status", [])),
                    element=h.get("element"),
                )
                for h in raw["held_by"]
            ),
            freshness_days=raw.get("freshness_days"),
        )
        for raw in questions["concepts"]
    )
    return DuplicateConfig(
        groups=tuple(groups),
        code_to_group=code_to_group,
        ingredients=ingredients,
        ingredient_class=ingredient_class,
        class_names=dict(medicines.get("classes", {})),
        product_ingredients=products,
        concepts=concepts,
        item_code_to_concept={code: c.key for c in concepts for code in c.item_codes},
        link_ids={
            url: dict(mapping)
            for url, mapping in questions.get("questionnaire_link_ids", {}).items()
        },
    )


@lru_cache(maxsize=4)
def config_from(directory: Path | None) -> DuplicateConfig:
    """The configuration in ``directory`` (None: the shipped data files), read once."""
    return load_config(directory or DEFAULT_DIR)
