"""The tenant boundary both engine adapters share: who is asking, which salt their KV gets, which routes bind.

One job per module:

* ``salts`` -- the per-start key set, typed salt derivation, and the tokens that
  carry a salt from the ingress to the engine core (minted and opened here
  only, so a client can neither choose nor copy one);
* ``identity`` -- the tenant of a request: the configured header or the API key
  (checked in constant time against a validated key file), and the tenant
  bound for in-process calls;
* ``routes`` -- the route table of an engine version, the live app's routes
  enumerated at start, and the binding each route gets;
* ``boundary`` -- the ASGI middleware that applies the bindings to every
  request, the same in both engines.

Adapters only bind these to their engine: where the token goes into a request
and where the engine core opens it.
"""
