"""The rulebook: shipped rules, custom rule directories and the Rego library.

Custom directories (``--rules DIR``, repeatable) extend the shipped rulebook;
a custom rule with the id of a shipped one replaces it (the shipped file is not
compiled at all, so two packages can never disagree about one id). A
replacement is never silent: the rule's metadata records the shipped file it
``overrides`` and every report format shows it.

Nothing in a custom directory is skipped silently either: a directory that
cannot be read, a broken symbolic link or a ``.rego`` entry that is not a
regular file is an error, and so is a directory with no rules at all, because
each of them would otherwise drop rules from the check without a word.
Custom rules using a construct that crashes regopy (``with input``) are refused
before anything evaluates them (``pccguard.policy.constructs.refuse_crashing_constructs``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pccguard.errors import RuleError
from pccguard.files.resources import shipped_rules_dir
from pccguard.policy.constructs import refuse_crashing_constructs
from pccguard.policy.metadata import ParsedRuleFile, RuleMeta, parse_rule_file

LIB_PACKAGE_PREFIX = "pcc.lib"
DECISION_PACKAGE = "pcc"


@dataclass
class Rulebook:
    rules: dict[str, RuleMeta]
    library: list[ParsedRuleFile]
    rule_files: list[ParsedRuleFile]
    fixture_dirs: list[Path] = field(default_factory=list)
    #: Rule id → the shipped rule file a custom rule replaced.
    overrides: dict[str, str] = field(default_factory=dict)

    def modules(self) -> list[tuple[str, str]]:
        """``(name, source)`` of every module the engine compiles, in a stable order."""
        return [(str(f.path), f.source) for f in [*self.library, *self.rule_files]]

    def sorted_rules(self) -> list[RuleMeta]:
        return [self.rules[k] for k in sorted(self.rules)]


def _rego_files(folder: Path) -> list[Path]:
    """Every rule module under ``folder``; anything that would hide rules is an error, never skipped."""
    found: list[Path] = []
    seen: set[str] = set()

    def unreadable(error: OSError) -> None:
        reason = error.strerror or type(error).__name__
        raise RuleError(f"cannot read rules directory ({reason})", where=error.filename or str(folder))

    for root, dirs, files in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a symbolic link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        for name in sorted(files):
            path = Path(root) / name
            if path.is_symlink() and not path.exists():
                raise RuleError("broken symbolic link in a rules directory", where=str(path))
            if not name.endswith(".rego") or name.endswith("_test.rego"):
                continue
            if not path.is_file():
                raise RuleError("rule file is not a regular file", where=str(path))
            found.append(path)
    return sorted(found)


def collect_rule_files(rule_dirs: list[Path]) -> tuple[list[ParsedRuleFile], list[ParsedRuleFile]]:
    """Parse library and rule files (shipped first, then each custom directory)."""
    shipped = shipped_rules_dir()
    library = [parse_rule_file(p) for p in _rego_files(shipped / "lib")]
    parsed = [parse_rule_file(p) for p in _rego_files(shipped / "pcc")]
    for folder in rule_dirs:
        if not folder.is_dir():
            raise RuleError("rules directory does not exist", where=str(folder))
        paths = _rego_files(folder)
        if not paths:
            raise RuleError("rules directory holds no rules (no .rego files)", where=str(folder))
        for path in paths:
            item = parse_rule_file(path)
            (library if item.package.startswith(LIB_PACKAGE_PREFIX) else parsed).append(item)
    return library, parsed


def _display_path(meta: RuleMeta, shipped_root: Path) -> RuleMeta:
    """Shipped rules are named ``rules/...`` so reports are the same on every installation."""
    path = Path(meta.path)
    if shipped_root in path.resolve().parents:
        shown = "rules/" + path.resolve().relative_to(shipped_root).as_posix()
        return meta.model_copy(update={"path": shown})
    return meta


def load_rulebook(rule_dirs: list[Path] | None = None) -> Rulebook:
    """Load and validate the rulebook; the first problem found is raised as a one-line ``RuleError``."""
    rule_dirs = [Path(d) for d in rule_dirs or []]
    library, parsed = collect_rule_files(rule_dirs)
    for item in [*library, *parsed]:
        if item.errors:
            raise RuleError(item.errors[0], where=None if ":" in item.errors[0] else str(item.path))
    shipped_root = shipped_rules_dir()
    refuse_crashing_constructs(
        [i for i in [*library, *parsed] if shipped_root not in i.path.resolve().parents]
    )
    by_id: dict[str, ParsedRuleFile] = {}
    replaced: dict[str, ParsedRuleFile] = {}
    for item in parsed:
        if item.meta is None:
            raise RuleError("rule file has no # METADATA block above its package", where=str(item.path))
        previous = by_id.get(item.meta.id)
        if previous is not None:
            previous_shipped = shipped_root in previous.path.resolve().parents
            if not previous_shipped:
                raise RuleError(
                    f"rule id {item.meta.id} is defined twice (also in {previous.path})", where=str(item.path)
                )
            replaced[item.meta.id] = previous
        by_id[item.meta.id] = item
    rule_files = sorted(by_id.values(), key=lambda f: f.meta.id if f.meta else "")
    fixture_dirs = [
        shipped_root / "fixtures",
        *[d / "fixtures" for d in rule_dirs if (d / "fixtures").is_dir()],
    ]
    overrides = {
        rid: _display_path(f.meta, shipped_root).path for rid, f in replaced.items() if f.meta is not None
    }
    rules = {
        rid: _display_path(f.meta, shipped_root).model_copy(update={"overrides": overrides.get(rid)})
        for rid, f in by_id.items()
        if f.meta is not None
    }
    return Rulebook(
        rules=rules, library=library, rule_files=rule_files, fixture_dirs=fixture_dirs, overrides=overrides
    )
