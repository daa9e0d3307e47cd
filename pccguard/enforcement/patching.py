"""Hook tables, installation and proof of patch, the same for every engine adapter.

Both engines are enforced by wrapping a few of their functions. Engine
internals move between releases, so each adapter declares its targets once,
as a table pinned to the engine version it supports, and the start is refused
(``EnforcementError`` naming the target) when the engine is another version,
a target is missing, or a target does not carry our hook when the engine is
about to serve -- for instance because someone else replaced it after us.

A hook is proven by walking the wrapper chain from the current attribute
(``__wrapped__`` links, as ``functools.wraps`` and SGLang's ``HookRegistry``
leave them) until a wrapper whose closure holds the hook: a wrapper put on top
of ours keeps the proof, a replacement that dropped ours loses it.

The wrapping kinds are SGLang's ``HookType`` names, so an adapter that
registers through SGLang's registry and one that installs here read the same:

* ``BEFORE``: ``hook(*args, **kwargs)`` runs first; a non-None result is the new ``(args, kwargs)``;
* ``AFTER``: ``hook(result, *args, **kwargs)``; a non-None result replaces the result;
* ``AROUND``: ``hook(original, *args, **kwargs)`` decides whether and how to call the original;
* ``REPLACE``: ``hook(*args, **kwargs)`` instead of the original;
* ``ON_SET``: ``hook(obj, value)`` runs each time an instance attribute is
  assigned, after the value is stored. The target names an attribute the
  engine sets on its instances (so the class has none until the hook is
  installed): a property whose setter carries the hook takes its place. It
  is for the one moment an engine offers no call to wrap -- the end of a
  constructor already running when the hook was installed;
* ``ADD``: ``hook`` becomes a method the engine's class does not have, for an
  engine that dispatches calls by name (vLLM's engine-core utility calls). The
  class must not have the attribute already: a name the engine defines is
  never replaced.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from pccguard.errors import EnforcementError

KINDS = ("BEFORE", "AFTER", "AROUND", "REPLACE", "ON_SET", "ADD")

#: How far a wrapper chain is followed before giving up (a cycle, or a pathological stack of wrappers).
_MAX_CHAIN = 64

_lock = threading.Lock()


class Hook(NamedTuple):
    """One hook: the dotted name it wraps (``module.Class.attr`` or ``module.attr``), our code, how it wraps."""

    target: str
    hook: Callable[..., Any]
    kind: str


@dataclass(frozen=True)
class HookTable:
    """Every hook of one engine adapter, pinned to the engine release whose internals it names."""

    engine: str
    version: str
    hooks: tuple[Hook, ...]

    def __post_init__(self) -> None:
        for entry in self.hooks:
            if entry.kind not in KINDS:
                raise ValueError(f"hook on {entry.target}: unknown kind {entry.kind!r}")

    def require_version(self, installed: str) -> None:
        """Refuse an engine release other than the pinned one (a local build suffix such as ``+cpu`` aside)."""
        if installed.split("+", 1)[0] != self.version:
            raise EnforcementError(
                f"pccguard refuses to start {self.engine}: its hooks are pinned to {self.engine} "
                f"{self.version}, this is {installed}"
            )


def _refuse(engine: str, problem: str) -> EnforcementError:
    return EnforcementError(f"pccguard refuses to start {engine}: {problem}")


def import_owner(target: str) -> Any:
    """Import the longest module prefix of ``target`` and return the object that owns its last attribute.

    Raises ``LookupError`` naming what is missing (a module, a class, the attribute's owner).
    """
    parts = target.split(".")
    if len(parts) < 2:
        raise LookupError(f"{target} is not a dotted name")
    module: Any = None
    end = len(parts) - 1
    while end > 0:
        try:
            module = importlib.import_module(".".join(parts[:end]))
            break
        except ModuleNotFoundError:
            end -= 1
    if module is None:
        raise LookupError(f"module of {target} not found")
    owner = module
    for index in range(end, len(parts) - 1):
        if not hasattr(owner, parts[index]):
            raise LookupError(f"{'.'.join(parts[: index + 1])} not found")
        owner = getattr(owner, parts[index])
    return owner


def current(target: str) -> Any:
    """What callers of ``target`` get now (``LookupError`` when the target does not exist)."""
    owner = import_owner(target)
    attr = target.rpartition(".")[2]
    if not hasattr(owner, attr):
        raise LookupError(f"{target} not found")
    return getattr(owner, attr)


def carries(obj: Any, hook: Callable[..., Any]) -> bool:
    """Whether ``obj`` is a wrapper chain one of whose wrappers closes over ``hook`` (a property: its setter)."""
    node = obj.fset if isinstance(obj, property) else getattr(obj, "__func__", obj)
    for _ in range(_MAX_CHAIN):
        if node is None:
            return False
        if node is hook:  # an added method is the hook itself
            return True
        closure = getattr(node, "__closure__", None) or ()
        for cell in closure:
            try:
                if cell.cell_contents is hook:
                    return True
            except ValueError:  # an empty cell holds nothing
                continue
        node = getattr(node, "__wrapped__", None)
        node = getattr(node, "__func__", node)
    return False


def is_patched(target: str, hook: Callable[..., Any]) -> bool:
    """Whether ``target`` exists and currently carries ``hook``."""
    try:
        return carries(current(target), hook)
    except LookupError:
        return False


def wrap(original: Callable[..., Any], hook: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """A wrapper of ``original`` that runs ``hook`` as ``kind`` says (see the module docstring)."""
    if kind == "BEFORE":

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            changed = hook(*args, **kwargs)
            if changed is not None:
                args, kwargs = changed
            return original(*args, **kwargs)

    elif kind == "AFTER":

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            changed = hook(result, *args, **kwargs)
            return result if changed is None else changed

    elif kind == "AROUND":

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return hook(original, *args, **kwargs)

    elif kind == "REPLACE":

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return hook(*args, **kwargs)

    else:
        raise ValueError(f"unknown hook kind {kind!r}")
    functools.update_wrapper(wrapper, original)
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    return wrapper


def on_set(name: str, hook: Callable[..., Any]) -> property:
    """A property standing for the instance attribute ``name``: stored in the instance, ``hook`` run on each set."""

    def get(obj: Any) -> Any:
        try:
            return obj.__dict__[name]
        except KeyError:
            raise AttributeError(name) from None

    def set_(obj: Any, value: Any) -> None:
        obj.__dict__[name] = value
        hook(obj, value)

    return property(get, set_, doc=f"{name}, with a pccguard hook run when it is set")


def install(table: HookTable, hooks: Iterable[Hook] | None = None) -> None:
    """Wrap every target of ``table`` (or the ``hooks`` chosen from it) in place; idempotent.

    A target already carrying its hook -- installed before, or inherited from a
    patched base class -- is left alone. A missing target refuses the start.
    """
    with _lock:
        for entry in table.hooks if hooks is None else hooks:
            try:
                owner = import_owner(entry.target)
                attr = entry.target.rpartition(".")[2]
                if entry.kind in ("ON_SET", "ADD"):
                    if not isinstance(owner, type):
                        raise LookupError(f"{entry.target} is not an attribute of a class")
                elif not hasattr(owner, attr):
                    raise LookupError(f"{entry.target} not found")
            except LookupError as exc:
                raise _refuse(table.engine, f"hook target missing: {exc}") from None
            if carries(getattr(owner, attr, None), entry.hook):
                continue
            if entry.kind == "ON_SET":
                if attr in owner.__dict__:  # something of that name is defined there: not ours to replace
                    raise _refuse(table.engine, f"hook target {entry.target} is defined on its class")
                setattr(owner, attr, on_set(attr, entry.hook))
                continue
            if entry.kind == "ADD":
                if hasattr(owner, attr):  # the engine (or a base class) has it: not ours to replace
                    raise _refuse(table.engine, f"hook target {entry.target} already exists on its class")
                setattr(owner, attr, entry.hook)
                continue
            raw = owner.__dict__.get(attr) if isinstance(owner, type) else None
            if isinstance(raw, (classmethod, staticmethod)):
                wrapped: Any = type(raw)(wrap(raw.__func__, entry.hook, entry.kind))
            else:
                wrapped = wrap(getattr(owner, attr), entry.hook, entry.kind)
            setattr(owner, attr, wrapped)


def verify(table: HookTable, hooks: Iterable[Hook] | None = None) -> None:
    """Prove that every target of ``table`` (or of ``hooks``) carries its hook now; refuse the start otherwise."""
    missing: list[str] = []
    unpatched: list[str] = []
    for entry in table.hooks if hooks is None else hooks:
        try:
            obj = current(entry.target)
        except LookupError:
            missing.append(entry.target)
            continue
        if not carries(obj, entry.hook):
            unpatched.append(entry.target)
    problems = []
    if missing:
        problems.append("hook targets missing: " + ", ".join(missing))
    if unpatched:
        problems.append("hooks not applied to " + ", ".join(unpatched))
    if problems:
        raise _refuse(table.engine, "; ".join(problems))
