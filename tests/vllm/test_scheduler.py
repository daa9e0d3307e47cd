"""pccguard's scheduler classes on vLLM's real scheduler, driven step by step (no engine around them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from vllm.engine.arg_utils import EngineArgs
from vllm.sampling_params import SamplingParams
from vllm.utils.hashing import get_hash_fn_by_name
from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.request import Request
from vllm.v1.structured_output import StructuredOutputManager

from pccguard.adapters.vllm.runtime.plan import KEYS_ATTR, decide
from pccguard.adapters.vllm.runtime.scheduler import PccguardAsyncScheduler, PccguardScheduler
from pccguard.enforcement.tenancy.salts import is_salt, process_keys
from pccguard.errors import EnforcementError
from pccguard.evaluation.results import Verdict

BLOCK = 16


def _scheduler(cls: type, model: Path, *, keys: bool = True) -> Any:
    config = EngineArgs(model=str(model), skip_tokenizer_init=True, max_model_len=512).create_engine_config()
    config.cache_config.num_gpu_blocks = 32
    config.additional_config["pccguard"] = {"install": ["scrub_freed_kv", "tenant_cache_salt"]}
    if keys:
        setattr(config, KEYS_ATTR, process_keys())
    spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=2, head_size=16, dtype=torch.float32)
    kv = KVCacheConfig(
        num_blocks=32, kv_cache_tensors=[], kv_cache_groups=[KVCacheGroupSpec(["l0", "l1"], spec)]
    )
    return cls(
        vllm_config=config,
        kv_cache_config=kv,
        structured_output_manager=StructuredOutputManager(config),
        block_size=BLOCK,
        hash_block_size=BLOCK,
        log_stats=False,
    )


def test_salt_gate_without_keys_refuses_the_start(tiny_model: Path, plugin_config: Any) -> None:
    plugin_config("enabled: false\n")
    with pytest.raises(EnforcementError, match="no salt keys reached the engine core"):
        _scheduler(PccguardScheduler, tiny_model, keys=False)
    assert _scheduler(PccguardScheduler, tiny_model).pccguard_salt_gate is not None  # positive control


@pytest.mark.parametrize("cls", [PccguardScheduler, PccguardAsyncScheduler])
def test_freed_blocks_reach_the_zeroing_channel(cls: type, tiny_model: Path, plugin_config: Any) -> None:
    plugin_config("enabled: false\n")  # the plan is given in the configuration; no evaluation here
    sched = _scheduler(cls, tiny_model)
    fn = get_hash_fn_by_name("sha256")
    init_none_hash(fn)
    req = Request(
        "A",
        list(range(40)),
        SamplingParams(max_tokens=1, ignore_eos=True),
        None,
        cache_salt="client-chosen",
        block_hasher=get_request_block_hasher(BLOCK, fn),
    )
    sched.add_request(req)
    # Not admitted through the engine core's gate: a salt of its own, shared with nobody.
    assert is_salt(req.cache_salt) and req.cache_salt != process_keys().tenant_salt("client-chosen")
    so = sched.schedule()
    blocks = list(so.scheduled_new_reqs[0].block_ids[0])
    out = ModelRunnerOutput(req_ids=["A"], req_id_to_index={"A": 0}, sampled_token_ids=[[7]])
    sched.update_from_output(so, out)
    assert sched.has_requests(), "the engine keeps stepping until the freed blocks are zeroed"
    nxt = sched.schedule()
    zeroed = set(nxt.new_block_ids_to_zero or [])
    cached = {b.block_id for b in sched.kv_cache_manager.block_pool.blocks if b.block_hash is not None}
    assert zeroed == set(blocks) - cached and zeroed, "the partial (uncached) block is zeroed, entries stay"
    sched.update_from_output(nxt, ModelRunnerOutput(req_ids=[], req_id_to_index={}, sampled_token_ids=[]))
    assert not sched.has_requests()


def test_plugin_report_shows_enforced(tiny_model: Path, plugin_config: Any) -> None:
    from pccguard.enforcement.config import PluginConfig

    plugin_config("enabled: false\n")  # build the config untouched, then decide explicitly
    config = EngineArgs(
        model=str(tiny_model), skip_tokenizer_init=True, max_model_len=512
    ).create_engine_config()
    plan, decision = decide(
        config,
        environ={"VLLM_NO_USAGE_STATS": "1"},
        settings=PluginConfig.model_validate({"profile": "multi-tenant-baseline"}),
    )
    verdicts = {r.id: r.verdict for r in decision.report.results}
    assert verdicts["PCC-S-001"] == Verdict.ENFORCED  # paging residue: scrub_freed_kv is active
    assert verdicts["PCC-S-004"] == Verdict.ENFORCED  # shared prefix cache: tenant_cache_salt is active
    assert decision.report.deployment["plugin_active"] is True
    assert set(plan.install) >= {"scrub_freed_kv", "tenant_cache_salt", "prefix_cache_ttl"}
