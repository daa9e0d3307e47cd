"""Runtime mitigations inside SGLang, one small module per mitigation.

Every module exposes ``HOOKS``: ``(target, hook, HookType name)`` triples that
:mod:`.hooks` gathers into one version-pinned table and registers with SGLang's
``HookRegistry`` (the entry point ``pccguard.plugins.sglang.register`` only calls it). Hooks
consult :mod:`.state` at call time, so a hook registered in a process where the
policy decided not to install its mitigation does nothing.
"""
