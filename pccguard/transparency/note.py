"""C2SP signed notes with Ed25519 keys, and C2SP ``tlog-checkpoint`` bodies.

A checkpoint -- the log's origin, its size and its root hash -- is published
as a signed note (c2sp.org/signed-note): the text, a blank line, then one line
per signature, ``— <key name> <base64(key id || signature)>``. Key ids are the
first four bytes of SHA-256 over the key name, a newline, the signature type
(``0x01``, Ed25519) and the public key, so a verifier picks the signature
meant for its key and ignores the others (a witness's cosignature, another
log's). Keys travel in the same formats as Go's ``sumdb/note``: the verifier key
``<name>+<hex id>+<base64(0x01 || public key)>``, published as the log's
``log.vkey``, and the signer key ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>``,
kept in a file the operator names. Ed25519 is ``cryptography``'s.

Opening a note fails (``NoteError``) unless a signature by a trusted key
verifies; a signature that claims a trusted key's name and id but does not
verify fails it too. Malformed notes, keys and checkpoints fail with a message
naming what is wrong; nothing here returns a partial result.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "
#: Bounds on what is parsed: a checkpoint is a few lines.
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100
_NAME = re.compile(r"^[^\s+]+$")


class NoteError(ValueError):
    """A note, key or checkpoint that is malformed, or that no trusted key signed."""


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519]) + public).digest()[:4]


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise NoteError("a key name must be non-empty, without spaces or '+'")
    return name


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"{what} is not base64") from None


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 key: its name, id and public key."""

    name: str
    id: bytes
    public: bytes = field(repr=False)

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """``<name>+<hex id>+<base64(0x01 || key)>``; the id must match the key."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("a verifier key is <name>+<hex id>+<base64 key>")
        name, hex_id, material = _check_name(parts[0]), parts[1], _b64(parts[2], "the verifier key")
        if len(hex_id) != 8 or not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise NoteError("a verifier key's id is 8 lowercase hex digits")
        if len(material) != 33 or material[0] != ED25519:
            raise NoteError("the verifier key is not an Ed25519 key (type 0x01, 32 bytes)")
        public = material[1:]
        if key_id(name, public) != bytes.fromhex(hex_id):
            raise NoteError("the verifier key's id does not match its name and key")
        return cls(name=name, id=bytes.fromhex(hex_id), public=public)

    def encode(self) -> str:
        return f"{self.name}+{self.id.hex()}+{base64.b64encode(bytes([ED25519]) + self.public).decode()}"

    def verifies(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


class Signer:
    """An Ed25519 signing key with its name; the key is never shown (``repr``) and leaves only as ``skey``."""

    __slots__ = ("_key", "name", "verifier")

    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        self.name = _check_name(name)
        self._key = key
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.verifier = Verifier(name=name, id=key_id(name, public), public=public)

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>``; the id must match the key."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signer key is PRIVATE+KEY+<name>+<hex id>+<base64 key>")
        material = _b64(parts[4], "the signer key")
        if len(material) != 33 or material[0] != ED25519:
            raise NoteError("the signer key is not an Ed25519 key (type 0x01, 32 bytes)")
        signer = cls(parts[2], Ed25519PrivateKey.from_private_bytes(material[1:]))
        if signer.verifier.id.hex() != parts[3]:
            raise NoteError("the signer key's id does not match its name and key")
        return signer

    def skey(self) -> str:
        seed = self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return f"PRIVATE+KEY+{self.name}+{self.verifier.id.hex()}+{base64.b64encode(bytes([ED25519]) + seed).decode()}"

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Signer({self.name!r}, <key hidden>)"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("a note's text ends with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note's text holds control characters")
    if "\n\n" in text or text.startswith("\n"):
        raise NoteError("a note's text holds an empty line")


def sign(text: str, signers: list[Signer]) -> str:
    """The signed note of ``text`` (each signer adds one line)."""
    _check_text(text)
    if not signers:
        raise NoteError("a note needs at least one signer")
    lines = []
    for signer in signers:
        blob = signer.verifier.id + signer.sign(text.encode("utf-8"))
        lines.append(f"{SIGNATURE_PREFIX}{signer.name} {base64.b64encode(blob).decode()}\n")
    return text + "\n" + "".join(lines)


@dataclass(frozen=True)
class Opened:
    text: str
    #: Names of the trusted keys whose signatures verified.
    verified: tuple[str, ...]


def open_note(note: str, trusted: list[Verifier]) -> Opened:
    """The text of ``note`` if a trusted key signed it; ``NoteError`` otherwise."""
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise NoteError("the note is larger than 1 MiB")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("the note has no signature block")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    lines = block.split("\n")[:-1]
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a note carries 1 to {MAX_SIGNATURES} signatures")
    by_key = {(v.name, v.id): v for v in trusted}
    verified: list[str] = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("a signature line starts with '— '")
        name, sep, blob_text = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not sep or not _NAME.match(name):
            raise NoteError("a signature line is '— <key name> <base64>'")
        blob = _b64(blob_text, "a signature")
        if len(blob) < 5:
            raise NoteError("a signature is shorter than its key id")
        verifier = by_key.get((name, blob[:4]))
        if verifier is None:
            continue  # another key's signature (a witness, another log): not ours to judge
        if not verifier.verifies(text.encode("utf-8"), blob[4:]):
            raise NoteError(f"the signature of {name} does not verify")
        verified.append(name)
    if not verified:
        raise NoteError("no trusted key signed the note")
    return Opened(text=text, verified=tuple(verified))


# ---------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """c2sp.org/tlog-checkpoint: the log's origin, its size and root hash, and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        if not self.origin or "\n" in self.origin or self.size < 0 or len(self.root) != 32:
            raise NoteError("a checkpoint needs an origin line, a size of at least 0 and a 32-byte root")
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint is an origin, a size and a root hash, one per line")
        origin, size, root, extensions = lines[0], lines[1], lines[2], lines[3:-1]
        if not origin:
            raise NoteError("the checkpoint has no origin")
        if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size) or int(size) >= 1 << 64:
            raise NoteError("the checkpoint's size is not a decimal number")
        digest = _b64(root, "the checkpoint's root hash")
        if len(digest) != 32:
            raise NoteError("the checkpoint's root hash is not 32 bytes")
        if any(not line for line in extensions):
            raise NoteError("the checkpoint holds an empty line")
        return cls(origin=origin, size=int(size), root=digest, extensions=tuple(extensions))
