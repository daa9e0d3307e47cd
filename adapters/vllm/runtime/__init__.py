"""Runtime mitigations installed inside a running vLLM engine.

One job per module: ``plan`` decides what to install (through the core's
``decide_startup``), ``configure`` writes that into the engine configuration,
``scrub`` tracks freed KV blocks, ``ttl`` expires cached prefixes,
``scheduler`` binds them into vLLM's scheduler, ``worker`` is the worker
extension that zeroes blocks, ``offload`` encrypts offloaded KV,
``middleware`` puts the core's tenant boundary (``pccguard.enforcement.tenancy``) in front
of vLLM's app and ``hooks`` attaches all of it to vLLM's extension points,
including the engine core's salt gate.
"""
