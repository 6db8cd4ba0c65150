"""The example plugin package: after `pip install`, `get_verifier` finds it by its entry point."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rlvr-plugin-example"

CHECK = r"""
from rlvr.types import Sample
from verifiers import get_verifier, list_verifiers
from verifiers.pool import VerifierPool

s = Sample(id="0", prompt="", reference="42")
assert "exact_boxed" in list_verifiers()
assert get_verifier("exact_boxed")("so \\boxed{4 2}", s).correct
assert not get_verifier("exact_boxed", strip_spaces=False)("so \\boxed{4 2}", s).correct
# named in a config: a composition spec, and through the worker pool (a separate process)
spec = {"components": [{"name": "exact_boxed", "weight": 1.0}, {"name": "math", "weight": 1.0}]}
assert get_verifier("weighted", **spec)("\\boxed{42}", s).score == 2.0
with VerifierPool(num_workers=1) as pool:
    assert pool.verify_batch("exact_boxed", {}, ["\\boxed{42}"], [s])[0].correct
print("plugin ok")
"""


def test_example_plugin_installs_and_registers(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(src)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), *sys.path]))
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "plugin ok" in out.stdout

