"""The patching helper on real Python objects: a patch that took is proven, every kind of loss is refused."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from pccguard.enforcement.patching import Hook, HookTable, install, is_patched, verify
from pccguard.errors import EnforcementError

MODULE = "pccguard_patching_target"


class Service:
    def handle(self, value: int) -> int:
        return value + 1

    @classmethod
    def build(cls, value: int) -> int:
        return value * 10


def around(original: Any, *args: Any, **kwargs: Any) -> Any:
    return original(*args, **kwargs) * 2


def before(self: Any, value: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (self, value + 100), {}


@pytest.fixture
def module() -> Iterator[types.ModuleType]:
    """A fresh importable module with a class whose methods the tests patch."""
    mod = types.ModuleType(MODULE)
    cls = type("Service", (), {"handle": Service.__dict__["handle"], "build": Service.__dict__["build"]})
    mod.Service = cls  # type: ignore[attr-defined]
    sys.modules[MODULE] = mod
    yield mod
    del sys.modules[MODULE]


def _table(*hooks: Hook) -> HookTable:
    return HookTable(engine="testengine", version="1.0", hooks=hooks)


HANDLE = f"{MODULE}.Service.handle"
BUILD = f"{MODULE}.Service.build"


def test_a_patch_that_took_passes_and_runs(module: Any) -> None:
    table = _table(Hook(HANDLE, around, "AROUND"), Hook(BUILD, around, "AROUND"))
    assert module.Service().handle(1) == 2 and not is_patched(HANDLE, around)  # control: unpatched
    with pytest.raises(EnforcementError, match=r"hooks not applied to .*Service\.handle"):
        verify(table)
    install(table)
    install(table)  # idempotent: wrapped once
    verify(table)
    assert module.Service().handle(1) == 4
    assert module.Service.build(1) == 20, "a classmethod stays a classmethod"
    assert not hasattr(module.Service.__dict__["handle"].__wrapped__, "__wrapped__")


def test_before_kind_rewrites_arguments(module: Any) -> None:
    install(_table(Hook(HANDLE, before, "BEFORE")))
    assert module.Service().handle(1) == 102


def test_a_wrapper_on_top_of_ours_keeps_the_proof(module: Any) -> None:
    table = _table(Hook(HANDLE, around, "AROUND"))
    install(table)
    ours = module.Service.handle

    def theirs(self: Any, value: int) -> int:
        return int(ours(self, value))

    theirs.__wrapped__ = ours  # type: ignore[attr-defined]
    module.Service.handle = theirs
    verify(table)


def test_a_patch_replaced_by_someone_else_is_refused(module: Any) -> None:
    table = _table(Hook(HANDLE, around, "AROUND"))
    install(table)
    verify(table)  # positive control
    module.Service.handle = lambda self, value: value
    with pytest.raises(EnforcementError, match=r"refuses to start testengine: hooks not applied to .*handle"):
        verify(table)


def test_a_removed_target_is_refused(module: Any) -> None:
    table = _table(Hook(HANDLE, around, "AROUND"))
    install(table)
    verify(table)  # positive control
    del module.Service.handle
    with pytest.raises(EnforcementError, match=r"hook targets missing: .*Service\.handle"):
        verify(table)
    with pytest.raises(EnforcementError, match=r"hook target missing: .*Service\.handle not found"):
        install(table)


def test_a_missing_module_is_refused(module: Any) -> None:
    table = _table(Hook("pccguard_no_such_module.thing.attr", around, "AROUND"))
    with pytest.raises(EnforcementError, match="hook target missing: module of pccguard_no_such_module"):
        install(table)
    with pytest.raises(EnforcementError, match="hook targets missing: pccguard_no_such_module"):
        verify(table)
    install(_table(Hook(HANDLE, around, "AROUND")))  # positive control: an existing module installs


def test_a_missing_class_is_refused(module: Any) -> None:
    with pytest.raises(EnforcementError, match=f"{MODULE}.Gone not found"):
        install(_table(Hook(f"{MODULE}.Gone.handle", around, "AROUND")))


def test_version_pin() -> None:
    table = _table()
    table.require_version("1.0")
    table.require_version("1.0+cpu")  # a local build of the pinned release
    with pytest.raises(EnforcementError, match=r"pinned to testengine 1\.0, this is 1\.1"):
        table.require_version("1.1")


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        _table(Hook(HANDLE, around, "SIDEWAYS"))


def test_an_on_set_hook_runs_when_a_constructor_already_running_sets_the_attribute(module: Any) -> None:
    """The case it exists for: the hook is installed while ``__init__`` runs, before it sets the attribute."""
    seen: list[tuple[Any, Any]] = []
    table = _table(Hook(f"{MODULE}.Service.ready", lambda obj, value: seen.append((obj, value)), "ON_SET"))

    def init(self: Any) -> None:
        install(table)  # as a plugin loaded from inside the constructor installs it
        self.ready = [1]

    module.Service.__init__ = init
    with pytest.raises(EnforcementError, match=r"hook targets missing: .*Service\.ready"):
        verify(table)  # control: not installed yet, not proven
    built = module.Service()
    verify(table)
    assert seen == [(built, [1])] and built.ready == [1] and built.__dict__["ready"] == [1]
    module.Service().ready = [2]
    assert len(seen) == 3, "every set runs the hook, the constructor's and later ones"
    with pytest.raises(AttributeError):
        object.__new__(module.Service).ready  # noqa: B018  (never set: no value invented)
    module.Service.ready = None  # replaced by someone else: the proof is lost
    with pytest.raises(EnforcementError, match=r"hooks not applied to .*Service\.ready"):
        verify(table)


def test_an_on_set_hook_does_not_replace_what_the_class_defines(module: Any) -> None:
    with pytest.raises(EnforcementError, match=r"hook target .*Service\.handle is defined on its class"):
        install(_table(Hook(HANDLE, lambda obj, value: None, "ON_SET")))
    assert module.Service().handle(1) == 2  # untouched


def counters(self: Any) -> dict[str, int]:
    return {"residue_found/scrub_freed_kv": 0}


def test_an_added_method_is_installed_proven_and_lost_when_replaced(module: Any) -> None:
    table = _table(Hook(f"{MODULE}.Service.pccguard_counters", counters, "ADD"))
    with pytest.raises(EnforcementError, match=r"hook targets missing: .*Service\.pccguard_counters"):
        verify(table)  # control: not there before it is installed
    install(table)
    install(table)  # idempotent
    verify(table)
    assert getattr(module.Service(), "pccguard_counters")() == {"residue_found/scrub_freed_kv": 0}  # noqa: B009
    module.Service.pccguard_counters = lambda self: {}
    with pytest.raises(EnforcementError, match=r"hooks not applied to .*Service\.pccguard_counters"):
        verify(table)


def test_an_added_method_never_replaces_what_the_engine_has(module: Any) -> None:
    with pytest.raises(EnforcementError, match=r"hook target .*Service\.handle already exists on its class"):
        install(_table(Hook(HANDLE, counters, "ADD")))
    assert module.Service().handle(1) == 2  # untouched
