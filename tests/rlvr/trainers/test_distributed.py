"""Scale out: 2 CPU processes (torchrun, gloo) make the same GRPO update as 1 process on the same global batch,
and `rlvr train` runs end to end under torchrun (one metrics writer, checkpoint and final model saved).

The update comparison runs tests/rlvr/trainers/dist_update.py once with plain python (world 1, all 4 prompt
groups; the `single_updates` fixture of conftest.py, shared with the padding-free and FSDP tests) and once under torchrun (world 2, groups split `[rank::2]` as `collect` splits them), for every
loss_agg_mode, and compares what the optimizer stepped on. The gradients are the tight check: AdamW's first
steps are ~lr * sign(grad), so a gradient scaled by 2 (e.g. a lost `* num_processes` or a per-process
denominator) moves the parameters almost as a correct one would, and float round-off in a near-zero gradient
can move a parameter by up to lr; the parameters are compared at a small fraction of lr.
torchrun, not `accelerate launch`: on a host without a GPU and without an accelerate config file,
`accelerate launch --num_processes 2` (with or without --cpu) starts a single process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlvr.losses import LOSS_AGG_MODES
from rlvr.metrics import read_metrics

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "dist_update.py"
CONFIG = HERE.parents[2] / "configs" / "smoke_grpo.yaml"
LR = 1e-3  # dist_update.config's optim.lr
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], cwd: Path) -> None:
    """Run `cmd` in its own process group; on timeout or failure kill the whole group (torchrun's workers too)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None or proc.returncode != 0:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-6000:]}"


def _torchrun(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port())] + args  # fmt: skip


def run_updates(single: Path, model_dir: Path, tmp_path_factory, dist: list[str], *flags: str) -> tuple[Path, Path]:
    """dist_update.py over the specs `dist` under torchrun (2 processes, `flags` such as --fsdp first), next to
    the one-process outputs in `single` (the `single_updates` fixture); the two output directories."""
    two = tmp_path_factory.mktemp("dist")
    _run(_torchrun([str(SCRIPT), *flags, str(model_dir), str(two), *dist]), cwd=two)
    return single, two


def load_updates(runs: tuple[Path, Path], single: str, dist: str) -> tuple[dict, dict, dict]:
    """The saved outputs of spec `single` in one process and of spec `dist` on ranks 0 and 1."""
    one = torch.load(runs[0] / f"{single}.rank0.pt")
    r0, r1 = (torch.load(runs[1] / f"{dist}.rank{r}.pt") for r in (0, 1))
    assert (one["world"], r0["world"], r1["world"]) == (1, 2, 2)
    return one, r0, r1


@pytest.fixture(scope="module")
def update_runs(single_updates, tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    return run_updates(single_updates, tiny_model_dir, tmp_path_factory, list(LOSS_AGG_MODES))


@pytest.mark.slow
@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_two_processes_update_like_one(update_runs, mode):
    one, r0, r1 = load_updates(update_runs, mode, mode)
    assert one["prompts"] == ["p0", "p1", "p2", "p3"] and r0["prompts"] == ["p0", "p2"] and r1["prompts"] == ["p1", "p3"]

    # advantages over the gathered rewards: each rank's rows are the single run's rows of its prompts
    adv = one["advantages"].view(4, -1)
    torch.testing.assert_close(r0["advantages"].view(2, -1), adv[[0, 2]], rtol=0, atol=1e-6)
    torch.testing.assert_close(r1["advantages"].view(2, -1), adv[[1, 3]], rtol=0, atol=1e-6)
    assert adv[1].abs().max() == 0 and adv.abs().max() > 0.5  # zero-variance group; the others move
    for k in ("reward/mean", "reward/std", "accuracy", "verifier_errors"):
        assert r0["metrics"][k] == pytest.approx(one["metrics"][k], rel=1e-6), k
    assert r0["metrics"]["verifier_errors"] == 1.0
    assert r0["metrics"]["grad_norm"] == pytest.approx(one["metrics"]["grad_norm"], rel=1e-5)

    # num_iterations=2: step 0 from identical weights (tight), step 1 off-policy after one AdamW step
    assert len(one["grads"]) == len(r0["grads"]) == 2
    for step, (atol, rtol) in enumerate([(1e-6, 1e-5), (1e-5, 1e-4)]):
        for name, g in one["grads"][step].items():
            assert g.abs().max() > 0, f"step {step}: {name} got no gradient"
            torch.testing.assert_close(r0["grads"][step][name], g, atol=atol, rtol=rtol, msg=lambda m: f"step {step} {name}: {m}")
            torch.testing.assert_close(r1["grads"][step][name], r0["grads"][step][name], atol=0, rtol=0)
    for name, p in one["params"].items():
        torch.testing.assert_close(r0["params"][name], p, atol=0.05 * LR, rtol=0, msg=lambda m: f"{name}: {m}")
        torch.testing.assert_close(r1["params"][name], r0["params"][name], atol=0, rtol=0)  # DDP keeps ranks equal


@pytest.mark.slow
def test_train_runs_under_torchrun(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    _run(_torchrun(["-m", "rlvr.cli", "train", str(CONFIG), f"model.name_or_path={tiny_model_dir}", f"run_dir={run}",
                    "max_steps=1", "grpo.num_iterations=1"]), cwd=tmp_path)  # fmt: skip
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1], "metrics must be written once per step, by rank 0 only"
    ckpt = run / "checkpoints" / "step_00000001"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["step"] == 1 and state["data_position"] == 4  # both ranks took the same 4 prompts, 2 each
    rng_files = sorted(p.name for p in ckpt.iterdir() if p.name.startswith("random_states"))
    assert rng_files == ["random_states_0.pkl", "random_states_1.pkl"], "accelerate saw one process, not two"
    assert (run / "final" / "config.json").is_file() and (run / "final" / "model.safetensors").is_file()
