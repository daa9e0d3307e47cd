"""The software enclave: a separate OS process holding the private weights.

It loads the model and the private adapters itself, checks the plan before
anything runs, generates its attestation key, ships the accelerator only what
the plan allows, and then serves requests from the (untrusted) host. Per
request it keeps a :class:`~.decoder.RequestState` and wipes it — KV cache,
masks, unblinding factors, logits — when the request ends, whether it
succeeded or failed. A lost or stalled accelerator fails the request with an
error; no partial output is returned.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

import torch

from pccguard.enclave_runtime.attestation import EnclaveIdentity, components_for, policy_digest
from pccguard.enclave_runtime.channel import Channel, ChannelClosed, ChannelTimeout
from pccguard.enclave_runtime.codec import Message, WireError
from pccguard.enclave_runtime.decoder import Decoder, RequestState
from pccguard.enclave_runtime.errors import AcceleratorLost, IntegrityError
from pccguard.enclave_runtime.facts import check_plan_against_rules
from pccguard.enclave_runtime.linear import GroupExecutor
from pccguard.enclave_runtime.model import LlamaWeights, load_weights, weights_root
from pccguard.enclave_runtime.plan import LAYER_GROUPS, PartitionPlan, PrivacySpec, check_plan
from pccguard.errors import PccguardError

#: Tokens of masks precomputed per idle refill: bounds how long a request arriving mid-refill waits.
POOL_CHUNK_TOKENS = 8

_PROJ_GROUP = {p: g for g, projs in LAYER_GROUPS.items() for p in projs} | {"lm_head": "lm_head"}


def privacy_for(weights: LlamaWeights, options: dict[str, Any]) -> PrivacySpec:
    """Mode P by default (public base, private adapters); ``private_base`` selects Mode F."""
    return PrivacySpec.for_model(
        private_base=bool(options.get("private_base", False)),
        protect_prompts=bool(options.get("protect_prompts", True)),
        deltas=frozenset((layer, _PROJ_GROUP[proj]) for layer, proj in weights.deltas),
    )


class EnclaveServer:
    """The request loop of the enclave process."""

    def __init__(self, host: Channel, accel: Channel | None, options: dict[str, Any]) -> None:
        self.host = host
        self.accel = accel
        self.options = options
        self.debug = bool(options.get("debug_inspect", False))
        weights = load_weights(options["model_dir"], options.get("adapter_dir"))
        self.plan = PartitionPlan.from_dict(options["plan"])
        self.privacy = privacy_for(weights, options)
        check_plan(
            self.plan,
            self.privacy,
            weights.spec.n_layers,
            allow_insecure=bool(options.get("allow_insecure", False)),
        )
        if not options.get("allow_insecure", False):
            check_plan_against_rules(self.plan, self.privacy, weights.spec.n_layers)
        self.identity = EnclaveIdentity(
            "software",
            components_for(
                self.plan.digest(),
                weights_root(weights.digests()),
                policy_digest(
                    private_base=self.privacy.base_private,
                    protect_prompts=self.privacy.protect_prompts,
                    allow_insecure=bool(options.get("allow_insecure", False)),
                ),
            ),
        )
        self.linear = GroupExecutor(weights, self.plan, accel, float(options.get("timeout_s", 30.0)))
        self.decoder = Decoder(weights, self.linear, frozenset(self.linear.merged))
        self.spec = weights.spec
        self.accel_device = "none"
        if accel is not None:
            self.accel_device = str(self.linear._call(Message("ping"), expect="ok").meta.get("device"))
        self.broken: str | None = None
        self.last_beat = time.monotonic()
        self.linear.on_round = self._heartbeat
        self.current: RequestState | None = None
        self.last_wiped: RequestState | None = None
        self.requests = 0
        self.pool_target = self._pool_target(int(options.get("mask_pool_bytes", 0) or 0))

    # ------------------------------------------------------------------ handlers

    def ready(self) -> Message:
        return Message(
            "ready",
            {
                "measurement": self.identity.measurement,
                "plan": self.plan.name,
                "layers": self.spec.n_layers,
                "vocab": self.spec.vocab,
                "accelerator_device": self.accel_device,
                "pid": os.getpid(),
            },
        )

    def generate(self, msg: Message) -> Message:
        if self.broken:
            return Message("error", {"code": "accelerator_lost", "message": self.broken})
        prompt = [int(t) for t in msg.tensors["prompt"].reshape(-1).tolist()]
        max_new = int(msg.meta.get("max_new", 0))
        if not prompt or max_new < 1 or len(prompt) + max_new > int(self.options.get("max_len", 8192)):
            return Message("error", {"code": "bad_request", "message": "empty prompt or bad length"})
        state = self.decoder.new_state(len(prompt) + max_new)
        self.current = state
        self.linear.secrets_sink = state.secrets_used
        started = time.perf_counter()
        try:
            self.decoder.generate(prompt, max_new, state, on_token=self._progress)
            tensors = {"tokens": torch.tensor(state.tokens, dtype=torch.int64)}
            if msg.meta.get("return_logits"):
                tensors["logits"] = torch.stack(state.logits).clone()
            reply = Message("result", {"seconds": time.perf_counter() - started}, tensors)
        except AcceleratorLost as exc:
            self.broken = exc.one_line()
            reply = Message("error", {"code": "accelerator_lost", "message": exc.one_line()})
        except IntegrityError as exc:
            self.broken = exc.one_line()
            reply = Message("error", {"code": "integrity", "message": exc.one_line()})
        except ValueError as exc:
            reply = Message("error", {"code": "bad_request", "message": str(exc)})
        finally:
            tokens = state.wipe()
            self.linear.secrets_sink = None
            self.current = None
            self.requests += 1
            if self.debug:
                self.last_wiped = state
        reply.meta["wiped_tokens"] = tokens
        return reply

    def _progress(self, done: int) -> None:
        self.last_beat = time.monotonic()
        self.host.send(Message("progress", {"tokens": done}))

    def _heartbeat(self) -> None:
        """Tell the host we are alive during a long prefill (its timeout is per message)."""
        if self.current is not None and time.monotonic() - self.last_beat > self.linear.timeout / 4:
            self.last_beat = time.monotonic()
            self.host.send(Message("progress", {"tokens": len(self.current.tokens)}))

    def inspect(self) -> Message:
        if not self.debug:
            return Message("error", {"code": "forbidden", "message": "inspection is disabled"})
        last = self.last_wiped
        return Message(
            "state",
            {
                "request_active": self.current is not None,
                "requests": self.requests,
                "last_wiped": bool(last and last.wiped),
                "last_all_zero": bool(last and last.all_zero()),
                "last_kv_elems": int(last.k.numel() + last.v.numel()) if last else 0,
                "last_secret_tensors": len(last.secrets_used) if last else 0,
                "pool_rows": {f"{k[0]}.{k[1]}": self.linear.pool.available(k) for k in self.linear.blinded},
            },
        )

    def handle(self, msg: Message) -> Message | None:
        if msg.kind == "generate":
            return self.generate(msg)
        if msg.kind == "attest":
            return Message("report", {"json": self.identity.report(str(msg.meta.get("nonce", ""))).to_json()})
        if msg.kind == "precompute":
            seconds = self.linear.precompute(int(msg.meta.get("tokens", 0)))
            return Message("ok", {"seconds": seconds})
        if msg.kind == "stats":
            return Message("stats", self.linear.stats.as_dict() | {"requests": self.requests})
        if msg.kind == "inspect":
            return self.inspect()
        if msg.kind == "flush" and self.accel is not None and not self.broken:
            self.linear._call(Message("flush"), expect="ok")
            return Message("ok")
        if msg.kind == "flush":
            return Message("ok")
        return Message("error", {"code": "unknown_kind", "message": msg.kind})

    # ------------------------------------------------------------------ idle work: the mask pool

    def _pool_target(self, budget_bytes: int) -> int:
        """Tokens of ``(r, u)`` rows the pool keeps ready within ``budget_bytes`` (0: no idle refill)."""
        per_token = sum(8 * (e.w_q.shape[0] + e.w_q.shape[1]) for e in self.linear.blinded.values())
        return budget_bytes // per_token if per_token and budget_bytes > 0 else 0

    def pool_tokens(self) -> int:
        """Tokens the pool can serve without an online mask computation (the least-stocked group)."""
        blinded = self.linear.blinded
        return min((self.linear.pool.available(k) for k in blinded), default=0)

    def refill_pool(self) -> bool:
        """Top the mask pool up by one small chunk; False when there is nothing to do.

        This is the offline phase of blinding, done while the host has nothing
        for the enclave: a request that arrives later finds its masks and their
        products ready and pays only the online cost. Chunks are small so that
        a request arriving mid-refill waits at most one chunk.
        """
        if not self.pool_target or self.broken:
            return False
        have = self.pool_tokens()
        if have >= self.pool_target:
            return False
        self.linear.precompute(min(POOL_CHUNK_TOKENS, self.pool_target - have))
        return True

    def serve(self) -> None:
        idle_work = bool(self.pool_target)
        while True:
            try:
                # With idle work pending, poll without waiting; otherwise block until the host speaks.
                msg = self.host.recv(0.0 if idle_work else None)
            except ChannelTimeout:
                idle_work = self.refill_pool()
                continue
            except (ChannelClosed, WireError):
                break
            idle_work = bool(self.pool_target)
            if msg.kind == "shutdown":
                break
            try:
                reply = self.handle(msg)
            except (KeyError, TypeError, ValueError) as exc:  # malformed host input never kills the enclave
                reply = Message("error", {"code": "bad_request", "message": type(exc).__name__})
            if reply is not None:
                self.host.send(reply)

    def close(self) -> None:
        self.linear.pool.wipe()
        if self.accel is not None:
            with contextlib.suppress(ChannelClosed):
                self.accel.send(Message("shutdown"))
            self.accel.close()


def enclave_main(
    host_conn: Connection,
    accel_conn: Connection | None,
    options: dict[str, Any],
    server_cls: type[EnclaveServer] = EnclaveServer,
) -> None:
    """Process entry point of the software enclave (``server_cls`` lets a variant add requests)."""
    torch.set_num_threads(int(options.get("threads") or 1))
    host = Channel(host_conn)
    accel = Channel(accel_conn) if accel_conn is not None else None
    try:
        server = server_cls(host, accel, options)
    except PccguardError as exc:
        host.send(Message("error", {"code": type(exc).__name__, "message": exc.one_line()}))
        return
    except Exception as exc:  # report, never hang the host
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        host.send(Message("error", {"code": "startup_failed", "message": last}))
        return
    host.send(server.ready())
    try:
        server.serve()
    finally:
        server.close()
        host.close()
