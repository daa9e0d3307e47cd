"""The untrusted accelerator backend: a separate process that multiplies what it is sent.

It receives only what the plan allows (public quantized weights, blinded field
inputs; or, in the insecure control, obfuscated weights and clear inputs) and
answers products. It runs on CUDA when available, else on the CPU. Its
:class:`~.recorder.Recorder` keeps the transcript of everything that crosses.
Exact field products use float64 limbs (see :mod:`.field`), which is exact on
both devices.
"""

from __future__ import annotations

import os
from multiprocessing.connection import Connection
from typing import Any

import torch

from pccguard.enclave_runtime import field as F
from pccguard.enclave_runtime.channel import Channel, ChannelClosed
from pccguard.enclave_runtime.codec import Message, WireError
from pccguard.enclave_runtime.recorder import Recorder


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


class Accelerator:
    """Holds offloaded weights by ``(layer, group)`` and computes products on its device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.weights: dict[tuple[int, str], tuple[str, torch.Tensor, int]] = {}

    def load(self, msg: Message) -> None:
        mode = str(msg.meta["mode"])
        w = msg.tensors["w"]
        dtype = torch.float64 if mode == "blinded" else torch.float32
        wmax = int(w.abs().max().item()) if w.numel() else 1
        self.weights[(int(msg.meta["layer"]), str(msg.meta["group"]))] = (
            mode,
            w.to(self.device, dtype),
            wmax,
        )

    def gemm(self, msg: Message) -> Message:
        mode, w, wmax = self.weights[(int(msg.meta["layer"]), str(msg.meta["group"]))]
        x = msg.tensors["x"].to(self.device)
        if mode == "blinded":
            y = F.matmul_mod(x, w, wmax).to("cpu")
            return Message("result", {}, {"y": y}, frozenset({"y"}))
        return Message("result", {}, {"y": (x.to(torch.float32) @ w).to("cpu")})


def accelerator_main(conn: Connection, options: dict[str, Any]) -> None:
    """Process entry point: serve until ``shutdown`` or until the enclave goes away."""
    # Leave a core to the enclave: spinning BLAS threads on a shared core stall the other process.
    torch.set_num_threads(int(options.get("threads") or max(1, (os.cpu_count() or 1) - 1)))
    channel = Channel(conn)
    recorder = Recorder(options.get("transcript"))
    accel = Accelerator(pick_device(str(options.get("device", "auto"))))
    try:
        while True:
            try:
                msg = channel.recv(None)
            except (ChannelClosed, WireError):
                break
            recorder.record("in", msg)
            if msg.kind == "shutdown":
                break
            if msg.kind == "load":
                accel.load(msg)
                reply = Message("ok")
            elif msg.kind == "gemm":
                reply = accel.gemm(msg)
            elif msg.kind == "flush":
                recorder.flush()
                reply = Message("ok")
            elif msg.kind == "ping":
                reply = Message("ok", {"device": str(accel.device)})
            else:
                reply = Message("error", {"code": "unknown_kind"})
            recorder.record("out", reply)
            try:
                channel.send(reply)
            except ChannelClosed:
                break
    finally:
        recorder.flush()
        channel.close()


class InProcessChannel:
    """An accelerator in the caller's process, with a recorder: for unit tests and attack demos only.

    It has the :class:`~.channel.Channel` request interface and goes through the
    same wire encoding, but there is no process boundary, so it is never used by
    :class:`~.executor.HybridExecutor`.
    """

    def __init__(self, device: str = "cpu", transcript: str | None = None) -> None:
        self.accel = Accelerator(pick_device(device))
        self.recorder = Recorder(transcript)

    def request(self, msg: Message, timeout: float | None) -> Message:
        from pccguard.enclave_runtime.codec import decode, encode

        msg = decode(encode(msg))
        self.recorder.record("in", msg)
        if msg.kind == "load":
            self.accel.load(msg)
            reply = Message("ok")
        elif msg.kind == "gemm":
            reply = self.accel.gemm(msg)
        else:
            reply = Message("ok", {"device": str(self.accel.device)})
        reply = decode(encode(reply))
        self.recorder.record("out", reply)
        return reply
