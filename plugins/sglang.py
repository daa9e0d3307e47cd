"""SGLang serving plugin (entry point ``sglang.srt.plugins: pccguard``).

SGLang calls :func:`register` in every process it starts (launcher, scheduler,
detokenizer). It only registers hooks with SGLang's ``HookRegistry``; the policy
decision runs when the server arguments are resolved (launcher) or handed to a
scheduler, and refuses the start on a remaining deny or on any pccguard error.

SGLang logs and ignores exceptions raised by ``register`` itself, so nothing
here may fail silently: a hook that could not be registered is remembered and
turned into a refusal by the startup hooks, which SGLang does not swallow.
"""

from __future__ import annotations

from typing import Any

_REGISTERED = False
_PROBLEMS: list[str] = []
_TARGETS: list[tuple[str, Any]] = []
#: Mitigations whose engine code cannot even be imported here (e.g. NGRAM without sgl_kernel):
#: the feature cannot run, and the mitigation is reported as not installable.
UNAVAILABLE: set[str] = set()


def _refuse_if_broken() -> None:
    from pccguard.errors import EnforcementError

    if _PROBLEMS:
        raise EnforcementError("pccguard refuses to start sglang: " + "; ".join(_PROBLEMS))
    unpatched = [target for target, hook in _TARGETS if not _is_patched(target, hook)]
    if unpatched:
        raise EnforcementError(
            "pccguard refuses to start sglang: hooks not applied to " + ", ".join(unpatched)
        )


def _is_patched(target: str, hook: Any) -> bool:
    """Whether ``target`` is currently a wrapper chain containing our hook."""
    import pkgutil

    owner, _, attr = target.rpartition(".")
    try:
        current = getattr(pkgutil.resolve_name(owner), attr)
    except (AttributeError, ImportError, ValueError):
        return False
    current = getattr(current, "__func__", current)
    seen = 0
    while current is not None and seen < 64:
        closure = getattr(current, "__closure__", None) or ()
        if any(getattr(cell, "cell_contents", None) is hook for cell in closure):
            return True
        current = getattr(current, "__wrapped__", None)
        seen += 1
    return False


def _after_resolve(result: Any, server_args: Any, *args: Any, **kwargs: Any) -> None:
    from pccguard.adapters.sglang.runtime.startup import decide

    _refuse_if_broken()
    decide(server_args)
    return None


def _before_scheduler_init(scheduler: Any, server_args: Any, *args: Any, **kwargs: Any) -> None:
    from pccguard.adapters.sglang.runtime.startup import decide

    _refuse_if_broken()
    decide(server_args, scheduler=True)
    return None


def _after_init_pools(result: Any, scheduler: Any, *args: Any, **kwargs: Any) -> None:
    from pccguard.adapters.sglang.runtime.startup import check_pools

    check_pools(scheduler)
    return None


def _after_flush(result: Any, scheduler: Any, *args: Any, **kwargs: Any) -> None:
    from pccguard.adapters.sglang.runtime.state import STATE

    STATE.flush()
    return None


def hook_table() -> list[tuple[str, Any, str]]:
    """Every (target, hook, HookType name) the plugin registers."""
    from pccguard.adapters.sglang.runtime import (
        boundary,
        endpoints,
        ngram,
        salt,
        scheduling,
        scrub,
        targets,
        ttl,
    )

    table: list[tuple[str, Any, str]] = [
        (targets.SERVER_ARGS_RESOLVE, _after_resolve, "AFTER"),
        (targets.SCHEDULER_INIT, _before_scheduler_init, "BEFORE"),
        (targets.SCHEDULER_INIT_POOLS, _after_init_pools, "AFTER"),
        (targets.SCHEDULER_FLUSH, _after_flush, "AFTER"),
    ]
    for module in (scrub, salt, ttl, scheduling, endpoints, boundary):
        table.extend(module.HOOKS)
    try:
        import sglang.srt.speculative.ngram_worker  # noqa: F401
    except Exception:
        UNAVAILABLE.add(ngram.MITIGATION)
    else:
        table.extend(ngram.HOOKS)
    return table


def _import_owner(target: str) -> None:
    """Import the module defining ``target``: HookRegistry resolves names without importing."""
    import importlib

    parts = target.split(".")
    for end in range(len(parts) - 1, 0, -1):
        try:
            importlib.import_module(".".join(parts[:end]))
            return
        except ImportError:
            continue


def register() -> None:
    """Register pccguard's hooks with SGLang's HookRegistry (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True
    try:
        from sglang.srt.plugins.hook_registry import HookRegistry, HookType

        for target, hook, kind in hook_table():
            _import_owner(target)
            HookRegistry.register(target, hook, HookType[kind])
            _TARGETS.append((target, hook))
    except Exception as exc:  # SGLang swallows this; the startup hooks will refuse.
        _PROBLEMS.append(f"plugin registration failed ({type(exc).__name__})")
