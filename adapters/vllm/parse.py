"""Parse ``vllm serve`` arguments with vLLM's own parser and resolve them as the engine would.

Using vLLM's parser (not a copy of its flag list) keeps the facts honest when
flags change between releases. Resolution (``create_engine_config``) is what
the engine would actually run; where the platform of the checking machine
rejects an option (sleep mode and some speculative methods are CUDA-only), the
option is dropped for resolution and its raw intent is kept, so a CPU-only CI
can still check a GPU deployment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pccguard.errors import InputError
from pccguard.facts.arguments import engine_error, first_line, parse_engine_args

#: How errors name the arguments they are about.
WHAT = "vllm serve arguments"


@dataclass
class Parsed:
    """vLLM's view of one ``vllm serve`` command line."""

    args: Any  # argparse.Namespace from vLLM's serve parser
    engine_args: Any  # vllm.engine.arg_utils.AsyncEngineArgs (raw intent)
    config: Any | None  # vllm.config.VllmConfig, resolved; None when it could not be resolved
    explicit: dict[str, str]  # dest -> the option string the user typed
    options: dict[str, str]  # dest -> the primary option string
    dropped: list[str] = field(default_factory=list)  # dests dropped for resolution on this platform
    resolve_error: str | None = None


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """vLLM logs to stdout; keep stdout clean for ``--format json`` by sending everything to stderr."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real file descriptor (embedded interpreters)
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def prepare_process_environment() -> None:
    """Environment vLLM needs to import and resolve on a machine without an accelerator.

    Only applied before vLLM is first imported in this process (the CLI path),
    so a serving process keeps its own logging and platform settings.
    """
    if "vllm" in sys.modules:
        return
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    if "VLLM_TARGET_DEVICE" not in os.environ:
        try:
            import torch

            has_cuda = bool(torch.cuda.is_available())
        except Exception:
            has_cuda = False
        if not has_cuda:
            os.environ["VLLM_TARGET_DEVICE"] = "cpu"


def _option_maps(parser: Any, argv: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    explicit: dict[str, str] = {}
    options: dict[str, str] = {}
    typed = {arg.split("=", 1)[0] for arg in argv if arg.startswith("-")}
    for action in parser._actions:
        if not action.option_strings:
            continue
        longs = [o for o in action.option_strings if o.startswith("--")]
        options.setdefault(action.dest, (longs or action.option_strings)[0])
        for option in action.option_strings:
            if option in typed:
                explicit[action.dest] = option
    return explicit, options


def _parse(argv: list[str]) -> tuple[Any, Any, dict[str, str], dict[str, str]]:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve", exit_on_error=False))
    args = parse_engine_args(parser, argv, WHAT)
    if getattr(args, "model_tag", None):
        args.model = args.model_tag
    try:
        engine_args = AsyncEngineArgs.from_cli_args(args)
    except Exception as exc:
        raise engine_error(WHAT, exc) from None
    explicit, options = _option_maps(parser, argv)
    return args, engine_args, explicit, options


def _sanitized(engine_args: Any, tier: int) -> tuple[Any, list[str]]:
    """Drop options the checking machine cannot resolve; their raw intent stays in ``engine_args``.

    Tier 1: CUDA-only options (sleep mode, speculative decoding that needs a draft
    model or an optional package). Tier 2 also: KV connectors whose optional
    package (LMCache, NIXL, ...) is not installed here.
    """
    changes: dict[str, Any] = {}
    if getattr(engine_args, "enable_sleep_mode", False):
        changes["enable_sleep_mode"] = False
    if getattr(engine_args, "speculative_config", None) or getattr(engine_args, "spec_method", None):
        changes["speculative_config"] = None
        for name in ("spec_method", "spec_model", "spec_tokens"):
            if hasattr(engine_args, name):
                changes[name] = None
    if tier >= 2:
        if getattr(engine_args, "kv_transfer_config", None) is not None:
            changes["kv_transfer_config"] = None
        if getattr(engine_args, "kv_offloading_size", None):
            changes["kv_offloading_size"] = None
    return dataclasses.replace(engine_args, **changes), sorted(changes)


def parse_serve_args(argv: list[str], environ: Mapping[str, str] | None = None) -> Parsed:
    """Parse and resolve; raise ``InputError`` (one line) for arguments vLLM rejects."""
    del environ  # the deployment's environment is read by the facts mapping, not by vLLM here
    prepare_process_environment()
    with stdout_to_stderr():
        args, engine_args, explicit, options = _parse(argv)
        try:
            config = dataclasses.replace(engine_args).create_engine_config()
            return Parsed(args, engine_args, config, explicit, options)
        except Exception as exc:
            first_error = first_line(exc)
            missing_package = isinstance(exc, ImportError)
        tried: list[str] = []
        for tier in (1, 2) if missing_package else (1,):
            sanitized, dropped = _sanitized(engine_args, tier)
            if not dropped or dropped == tried:
                continue
            tried = dropped
            try:
                config = sanitized.create_engine_config()
                return Parsed(args, engine_args, config, explicit, options, dropped, first_error)
            except Exception:
                continue
    raise InputError(f"vllm could not resolve the engine configuration: {first_error}")
