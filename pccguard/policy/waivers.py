"""Waivers: time-bounded, owned, justified exceptions to a rule.

A file that cannot be read or parsed is an input error (exit 2). An entry that
is malformed, expired or names an unknown rule does *not* waive anything: it
is reported as a problem and counts as a failure, so an exception can never
fail open by rotting in place.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pccguard.errors import InputError
from pccguard.files.sourcefile import load_document


class Waiver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str = Field(min_length=1)
    scope: str = Field(min_length=1, description="Glob on the deployment name; '*' for every deployment")
    justification: str = Field(min_length=10)
    owner: str = Field(min_length=1)
    expires: dt.date
    ticket: str | None = None

    @field_validator("expires", mode="before")
    @classmethod
    def _strict_date(cls, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            raise ValueError("expires must be a date (YYYY-MM-DD), not a timestamp")
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError("expires must be a date in YYYY-MM-DD form") from None
        if not isinstance(value, dt.date):
            raise ValueError("expires must be a date in YYYY-MM-DD form")
        return value

    def applies_to(self, deployment_name: str) -> bool:
        return fnmatch.fnmatchcase(deployment_name, self.scope)

    def expired(self, today: dt.date) -> bool:
        return today > self.expires


@dataclass
class WaiverSet:
    waivers: list[Waiver]
    problems: list[str]
    source: str

    def find(self, rule_id: str, deployment_name: str) -> Waiver | None:
        for waiver in self.waivers:
            if waiver.rule == rule_id and waiver.applies_to(deployment_name):
                return waiver
        return None


def load_waivers(path: Path | str, *, known_rules: set[str], today: dt.date | None = None) -> WaiverSet:
    today = today or dt.date.today()
    doc = load_document(path)
    data = doc.data
    if not isinstance(data, dict) or set(data) != {"waivers"} or not isinstance(data["waivers"], list):
        raise InputError(
            "a waivers file is a mapping with one key, 'waivers', holding a list", where=str(path)
        )
    good: list[Waiver] = []
    problems: list[str] = []
    for index, entry in enumerate(data["waivers"]):
        line = doc.lines.get(f"waivers.{index}")
        where = f"{path}:{line}" if line else str(path)
        try:
            waiver = Waiver.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or "entry"
            msg = "unknown field" if first["type"] == "extra_forbidden" else first["msg"].lower()
            problems.append(f"{where}: malformed waiver ({field}: {msg}); it waives nothing")
            continue
        if waiver.rule not in known_rules:
            problems.append(f"{where}: waiver names unknown rule {waiver.rule}; it waives nothing")
        elif waiver.expired(today):
            problems.append(
                f"{where}: waiver for {waiver.rule} expired on {waiver.expires}; it waives nothing"
            )
        else:
            good.append(waiver)
    return WaiverSet(waivers=good, problems=problems, source=str(path))
