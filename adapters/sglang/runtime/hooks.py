"""Registration of pccguard's SGLang hooks, and the proof at start that each one took.

SGLang calls the plugin's ``register`` in every process it starts (launcher,
scheduler, detokenizer). The hooks go through SGLang's own ``HookRegistry``
(which applies them before the engine starts); the table of what is hooked is
built once here from the version-pinned names in :mod:`.targets` and each
mitigation module's ``HOOKS``, as a ``pccguard.enforcement.patching`` table.

SGLang logs and ignores exceptions raised by ``register`` itself, so nothing
here may fail silently: a hook that could not be registered is remembered and
turned into a refusal by the startup hooks, which SGLang does not swallow. The
startup hooks also prove, with the core helper, that every registered target
now carries its hook. Once the engine is built and before it serves, every
installed mitigation proves itself on the live objects (:mod:`.selftest` in
each scheduler, :mod:`.selftest_http` in the HTTP server).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from pccguard.enforcement.patching import Hook, HookTable, import_owner, verify
from pccguard.errors import EnforcementError

from .. import SUPPORTED_VERSION
from . import targets

_REGISTERED = False
_PROBLEMS: list[str] = []
_TARGETS: list[Hook] = []
#: Mitigations whose engine code cannot even be imported here (e.g. NGRAM without sgl_kernel):
#: the feature cannot run, and the mitigation is reported as not installable.
UNAVAILABLE: set[str] = set()


def registered(target: str) -> list[Callable[..., Any]]:
    """The hooks this process registered on ``target``, in order: what the patched target runs.

    Self-tests call these, not the module functions, so a hook replaced or
    left out before registration is what they exercise.
    """
    return [entry.hook for entry in _TARGETS if entry.target == target]


def refuse_if_broken() -> None:
    """Refuse the start when registration failed or a registered hook is not in place."""
    if _PROBLEMS:
        raise EnforcementError("pccguard refuses to start sglang: " + "; ".join(_PROBLEMS))
    verify(table(), _TARGETS)


def _after_resolve(result: Any, server_args: Any, *args: Any, **kwargs: Any) -> None:
    from .startup import decide

    refuse_if_broken()
    decide(server_args)
    return None


def _before_scheduler_init(scheduler: Any, server_args: Any, *args: Any, **kwargs: Any) -> None:
    from .startup import decide

    refuse_if_broken()
    decide(server_args, scheduler=True)
    return None


def _after_init_pools(result: Any, scheduler: Any, *args: Any, **kwargs: Any) -> None:
    from .startup import check_pools

    check_pools(scheduler)
    return None


def _after_flush(result: Any, scheduler: Any, *args: Any, **kwargs: Any) -> None:
    from .state import STATE

    STATE.flush()
    return None


def _ngram_available() -> bool:
    """Whether SGLang's n-gram speculative worker imports here (it needs ``sgl_kernel``)."""
    try:
        import sglang.srt.speculative.ngram_worker  # noqa: F401
    except ImportError:
        return False
    return True


def hook_table() -> list[Hook]:
    """Every hook the plugin registers (the n-gram hooks only where the n-gram worker can run)."""
    from . import (
        boundary,
        endpoints,
        logs,
        metrics,
        ngram,
        residue,
        salt,
        scheduling,
        scrub,
        selftest,
        selftest_http,
        ttl,
    )

    found = [
        Hook(targets.SERVER_ARGS_RESOLVE, _after_resolve, "AFTER"),
        Hook(targets.SCHEDULER_INIT, _before_scheduler_init, "BEFORE"),
        Hook(targets.SCHEDULER_INIT_POOLS, _after_init_pools, "AFTER"),
        Hook(targets.SCHEDULER_FLUSH, _after_flush, "AFTER"),
    ]
    for module in (
        scrub,
        salt,
        ttl,
        scheduling,
        endpoints,
        boundary,
        selftest,
        selftest_http,
        residue,
        logs,
        metrics,
    ):
        found.extend(Hook(*entry) for entry in module.HOOKS)
    if _ngram_available():
        found.extend(Hook(*entry) for entry in ngram.HOOKS)
    else:
        UNAVAILABLE.add(ngram.MITIGATION)
    return found


def table() -> HookTable:
    """The hook table of this process, pinned to the SGLang release the targets were read from."""
    return HookTable(engine="sglang", version=SUPPORTED_VERSION, hooks=tuple(hook_table()))


def register() -> None:
    """Register pccguard's hooks with SGLang's HookRegistry (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True
    try:
        from sglang.srt.plugins.hook_registry import HookRegistry, HookType

        hooks = table()
        hooks.require_version(version("sglang"))
        for entry in hooks.hooks:
            import_owner(entry.target)  # HookRegistry resolves names without importing their modules
            HookRegistry.register(entry.target, entry.hook, HookType[entry.kind])
            _TARGETS.append(entry)
    except Exception as exc:  # SGLang swallows this; the startup hooks will refuse.
        _PROBLEMS.append(f"plugin registration failed ({type(exc).__name__}: {exc})")
