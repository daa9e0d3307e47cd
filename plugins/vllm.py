"""The ``vllm.general_plugins`` entry point: ``pccguard = "pccguard.plugins.vllm:register"``.

vLLM calls ``register()`` once in every process it starts (API server,
engine core, workers), and only when ``VLLM_PLUGINS`` is unset or names
``pccguard``. Registration only attaches hooks (see
``pccguard.adapters.vllm.runtime.hooks``); the policy is evaluated when the
engine configuration is resolved. This module imports nothing at load time
(vLLM skips a plugin whose import fails); an error inside ``register()``
propagates and stops vLLM's start (fail-closed).
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_registered = False


def register() -> None:
    """Attach pccguard to this vLLM process (idempotent)."""
    global _registered
    with _lock:
        if _registered:
            return
        from pccguard.adapters.vllm.runtime.hooks import install_all

        install_all()
        _registered = True
