"""Runtime mitigations inside SGLang, one small module per mitigation.

Every module exposes ``HOOKS``: ``(target, hook, HookType name)`` triples that
``pccguard.plugins.sglang.register`` hands to SGLang's ``HookRegistry``. Hooks
consult :mod:`.state` at call time, so a hook registered in a process where the
policy decided not to install its mitigation does nothing.
"""
