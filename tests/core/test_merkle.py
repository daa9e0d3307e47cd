"""RFC 6962 hashing and proofs against the published vectors (``tests/data/rfc6962``), and every tree up to 33.

Each vector file is a case from the reference implementation's test data: the
verifiers must accept every valid one and refuse (``ProofError``) every mutated
one; proof generation must reproduce every valid proof of the classic
8-leaf Certificate Transparency tree.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from pccguard.transparency.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[1] / "data" / "rfc6962"
#: The entries of the Certificate Transparency reference tree (RFC 6962 test data).
ENTRIES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
LEAVES = [leaf_hash(e) for e in ENTRIES]
ROOT_8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def _cases(kind: str) -> list[tuple[str, dict[str, Any]]]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert len(files) >= 90, f"the {kind} vectors are missing"
    return [(str(f.relative_to(VECTORS)), json.loads(f.read_text(encoding="utf-8"))) for f in files]


def _b(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(case: dict[str, Any]) -> list[bytes]:
    return [_b(p) for p in case.get("proof") or []]


def test_the_reference_tree_has_its_published_roots() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert LEAVES[0].hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert root(LEAVES).hex() == ROOT_8


@pytest.mark.parametrize(("name", "case"), _cases("inclusion"), ids=lambda v: v if isinstance(v, str) else "")
def test_inclusion_vectors(name: str, case: dict[str, Any]) -> None:
    args = (case["leafIdx"], case["treeSize"], _b(case["leafHash"]), _proof(case), _b(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
        return
    verify_inclusion(*args)
    leaves = LEAVES[: case["treeSize"]]
    if len(leaves) == case["treeSize"] and _b(case["leafHash"]) == leaves[case["leafIdx"]]:
        assert inclusion_proof(case["leafIdx"], leaves) == _proof(case)  # generation reproduces it


@pytest.mark.parametrize(
    ("name", "case"), _cases("consistency"), ids=lambda v: v if isinstance(v, str) else ""
)
def test_consistency_vectors(name: str, case: dict[str, Any]) -> None:
    args = (case["size1"], case["size2"], _proof(case), _b(case["root1"]), _b(case["root2"]))
    if not case["wantErr"] and any(len(_b(case[r])) != 32 for r in ("root1", "root2")):
        # Stricter than the reference, on purpose: it accepts any bytes as roots of equal sizes; a root that
        # is not a 32-byte hash is refused here, whatever the sizes.
        with pytest.raises(ProofError, match="is not a 32-byte hash"):
            verify_consistency(*args)
        return
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
        return
    verify_consistency(*args)
    if case["size2"] <= len(LEAVES) and _b(case["root2"]) == root(LEAVES[: case["size2"]]):
        assert root(LEAVES[: case["size1"]]) == _b(case["root1"])
        if case["size1"] < case["size2"]:
            assert consistency_proof(case["size1"], LEAVES[: case["size2"]]) == _proof(case)


def _flip(proof: list[bytes], i: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ 1]) + out[i][1:]
    return out


def test_every_proof_of_every_small_tree_verifies_and_any_flipped_bit_fails() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(33)]
    for n in range(1, 34):
        tree, top = leaves[:n], root(leaves[:n])
        for i in range(n):
            proof = inclusion_proof(i, tree)
            verify_inclusion(i, n, tree[i], proof, top)
            for j in range(len(proof)):
                with pytest.raises(ProofError):
                    verify_inclusion(i, n, tree[i], _flip(proof, j), top)
        for m in range(1, n):
            proof = consistency_proof(m, tree)
            verify_consistency(m, n, proof, root(tree[:m]), top)
            for j in range(len(proof)):
                with pytest.raises(ProofError):
                    verify_consistency(m, n, _flip(proof, j), root(tree[:m]), top)


def test_a_fork_and_a_rollback_are_refused() -> None:
    tree = LEAVES
    other = [*LEAVES[:7], leaf_hash(b"another entry")]
    with pytest.raises(ProofError, match="forked"):
        verify_consistency(8, 8, [], root(tree), root(other))  # two checkpoints of one size, two roots
    with pytest.raises(ProofError, match="cannot extend"):
        verify_consistency(8, 4, [], root(tree), root(tree[:4]))  # an older tree offered as newer
    with pytest.raises(ProofError):
        verify_consistency(4, 8, consistency_proof(4, tree), root(tree[:4]), root(other))


@pytest.mark.parametrize(("index", "size"), [(-1, 8), (8, 8), (0, 0)])
def test_proofs_outside_the_tree_are_refused(index: int, size: int) -> None:
    with pytest.raises(ProofError):
        inclusion_proof(index, LEAVES[:size])
    with pytest.raises(ProofError):
        consistency_proof(size + 1, LEAVES[:size])
