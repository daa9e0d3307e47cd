"""``per_tenant_spec_corpus``: NGRAM speculation drafts only from the same tenant's text.

SGLang's NGRAM worker feeds one ``NgramCorpus`` with every request's input tail
and output and drafts from it for every other request, so tenant B is proposed
tenant A's continuation. The plugin replaces the worker's corpus with a router
that keeps one real ``NgramCorpus`` per cache salt (that is, per tenant once
``tenant_cache_salt`` is on): the worker's own ``_update_ngram_corpus`` and
``_prepare_draft_tokens`` bind the batch's requests to their salts, and puts,
gets and match state are routed accordingly. External corpora (operator data
loaded through ``/add_external_corpus`` or at start) are refused while the
router is in place. ``flush_cache`` resets every tenant's corpus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pccguard.enforcement.audit import AuditKind
from pccguard.errors import EnforcementError

from . import targets
from .state import STATE

MITIGATION = "per_tenant_spec_corpus"


class TenantNgramCorpus:
    """Drop-in for ``NgramCorpus`` that partitions the store by cache salt."""

    def __init__(self, factory: Callable[[], Any], draft_token_num: int) -> None:
        self._factory = factory
        self.draft_token_num = draft_token_num
        self._corpora: dict[str | None, Any] = {}
        self._rid_salt: dict[str, str | None] = {}
        self._put_salts: list[str | None] | None = None

    # -- binding (called from the worker hooks) --------------------------------
    def bind(self, reqs: list[Any]) -> None:
        salts = [getattr(r, "cache_salt", None) for r in reqs]
        for req, salt in zip(reqs, salts, strict=True):
            self._rid_salt[req.rid] = salt
        self._put_salts = salts

    def _corpus(self, salt: str | None) -> Any:
        corpus = self._corpora.get(salt)
        if corpus is None:
            corpus = self._factory()
            self._corpora[salt] = corpus
            STATE.count(AuditKind.MITIGATION_INSTALLED, MITIGATION, 1, "nodes", reason="tenant_corpus")
        return corpus

    def tenants(self) -> int:
        return len(self._corpora)

    def drop(self, salts: list[str | None]) -> None:
        """Forget these salts' corpora and their requests (the start-time self-test's own tenants)."""
        for salt in salts:
            corpus = self._corpora.pop(salt, None)
            if corpus is not None:
                corpus.reset()
        for rid in [r for r, s in self._rid_salt.items() if s in salts]:
            del self._rid_salt[rid]

    # -- NgramCorpus interface ---------------------------------------------------
    def batch_put(self, batch_tokens: list[list[int]]) -> None:
        salts = self._put_salts
        if salts is None or len(salts) != len(batch_tokens):
            raise EnforcementError("pccguard: NGRAM corpus update without bound requests")
        groups: dict[str | None, list[list[int]]] = {}
        for salt, tokens in zip(salts, batch_tokens, strict=True):
            groups.setdefault(salt, []).append(tokens)
        for salt, group in groups.items():
            self._corpus(salt).batch_put(group)
        self._put_salts = None

    def synchronize(self) -> None:
        for corpus in self._corpora.values():
            corpus.synchronize()

    def batch_get(
        self, req_ids: list[str], batch_tokens: list[list[int]], total_lens: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        groups: dict[str | None, list[int]] = {}
        for i, rid in enumerate(req_ids):
            if rid not in self._rid_salt:
                raise EnforcementError("pccguard: NGRAM draft for a request with no bound tenant")
            groups.setdefault(self._rid_salt[rid], []).append(i)
        n = len(req_ids)
        drafts: dict[int, np.ndarray] = {}
        masks: dict[int, np.ndarray] = {}
        for salt, idx in groups.items():
            d, m = self._corpus(salt).batch_get(
                [req_ids[i] for i in idx], [batch_tokens[i] for i in idx], [total_lens[i] for i in idx]
            )
            d_rows = np.asarray(d).reshape(len(idx), -1)
            m_rows = np.asarray(m).reshape(len(idx), -1)
            for j, i in enumerate(idx):
                drafts[i] = d_rows[j]
                masks[i] = m_rows[j]
        if n == 0:
            empty: tuple[np.ndarray, np.ndarray] = self._corpus(None).batch_get([], [], [])
            return empty
        # Every index was bound to a group above, so each row is present (a missing one raises).
        return np.concatenate([drafts[i] for i in range(n)]), np.concatenate([masks[i] for i in range(n)])

    def erase_match_state(self, req_ids: list[str]) -> None:
        groups: dict[str | None, list[str]] = {}
        for rid in req_ids:
            if rid in self._rid_salt:
                groups.setdefault(self._rid_salt.pop(rid), []).append(rid)
        for salt, rids in groups.items():
            if salt in self._corpora:
                self._corpora[salt].erase_match_state(rids)

    def reset(self) -> None:
        for corpus in self._corpora.values():
            corpus.reset()
        self._corpora.clear()
        self._rid_salt.clear()

    @property
    def remaining_token_budget(self) -> int:
        return 0

    def load_external_corpus_named(self, corpus_id: str, chunks: Any) -> int:
        STATE.count(AuditKind.OPTION_REFUSED, MITIGATION, 1, "options", reason="external_corpus")
        raise PermissionError("pccguard: external NGRAM corpora are refused with per-tenant corpora")

    def commit_external_corpus_load(self, corpus_id: str, loaded_token_count: int) -> None:
        raise PermissionError("pccguard: external NGRAM corpora are refused with per-tenant corpora")

    def remove_external_corpus(self, corpus_id: str) -> None:
        raise PermissionError("pccguard: external NGRAM corpora are refused with per-tenant corpora")

    def list_external_corpora(self) -> dict[str, int]:
        return {}


def corpus_factory_from_spec() -> Callable[[], Any]:
    """A factory building corpora exactly as ``NGRAMWorker.__init__`` does."""
    from sglang.srt.runtime_context import get_spec
    from sglang.srt.speculative.cpp_ngram.ngram_corpus import NgramCorpus

    spec = get_spec()

    def factory() -> Any:
        return NgramCorpus(
            min_bfs_breadth=spec.speculative_ngram_min_bfs_breadth,
            max_bfs_breadth=spec.speculative_ngram_max_bfs_breadth,
            match_type=spec.speculative_ngram_match_type,
            capacity=spec.speculative_ngram_capacity,
            max_trie_depth=spec.speculative_ngram_max_trie_depth,
            draft_token_num=spec.speculative_num_draft_tokens,
            external_sam_budget=spec.speculative_ngram_external_sam_budget,
            external_corpus_max_tokens=spec.speculative_ngram_external_corpus_max_tokens,
        )

    return factory


def _around_init(original: Any, worker: Any, *args: Any, **kwargs: Any) -> Any:
    if not STATE.active(MITIGATION):
        return original(worker, *args, **kwargs)
    from sglang.srt.runtime_context import get_spec

    if get_spec().speculative_ngram_external_corpus_path is not None:
        raise EnforcementError("pccguard: an external NGRAM corpus cannot be shared between tenants")
    result = original(worker, *args, **kwargs)
    worker.ngram_corpus.reset()
    worker.ngram_corpus = TenantNgramCorpus(corpus_factory_from_spec(), worker.draft_token_num)
    STATE.audit.emit(AuditKind.MITIGATION_INSTALLED, mitigation=MITIGATION)
    return result


def _around_bind(original: Any, worker: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
    corpus = getattr(worker, "ngram_corpus", None)
    if isinstance(corpus, TenantNgramCorpus):
        corpus.bind(list(batch.reqs))
    return original(worker, batch, *args, **kwargs)


HOOKS = [
    (targets.NGRAM_INIT, _around_init, "AROUND"),
    (targets.NGRAM_UPDATE, _around_bind, "AROUND"),
    (targets.NGRAM_PREPARE, _around_bind, "AROUND"),
]
