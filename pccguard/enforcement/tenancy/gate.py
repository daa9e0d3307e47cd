"""The engine-core side of the tenant boundary: admit a request's salt, or refuse the request.

Both adapters call :meth:`SaltGate.admit` where a request enters the engine
core (vLLM's ``EngineCore.preprocess_add_request``, SGLang's scheduler), before
anything is hashed or cached. In multi-tenant mode a request is admitted only
with a token minted by pccguard's ingress for this start, and runs with the
bare salt that token carries; anything else -- no salt, a client's own salt, a
forged, expired or foreign token -- is refused, whatever route it came from.
In single-tenant mode every request gets the one tenant's salt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pccguard.enforcement.tenancy.identity import SINGLE_TENANT
from pccguard.enforcement.tenancy.salts import DEFAULT_TOKEN_MAX_AGE_S, SaltKeys, TokenRefused

#: The message of every engine-core refusal (the reason code is appended; never the salt).
REFUSAL = "refused by pccguard: the request carries no cache salt minted by pccguard's tenant boundary"


@dataclass(frozen=True)
class SaltGate:
    keys: SaltKeys
    mode: Literal["single", "multi"] = "multi"
    max_age: float = DEFAULT_TOKEN_MAX_AGE_S

    def admit(self, claimed: object) -> str:
        """The salt the request runs with; raises ``TokenRefused`` in multi-tenant mode for anything unminted."""
        if self.mode == "single":
            try:
                return self.keys.open(claimed, max_age=self.max_age)
            except TokenRefused:
                return self.keys.tenant_salt(SINGLE_TENANT)
        return self.keys.open(claimed, max_age=self.max_age)


def refusal_message(exc: TokenRefused) -> str:
    return f"{REFUSAL} ({exc.reason})"
