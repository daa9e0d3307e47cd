"""SGLang adapter: facts from ``launch_server`` arguments and the runtime mitigations.

``facts`` turns SGLang's own ``ServerArgs`` into pccguard facts; ``runtime``
holds one small module per mitigation, installed through SGLang's
``HookRegistry`` by the ``sglang.srt.plugins`` entry point in
``pccguard.plugins.sglang``. Pinned to SGLang 0.5.23: hook targets are looked up
by name in ``runtime.targets`` and a missing target refuses the start.
"""

SUPPORTED_VERSION = "0.5.23"
