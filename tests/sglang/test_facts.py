"""SGLang facts through the shared builder: values SGLang would reject are refused, never read as "none"."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch  # noqa: F401  (before regopy: see pccguard.adapters.sglang.facts)

from pccguard.adapters.sglang.facts import PCCGUARD_STORAGE_CLASS, collect_facts, parse_server_args
from pccguard.errors import InputError
from pccguard.facts.model import DeploymentFacts

OURS = json.dumps(
    {"backend_name": "p", "module_path": PCCGUARD_STORAGE_CLASS, "class_name": "EncryptedHiCacheStorage"}
)
HICACHE = ["--enable-hierarchical-cache", "--hicache-storage-backend", "dynamic"]


def _facts(model: Path, *args: str) -> DeploymentFacts:
    return collect_facts(["--model-path", str(model), *args], dict(os.environ))


def test_kv_events_endpoint_is_sglangs_own_default_when_not_given(tiny_model: Path) -> None:
    """``{"publisher": "zmq"}`` binds SGLang's default ``tcp://*:5557``: every interface, not "none"."""
    events = _facts(tiny_model, "--kv-events-config", '{"publisher": "zmq"}').observability.kv_events
    assert events.enabled is True and events.endpoint == "tcp://*:5557"
    given = _facts(tiny_model, "--kv-events-config", '{"publisher": "zmq", "endpoint": "tcp://127.0.0.1:1"}')
    assert given.observability.kv_events.endpoint == "tcp://127.0.0.1:1"  # control: a given one is read
    null = _facts(tiny_model, "--kv-events-config", '{"publisher": "null"}')
    assert null.observability.kv_events.endpoint is None  # the null publisher sends nothing anywhere


@pytest.mark.parametrize("value", ["{not json", '{"publisher": "zmq", "hwm": "lots"}', "[]"])
def test_an_unreadable_kv_events_config_is_refused(tiny_model: Path, value: str) -> None:
    with pytest.raises(InputError, match="--kv-events-config rejected") as refused:
        _facts(tiny_model, "--kv-events-config", value)
    assert refused.value.exit_code == 2 and "\n" not in str(refused.value)


def test_an_unreadable_hicache_extra_config_is_refused(tiny_model: Path) -> None:
    with pytest.raises(InputError, match="extra-config is not valid JSON"):
        _facts(tiny_model, *HICACHE, "--hicache-storage-backend-extra-config", "{not json")
    offload = _facts(tiny_model, *HICACHE, "--hicache-storage-backend-extra-config", OURS)
    assert offload.optimizations.disk_offloading.enabled is True  # control: readable config is read


def test_pccguard_backend_is_a_declared_mitigation_not_an_engine_fact(tiny_model: Path) -> None:
    ours = _facts(tiny_model, *HICACHE, "--hicache-storage-backend-extra-config", OURS)
    assert ours.optimizations.disk_offloading.encrypted is False
    assert ours.runtime.mitigations_active == ["encrypt_offload"] and ours.runtime.plugin_active is False
    assert ours.provenance["runtime.mitigations_active"].name == "--hicache-storage-backend-extra-config"
    plain = _facts(tiny_model, "--enable-hierarchical-cache", "--hicache-storage-backend", "file")
    assert plain.runtime.mitigations_active == []  # control: SGLang's own backend names no mitigation


def test_bad_arguments_are_one_input_error_line(tiny_model: Path) -> None:
    for argv, expected in (
        (["--no-such-flag"], "unrecognized arguments"),
        (["--tp-size", "two"], "invalid int value"),
        (["--help"], "unrecognized arguments: --help"),  # no usage dump either
    ):
        with pytest.raises(InputError, match=expected) as refused:
            parse_server_args(["--model-path", str(tiny_model), *argv])
        assert str(refused.value).startswith("sglang launch_server arguments")


def test_every_fact_has_provenance_and_values_print_one_way(tiny_model: Path) -> None:
    import sglang

    facts = _facts(tiny_model, "--api-key", "sk-not-shown", "--enable-metrics")
    assert facts.deployment.engine_version == sglang.__version__
    assert facts.provenance["deployment.engine_version"].kind == "probe"
    assert facts.provenance["api.auth_required"].value == "<redacted>"
    assert facts.provenance["observability.metrics.enabled"].value == "true"
    assert "sk-not-shown" not in facts.model_dump_json()
