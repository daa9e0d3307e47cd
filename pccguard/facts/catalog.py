"""The optimization catalog (``rules/catalog.yaml``), loaded and validated once."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pccguard.errors import InputError
from pccguard.files.resources import shipped_rules_dir
from pccguard.files.sourcefile import load_document

Letter = Literal["S", "E", "T", "P", "V"]
LETTERS: tuple[Letter, ...] = ("S", "E", "T", "P", "V")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Requirement(_Strict):
    title: str
    summary: str


class ResidualState(_Strict):
    what: str
    where: list[str]


class CatalogOptimization(_Strict):
    id: str
    category: Literal["memory", "transfer", "batching", "parallel", "scheduling", "audit"]
    title: str
    endangers: list[Letter]
    residual_state: ResidualState
    threats: list[str]
    mitigations: list[str]
    notes: str | None = None


class ObservabilityRisk(_Strict):
    id: str
    title: str
    endangers: list[Letter]
    threats: list[str]
    mitigations: list[str]


class Catalog(_Strict):
    version: int
    requirements: dict[Letter, Requirement]
    optimizations: list[CatalogOptimization]
    observability: list[ObservabilityRisk] = Field(default_factory=list)

    def optimization_ids(self) -> set[str]:
        return {o.id for o in self.optimizations}

    def observability_ids(self) -> set[str]:
        return {o.id for o in self.observability}

    def all_ids(self) -> set[str]:
        return self.optimization_ids() | self.observability_ids()

    def endangered_pairs(self) -> set[tuple[str, Letter]]:
        """Every (catalog id, letter) a rule must cover."""
        return {(row.id, letter) for row in self.rows() for letter in row.endangers}

    def rows(self) -> list[CatalogOptimization | ObservabilityRisk]:
        return [*self.optimizations, *self.observability]

    def row(self, item_id: str) -> CatalogOptimization | ObservabilityRisk:
        for row in self.rows():
            if row.id == item_id:
                return row
        raise KeyError(item_id)

    def title_of(self, item_id: str) -> str:
        return self.row(item_id).title


def catalog_path() -> Path:
    return shipped_rules_dir() / "catalog.yaml"


@cache
def load_catalog(path: Path | None = None) -> Catalog:
    source = path or catalog_path()
    doc = load_document(source)
    try:
        catalog = Catalog.model_validate(doc.data)
    except Exception as exc:  # pydantic.ValidationError
        raise InputError(f"invalid catalog: {exc}", where=str(source)) from exc
    ids = [o.id for o in catalog.optimizations] + [o.id for o in catalog.observability]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(f"duplicate catalog ids: {', '.join(duplicates)}", where=str(source))
    return catalog
