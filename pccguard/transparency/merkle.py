"""RFC 6962 Merkle tree hashing, inclusion and consistency proofs (RFC 9162 section 2.1).

The transparency log is an append-only list of entries; a checkpoint signs its
size and root hash. A client holding a checkpoint checks two things against
it: that an entry is in the tree (an inclusion proof) and that a later tree
extends the one it saw before (a consistency proof), so a log cannot show two
clients different histories or rewrite an old one unnoticed.

Hashing is RFC 6962's: SHA-256 over ``0x00 || entry`` for a leaf and over
``0x01 || left || right`` for a node, the split at the largest power of two
below the size. Verification follows RFC 9162's algorithms step for step and
the edge rules of the reference implementation (transparency-dev/merkle), whose
published vectors the tests run: a proof of the wrong length, an index past the
size, a hash that is not 32 bytes, a consistency proof from an empty tree all
fail. Every failure raises :class:`ProofError`; nothing here returns False for
a forged proof, so a caller cannot forget to look.

Proof generation here works over the list of leaf hashes (the log's tiles
supply them); it is linear in the tree size, verification is logarithmic.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
#: The root of the empty tree: SHA-256 of nothing.
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not prove what it claims, or arguments no proof could satisfy."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly less than ``n`` (``n`` > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes (not entries: hash them with :func:`leaf_hash`)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while (
        len(level) > 1
    ):  # bottom-up: pairs combine, an odd last node rises unchanged (same tree as RFC 6962)
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


#: MTH(D[a:b]) of a tree, however the caller stores it: ``range_hash(a, b)``.
RangeHash = Callable[[int, int], bytes]


def perfect_ranges(a: int, b: int) -> list[tuple[int, int]]:
    """[a, b) as the perfect subtrees it is made of, left to right (sizes strictly decreasing for aligned a)."""
    out = []
    while a < b:
        size = 1
        while a % (size * 2) == 0 and a + size * 2 <= b:
            size *= 2
        out.append((a, a + size))
        a += size
    return out


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]): the audit path of leaf ``index`` in the tree of ``leaves``."""
    return inclusion_path(index, len(leaves), lambda a, b: root(leaves[a:b]))


def inclusion_path(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """PATH(index, D[size]) with subtree hashes from ``range_hash``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:  # RFC 6962 2.1.1, from the root down; the path is read leaf-up
        k = _split(hi - lo)
        if index < lo + k:
            path.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k))
            lo += k
    return path[::-1]


def consistency_proof(size1: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(size1, D[n]): that the tree of the first ``size1`` leaves is a prefix of the tree of ``leaves``."""
    return consistency_path(size1, len(leaves), lambda a, b: root(leaves[a:b]))


def consistency_path(size1: int, size2: int, range_hash: RangeHash) -> list[bytes]:
    """PROOF(size1, D[size2]) with subtree hashes from ``range_hash``."""
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof from size {size1} to size {size2}")
    path: list[bytes] = []
    lo, hi, m, whole = 0, size2, size1, True
    while True:  # RFC 6962 2.1.2 SUBPROOF, from the root down; the proof is read bottom-up
        if m == hi - lo:
            if not whole:
                path.append(range_hash(lo, hi))
            break
        k = _split(hi - lo)
        if m <= k:
            path.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    return path[::-1]


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not a {HASH_SIZE}-byte hash")


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes) -> None:
    """RFC 9162 2.1.3.2: leaf hash ``leaf`` is entry ``index`` of the tree of ``size`` with ``root_hash``."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not below the tree size {size}")
    _check_hash(leaf, "the leaf hash")
    _check_hash(root_hash, "the root hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the path to the root")
    if not _equal(r, root_hash):
        raise ProofError("the inclusion proof leads to another root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """RFC 9162 2.1.4.2: the tree of ``size2`` with ``root2`` extends the tree of ``size1`` with ``root1``."""
    _check_hash(root1, "the first root")
    _check_hash(root2, "the second root")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
    if size1 < 0 or size2 < size1:
        raise ProofError(f"size {size2} cannot extend size {size1}")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if size1 == size2:
        if proof:
            raise ProofError("trees of one size take an empty consistency proof")
        if not _equal(root1, root2):
            raise ProofError("two trees of one size with different roots: the log forked")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # an exact power of two: the first tree is a subtree of the second
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the path to the root")
    if not _equal(fr, root1):
        raise ProofError("the consistency proof does not lead to the first root")
    if not _equal(sr, root2):
        raise ProofError("the consistency proof does not lead to the second root")
