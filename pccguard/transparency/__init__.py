"""Verifiable transparency: the Merkle tree of pccguard's transparency log and its proofs."""
