"""A vLLM ``Executor`` with one worker object living in the engine-core process.

vLLM's own executors start worker processes and talk to them over queues; an
executor whose model runs somewhere vLLM does not manage (pccguard's enclave,
or a test double) needs none of that. Subclasses build the worker in
:meth:`make_worker`; ``collective_rpc`` calls the worker's method of that name
(or a callable on the worker), and RPCs listed in :attr:`no_ops` return None.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from vllm.v1.executor.abstract import Executor


def done(value: Any) -> Future[Any]:
    """A future that already holds ``value`` (vLLM's ``non_block`` calls expect one)."""
    future: Future[Any] = Future()
    future.set_result(value)
    return future


class InProcessWorkerExecutor(Executor):  # type: ignore[misc]  # vLLM is untyped in the type check
    """One worker, called directly; no device processes, no pipeline parallelism, no Ray."""

    uses_ray = False
    supports_pp = False
    #: RPCs the engine core may send that have nothing to do for this worker.
    no_ops: frozenset[str] = frozenset()
    worker: Any

    def make_worker(self) -> Any:
        raise NotImplementedError

    def _init_executor(self) -> None:
        self.worker = self.make_worker()

    def collective_rpc(
        self,
        method: Any,
        timeout: float | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        non_block: bool = False,
        **_: Any,
    ) -> Any:
        if callable(method):
            result = method(self.worker, *args, **(kwargs or {}))
        elif hasattr(self.worker, method):
            result = getattr(self.worker, method)(*args, **(kwargs or {}))
        elif method in self.no_ops:
            result = None
        else:
            raise NotImplementedError(f"{type(self).__name__} does not implement {method!r}")
        return done([result]) if non_block else [result]

    def execute_model(self, scheduler_output: Any, non_block: bool = False) -> Any:
        out = self.worker.execute_model(scheduler_output)
        return done(out) if non_block else out

    def sample_tokens(self, grammar_output: Any, non_block: bool = False) -> Any:
        """The worker's ``sample_tokens`` where it defers sampling; otherwise ``execute_model`` already sampled."""
        sample = getattr(self.worker, "sample_tokens", None)
        out = sample(grammar_output) if sample is not None else None
        return done(out) if non_block else out

    def take_draft_token_ids(self) -> Any:
        return None

    def check_health(self) -> None:
        return None

    def compile_or_warm_up_model(self) -> None:
        return None

    def shutdown(self) -> None:
        close = getattr(getattr(self, "worker", None), "close", None)
        if close is not None:
            close()
