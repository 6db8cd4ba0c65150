"""Where a trace came from: the teacher's exact revision and the verifier's version, recorded in every row.

What it does: `teacher_revision(path)` names the weights that wrote a trace: a hub model's commit (from the
local HF cache the model was loaded from), else a sha256 over the files of the model directory (weights,
config, tokenizer), so two runs of "the same" local teacher that were retrained in between are told apart.
`verifier_version(name)` names the code that judged it: the package the registered verifier lives in, a
sha256 over that package's Python files, and its distribution's version, so a trace accepted by an older
math verifier can be found and re-judged (OpenThoughts' math rows show why it matters: 32,390 answers a
judge accepted were rejected by Math-Verify). What it does not: download anything, or version the task.
Torch-free.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from importlib import metadata
from pathlib import Path

from rlvr.tiny_models import resolve_model_path

_CHUNK = 1 << 20


def _sha256_files(files: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _hub_commit(name: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(name, "config.json")
    if not isinstance(hit, str):
        return None
    parts = Path(hit).parts  # .../models--org--name/snapshots/<commit>/config.json
    return parts[-2] if len(parts) >= 3 and parts[-3] == "snapshots" else None


def teacher_revision(name_or_path: str) -> str:
    """"hub:<commit>" for a hub model in the local cache, "sha256:<hex>" for a model directory, else "unknown"."""
    path = Path(resolve_model_path(name_or_path)).expanduser()
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
        return "sha256:" + _sha256_files(files, path)
    commit = _hub_commit(name_or_path)
    return f"hub:{commit}" if commit else "unknown"


def verifier_version(name: str) -> str:
    """"<package>@<sha256 of its .py files, 12 hex> (<distribution> <version>)" for the verifier `name`."""
    from verifiers.base import VERIFIERS

    obj = VERIFIERS.get(name)
    module = inspect.getmodule(obj)
    top = (module.__name__ if module else getattr(obj, "__module__", "?")).split(".")[0]
    pkg = sys.modules.get(top)
    where = Path(getattr(pkg, "__file__", "") or "")
    if where.name == "__init__.py":
        root = where.parent
        digest = _sha256_files(sorted(root.rglob("*.py")), root)[:12]
    elif where.is_file():
        digest = _sha256_files([where], where.parent)[:12]
    else:
        digest = "unknown"
    dists = metadata.packages_distributions().get(top, [])
    dist = f" ({dists[0]} {metadata.version(dists[0])})" if dists else ""
    return f"{top}@{digest}{dist}"
