"""What every serving plugin does at engine start, in one place.

Load the configuration, evaluate the live facts, choose mitigations, and either
allow the start or raise ``EnforcementError`` with the rules that block it.
Fail-closed: a policy or internal error refuses the start too. The one
exception is ``fail_mode: open``, meant for canary roll-outs of pccguard
itself: a pccguard *error while evaluating* (never a deny, never an error
before the policy runs, such as facts that cannot be built) then lets the
engine start, with an audit event and an error log saying it runs unchecked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import NoReturn

from pccguard.enforcement.audit import AuditKind, AuditLog
from pccguard.enforcement.config import PluginConfig
from pccguard.enforcement.decide import ChosenFacts, StartupDecision, decide_startup, refusal_message
from pccguard.errors import EnforcementError, PccguardError
from pccguard.facts.model import DeploymentFacts, Provenance

logger = logging.getLogger("pccguard.plugin")


def declared_facts(facts: DeploymentFacts, config: PluginConfig) -> DeploymentFacts:
    """``facts`` plus what the plugin configuration establishes, with ``config`` provenance.

    Tenancy is how the plugin's ingress identifies tenants; the model section is
    the operator's declaration (weights private or public, accelerator trusted),
    which no engine flag carries. Fields the configuration leaves unset keep the
    engine's value, usually unknown.
    """
    tenancy = config.tenancy
    tenancy_update = {
        "mode": tenancy.mode,
        "identified_by": tenancy.identified_by,
        "tenant_header": tenancy.tenant_header if tenancy.identified_by == "header" else None,
        # A tenant header is trusted as set by the authenticating gateway; API keys are checked here.
        "authenticated_at": "gateway" if tenancy.identified_by == "header" else "engine",
    }
    model_update = {k: v for k, v in config.model.model_dump().items() if v is not None}
    provenance = dict(facts.provenance)
    for key in tenancy_update:
        provenance[f"tenancy.{key}"] = Provenance(kind="config", name="PCCGUARD_CONFIG", value="tenancy")
    for key in model_update:
        provenance[f"model.{key}"] = Provenance(kind="config", name="PCCGUARD_CONFIG", value=f"model.{key}")
    update = {
        "tenancy": facts.tenancy.model_copy(update=tenancy_update),
        "model": facts.model.model_copy(update=model_update),
        "provenance": provenance,
    }
    return facts.model_copy(update=update)


def evaluate_startup(
    engine: str,
    facts: DeploymentFacts,
    installable: Iterable[str],
    config: PluginConfig,
    audit: AuditLog,
    *,
    always: Iterable[str] = (),
    chosen_facts: ChosenFacts | None = None,
) -> StartupDecision | None:
    """The startup decision, or ``None`` when ``fail_mode: open`` lets an erroring check through.

    The policy is loaded from ``config.policy_settings()`` (as ``pccguard check``
    loads it) and evaluated twice (see ``decide_startup``). Raises
    ``EnforcementError`` when the engine must not start.
    """
    try:
        policy = config.policy_settings().open()
        decision = decide_startup(policy, facts, installable, always=always, chosen_facts=chosen_facts)
        if decision.report.has_errors():
            raise PccguardError(decision.report.problems[0] if decision.report.problems else "policy error")
    except Exception as exc:  # fail closed on anything, expected or not
        refuse_on_error(engine, config, audit, exc)
        return None
    blocking = [r.id for r in decision.blocking]
    audit.emit(AuditKind.POLICY_EVALUATED, count=len(decision.report.results), rule_ids=blocking[:64])
    if not decision.allowed:
        audit.emit(
            AuditKind.STARTUP_REFUSED, reason="deny_remains", count=len(blocking), rule_ids=blocking[:64]
        )
        raise EnforcementError(refusal_message(engine, decision))
    return decision


def refuse_on_error(engine: str, config: PluginConfig | None, audit: AuditLog, exc: BaseException) -> None:
    """Raise the refusal for a pccguard error, or (``fail_mode: open``) record that the engine runs unchecked.

    ``config`` is ``None`` when the error happened before the policy could run
    (loading the configuration, building the facts): then no fail mode applies,
    and the start is refused (:func:`refuse`).
    """
    if config is None or config.fail_mode != "open":
        refuse(engine, audit, exc)
    reason, detail = _describe(exc)
    audit.emit(AuditKind.STARTUP_REFUSED, reason=f"{reason}_fail_open", count=0)
    logger.error("pccguard could not check %s and fail_mode is open: serving UNCHECKED (%s)", engine, detail)


def refuse(engine: str, audit: AuditLog, exc: BaseException) -> NoReturn:
    """Refuse the start because of ``exc``, whatever the fail mode: one line naming the problem."""
    reason, detail = _describe(exc)
    audit.emit(AuditKind.STARTUP_REFUSED, reason=reason)
    raise EnforcementError(f"pccguard refuses to start {engine} (fail-closed): {detail}") from exc


def _describe(exc: BaseException) -> tuple[str, str]:
    """The audit reason code and the one-line detail of an error that stops the check."""
    if isinstance(exc, PccguardError):
        reason, detail = "policy_error", exc.one_line()
    else:
        reason, detail = "internal_error", f"internal error: {type(exc).__name__}: {exc}"
    return reason, " ".join(detail.split())[:500]
