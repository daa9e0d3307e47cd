"""Scenario: does the real ``lpm`` queue order depend on another tenant's cached prompt?

Tenant A's prompt sits in the real radix tree. Tenant B queues three probes in
arrival order: no match, a 2-token prefix guess, and the correct 5-token guess.
SGLang's real ``SchedulePolicy("lpm")`` orders them by prefix match, so the
order reveals which guess matches A's prompt. With the plugin, requests carry
tenant salts (as set at ingress) and the policy is cache-agnostic.
"""

from __future__ import annotations

from array import array

import torch
from _common import args, install_plugin, publish, report, server_args


def main() -> None:
    model, plugin = args()
    sa = server_args(model, "--schedule-policy", "lpm")
    enforcement = install_plugin(sa) if plugin else None
    publish(sa)
    from sglang.srt.managers.schedule_batch import Req
    from sglang.srt.managers.schedule_policy import SchedulePolicy
    from sglang.srt.mem_cache.allocator import TokenToKVPoolAllocator
    from sglang.srt.mem_cache.base_prefix_cache import InsertParams
    from sglang.srt.mem_cache.cache_init_params import CacheInitParams
    from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool, ReqToTokenPool
    from sglang.srt.mem_cache.radix_cache import RadixCache, RadixKey
    from sglang.srt.sampling.sampling_params import SamplingParams

    from pccguard.adapters.sglang.runtime.salt import tenant_salt

    def salt(tenant: str) -> str | None:
        return tenant_salt(enforcement, tenant) if enforcement else None

    kv = MHATokenToKVPool(
        size=64,
        page_size=1,
        dtype=torch.float32,
        head_num=1,
        head_dim=2,
        layer_num=1,
        device="cpu",
        enable_memory_saver=False,
        enable_alt_stream=False,
    )
    alloc = TokenToKVPoolAllocator(64, torch.float32, "cpu", kv, need_sort=False)
    params = CacheInitParams(
        disable=False,
        req_to_token_pool=ReqToTokenPool(8, 64, "cpu", False),
        token_to_kv_pool_allocator=alloc,
        page_size=1,
    )
    tree = RadixCache(params)
    secret = [11, 12, 501, 502, 503, 504, 505]
    tree.insert(
        InsertParams(key=RadixKey(array("q", secret), cache_salt=salt("A")), value=alloc.alloc(len(secret)))
    )

    probes = {
        "B3_none": [900, 901, 902, 903, 904, 905, 906],
        "B1_partial": [11, 12, 777, 778, 779, 780, 781],
        "B2_correct": [11, 12, 501, 502, 503, 990, 991],
    }
    queue = []
    for rid, ids in probes.items():
        req = Req(rid, "", array("q", ids), SamplingParams(max_new_tokens=1), cache_salt=salt("B"))
        queue.append(req)
    policy = SchedulePolicy("lpm", tree, False, False, False)
    policy.calc_priority(queue)
    report(
        {
            "policy": getattr(policy.policy, "value", str(policy.policy)),
            "order": [r.rid for r in queue],
            "prefix_lens": {r.rid: int(getattr(r, "prefix_len", 0) or 0) for r in queue},
        }
    )


if __name__ == "__main__":
    main()
