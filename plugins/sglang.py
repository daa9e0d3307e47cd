"""SGLang serving plugin (entry point ``sglang.srt.plugins: pccguard``).

SGLang calls :func:`register` in every process it starts (launcher,
scheduler, detokenizer). It only registers hooks with SGLang's
``HookRegistry`` (``pccguard.adapters.sglang.runtime.hooks``); the policy
decision runs when the server arguments are resolved (launcher) or handed to a
scheduler, and refuses the start on a remaining deny, on any pccguard error or
when a hook did not take.
"""

from __future__ import annotations


def register() -> None:
    """Register pccguard's hooks with SGLang's HookRegistry (idempotent)."""
    from pccguard.adapters.sglang.runtime.hooks import register as register_hooks

    register_hooks()
