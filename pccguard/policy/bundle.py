"""Write the rulebook as an OPA bundle directory for a central OPA server.

``opa run --server --bundle DIR`` (or a bundle service) serves it; pccguard then
queries ``data.pcc.decision`` over the REST API. The manifest's revision is a
digest of the modules, so a server running a different rulebook is visible.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from pccguard.errors import InputError
from pccguard.policy.rulebook import Rulebook


def bundle_revision(rulebook: Rulebook) -> str:
    digest = hashlib.sha256()
    for name, source in sorted(rulebook.modules(), key=lambda m: Path(m[0]).name + m[1]):
        digest.update(Path(name).name.encode() + b"\0" + source.encode() + b"\0")
    return digest.hexdigest()[:16]


def write_bundle(rulebook: Rulebook, out: Path) -> list[Path]:
    """Write ``.manifest``, ``data.json`` and every module under ``out`` (which must be empty or absent)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError("bundle directory must be empty or absent", where=str(out))
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    written = []
    try:
        for item in [*rulebook.library, *rulebook.rule_files]:
            relative = "lib" if item.package.startswith("pcc.lib") or item.package == "pcc" else "rules"
            target = staging / relative / item.path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                target = target.with_name(f"{item.package.replace('.', '_')}.rego")
            target.write_text(item.source, encoding="utf-8")
            written.append(out / target.relative_to(staging))
        manifest = {"revision": bundle_revision(rulebook), "roots": ["pcc"], "rego_version": 1}
        (staging / ".manifest").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        (staging / "data.json").write_text("{}\n")
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out / ".manifest", out / "data.json", *written]
