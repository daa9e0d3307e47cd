"""C2SP signed notes and checkpoints against the published Go ``sumdb/note`` vectors, and every way to break one.

The PeterNeumann and EnochRoot keys and the signed note are those of
``golang.org/x/mod/sumdb/note`` (its documentation and tests): Ed25519 is
deterministic, so signing the same text with the same key must give the
published note byte for byte.
"""

from __future__ import annotations

import base64

import pytest

from pccguard.transparency.note import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    open_note,
    sign,
)

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
NOTE = (
    TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_signing_reproduces_the_published_note_and_keys_round_trip() -> None:
    signer = Signer.parse(PETER_SKEY)
    assert sign(TEXT, [signer]) == NOTE
    assert signer.verifier.encode() == PETER_VKEY and signer.skey() == PETER_SKEY
    assert "AYEK" not in repr(signer)  # the key is never shown
    assert Verifier.parse(PETER_VKEY) == signer.verifier


def test_the_published_note_opens_under_its_key_and_no_other() -> None:
    opened = open_note(NOTE, [Verifier.parse(PETER_VKEY)])
    assert opened.text == TEXT and opened.verified == ("PeterNeumann",)
    with pytest.raises(NoteError, match="no trusted key signed"):
        open_note(NOTE, [Verifier.parse(ENOCH_VKEY)])  # the control: a key that did not sign it


def test_a_tampered_text_or_signature_fails() -> None:
    trusted = [Verifier.parse(PETER_VKEY)]
    with pytest.raises(NoteError, match="does not verify"):
        open_note(NOTE.replace("cryptography", "cryptographY"), trusted)
    blob = base64.b64decode(NOTE.rsplit(" ", 1)[1])
    forged = (
        NOTE.rsplit(" ", 1)[0] + " " + base64.b64encode(blob[:-1] + bytes([blob[-1] ^ 1])).decode() + "\n"
    )
    with pytest.raises(NoteError, match="does not verify"):
        open_note(forged, trusted)


def test_other_keys_signatures_are_ignored_and_a_cosigned_note_opens_for_each() -> None:
    log, witness = Signer.generate("log.example"), Signer.generate("witness.example")
    note = sign("origin\n", [log, witness])
    assert open_note(note, [log.verifier]).verified == ("log.example",)
    assert open_note(note, [log.verifier, witness.verifier]).verified == ("log.example", "witness.example")


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a3+AhRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # not type 0x01
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",  # short
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(NoteError):
        Verifier.parse(vkey)


def test_malformed_signer_keys_are_refused() -> None:
    with pytest.raises(NoteError, match="id does not match"):
        Signer.parse(PETER_SKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(NoteError):
        Signer.parse("PRIVATE+KEY+PeterNeumann+c74f20a3")


@pytest.mark.parametrize(
    "note",
    [
        TEXT,  # no signatures
        TEXT + "\n",  # an empty signature block
        TEXT + "\nPeterNeumann x08go\n",  # no dash
        TEXT + "\n— PeterNeumann\n",  # no signature
        TEXT + "\n— PeterNeumann !!!!\n",  # not base64
        TEXT + "\n— PeterNeumann AAAA\n",  # shorter than a key id
        "no newline at the end",
        "line\n\n\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        "\x07bell\n\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        TEXT + "\n" + "— PeterNeumann x08go\n" * 101,
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(NoteError):
        open_note(note, [Verifier.parse(PETER_VKEY)])


def test_a_checkpoint_round_trips_and_signs() -> None:
    point = Checkpoint(origin="pccguard.example/log", size=8, root=bytes(range(32)), extensions=("ext line",))
    assert Checkpoint.parse(point.text()) == point
    signer = Signer.generate("pccguard.example/log")
    opened = open_note(sign(point.text(), [signer]), [signer.verifier])
    assert Checkpoint.parse(opened.text) == point


@pytest.mark.parametrize(
    "text",
    [
        "origin\n8\n",  # no root
        "\n8\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",  # no origin
        "origin\n08\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",  # leading zero
        "origin\n-1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "origin\n99999999999999999999\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",  # past 2^64
        "origin\n8\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n",  # 31 bytes
        "origin\n8\nnot base64!\n",
        "origin\n8\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",  # no final newline
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(text)
