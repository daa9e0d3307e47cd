"""Scenario: does SGLang's real NGRAM corpus propose tenant A's continuation to tenant B?

Without the plugin one ``NgramCorpus`` (SGLang's C++ corpus) holds every
request's tokens, as in ``NGRAMWorker``. With the plugin the worker's corpus is
pccguard's per-tenant router, bound to the batch's requests by their salts
exactly as the worker hooks do. Tenant A's secret continuation is inserted;
tenant B then asks for drafts after the shared context.
"""

from __future__ import annotations

from types import SimpleNamespace

from _common import args, install_plugin, report, server_args

SECRET = [501, 502, 503, 504, 505, 506]
CONTEXT = [11, 12, 13, 501]
DRAFTS = 6


def corpus() -> object:
    from sglang.srt.speculative.cpp_ngram.ngram_corpus import NgramCorpus

    return NgramCorpus(
        max_trie_depth=8,
        min_bfs_breadth=1,
        max_bfs_breadth=4,
        draft_token_num=DRAFTS,
        match_type="BFS",
        capacity=100000,
    )


def proposed(store: object, rid: str) -> list[int]:
    drafts, _mask = store.batch_get([rid], [CONTEXT], [len(CONTEXT)])  # type: ignore[attr-defined]
    return [int(t) for t in list(drafts)[1:]]


def main() -> None:
    model, plugin = args()
    salts = {"A": None, "B": None}
    if plugin:
        enforcement = install_plugin(server_args(model))
        from pccguard.adapters.sglang.runtime.ngram import TenantNgramCorpus
        from pccguard.adapters.sglang.runtime.salt import tenant_salt

        store = TenantNgramCorpus(corpus, DRAFTS)
        salts = {t: tenant_salt(enforcement, t) for t in ("A", "B")}
    else:
        store = corpus()
    req_a = SimpleNamespace(rid="a1", cache_salt=salts["A"])
    req_b = SimpleNamespace(rid="b1", cache_salt=salts["B"])
    req_a2 = SimpleNamespace(rid="a2", cache_salt=salts["A"])
    bind = getattr(store, "bind", lambda reqs: None)
    for _ in range(3):  # A's request decodes its secret continuation a few times
        bind([req_a])
        store.batch_put([[11, 12, 13, *SECRET]])
    store.synchronize()
    bind([req_b])
    to_b = proposed(store, "b1")
    bind([req_a2])
    to_a = proposed(store, "a2")
    report(
        {
            "to_b": to_b,
            "to_a": to_a,
            "b_got_secret": any(t in SECRET[1:] for t in to_b),
            "a_got_secret": any(t in SECRET[1:] for t in to_a),
            "tenants": getattr(store, "tenants", lambda: 1)(),
        }
    )


if __name__ == "__main__":
    main()
