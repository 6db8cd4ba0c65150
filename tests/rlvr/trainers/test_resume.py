"""A GRPO run killed with SIGKILL and resumed ends exactly where an uninterrupted run ends (with a KL term, so
the reference must still be the initial policy after the resume)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlvr.metrics import read_metrics

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "smoke_grpo.yaml"


def _cmd(model_dir, run_dir):
    return [sys.executable, "-m", "rlvr.cli", "train", str(CONFIG), f"model.name_or_path={model_dir}",
            f"run_dir={run_dir}", "max_steps=4", "save_every=1", "keep_last=5", "grpo.num_iterations=1",
            "grpo.kl_coef=0.05"]  # KL to the reference: a resume must keep the initial policy as it


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tiny_model_dir, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cmd(tiny_model_dir, full), check=True, env=env, capture_output=True)

    proc = subprocess.Popen(_cmd(tiny_model_dir, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "step_00000002" / "trainer_state.json").exists():
        assert proc.poll() is None, "run ended before its second checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final").exists()

    out = subprocess.run(_cmd(tiny_model_dir, killed), check=True, env=env, capture_output=True, text=True)
    assert "resumed from" in out.stderr
    steps = [r["step"] for r in read_metrics(killed / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4]  # no step lost, none logged twice
    a = load_file(full / "final" / "model.safetensors")
    b = load_file(killed / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    ra, rb = read_metrics(full / "metrics.jsonl"), read_metrics(killed / "metrics.jsonl")
    assert [r["reward/mean"] for r in ra] == [r["reward/mean"] for r in rb]
