"""FSDP through accelerate: 2 CPU processes under FSDP2 (gloo) make the same GRPO update as 1 process.

Runs tests/rlvr/trainers/dist_update.py (the trainer's prepare_batch + update on a fixed rollout; see there) once
in one plain process and once under torchrun with `--fsdp`: accelerate's FSDP2 (`fully_shard` per decoder layer
and at the root, parameters and gradients sharded as DTensors across the two processes), padded and padding-free.
Under FSDP every forward all-gathers weights, so both processes must run the same number of micro-batches; the
padding-free run gives them different token loads on purpose.

accelerate enables FSDP only on GPU-like devices (on a CPU host its state stays MULTI_CPU, i.e. DDP, whatever the
config says), so `dist_update.fsdp_accelerator` builds the FSDP plugin from examples/accelerate/fsdp2.yaml the way
`accelerate launch` reads it and switches the state after construction; everything after that is accelerate's
and torch's own FSDP2 code (prepare, no_sync via set_requires_gradient_sync, clip_grad_norm_ over DTensors),
which runs on CPU with gloo in torch 2.13. On GPUs `accelerate launch --config_file
examples/accelerate/fsdp2.yaml` gets the same path without the switch (docs/distributed.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlvr.metrics import read_metrics
from rlvr.trainers.runtime import accumulating
from dist_update import BUDGET, assert_same_update
from test_distributed import CONFIG, HERE, LR, _run, _torchrun, load_updates, run_updates

SPECS = ["token-mean", f"seq-mean-token-sum-norm@{BUDGET}"]  # padded, and padding-free


@pytest.fixture(scope="module")
def runs(single_updates, tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    return run_updates(single_updates, tiny_model_dir, tmp_path_factory, SPECS, "--fsdp")


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS)
def test_two_fsdp_processes_update_like_one(runs, spec):
    one, r0, r1 = load_updates(runs, spec.split("@")[0], spec)  # the reference: one process, padded
    assert r0["micro_batches"] == r1["micro_batches"]
    for k in ("reward/mean", "accuracy", "verifier_errors"):
        assert r0["metrics"][k] == pytest.approx(one["metrics"][k], rel=1e-6), k
    assert_same_update(one, r0, "FSDP rank 0")
    for name, g in r0["grads"][1].items():  # gathered from the shards: both ranks see the same full gradient
        torch.testing.assert_close(r1["grads"][1][name], g, atol=0, rtol=0)
    for name, p in one["params"].items():  # gathered from the shards after two optimizer steps
        torch.testing.assert_close(r0["params"][name], p, atol=0.05 * LR, rtol=0, msg=lambda m: f"{name}: {m}")


@pytest.mark.slow
def test_train_runs_under_fsdp(tiny_model_dir, tmp_path):
    """`rlvr train` end to end under FSDP2 on 2 processes: generation (transformers syncs the ranks' generate
    loops for FSDP modules), the reference copy, a sharded checkpoint and the gathered final model."""
    run = tmp_path / "run"
    _run(_torchrun([str(HERE / "fsdp_train.py"), "train", str(CONFIG), f"model.name_or_path={tiny_model_dir}",
                    f"run_dir={run}", "max_steps=1",
                    "grpo.num_iterations=1", "grpo.max_tokens_per_micro_batch=64", "optim.warmup_steps=0"]),
         cwd=tmp_path)  # fmt: skip
    (row,) = read_metrics(run / "metrics.jsonl")
    assert row["step"] == 1 and row["grad_norm"] > 0 and row["kl"] >= 0
    ckpt = run / "checkpoints" / "step_00000001"
    assert sorted(p.name for p in ckpt.iterdir() if p.name.startswith("random_states")) == [
        "random_states_0.pkl", "random_states_1.pkl"]  # fmt: skip
    final = AutoModelForCausalLM.from_pretrained(run / "final")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    # every layer's weights were sharded across the two processes: the saved model is gathered and trained
    for name in ["model.embed_tokens.weight", *(f"model.layers.{i}.mlp.down_proj.weight" for i in range(4))]:
        assert not torch.equal(final.get_parameter(name), base.get_parameter(name)), name


def test_accumulating_marks_only_the_last_micro_batch_as_a_step():
    """What DeepSpeed steps on (accelerate's sync_gradients) is set only for the last micro-batch, and the
    accelerate-wrapped optimizer skips a step while it is unset."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 1)
    model, opt = acc.prepare(model, torch.optim.SGD(model.parameters(), lr=1.0))
    seen = []
    for j in range(3):
        with accumulating(acc, model, last=j == 2):
            seen.append(acc.sync_gradients)
            acc.backward(model(torch.ones(1, 2)).sum())
            if j < 2:
                before = model.weight.detach().clone()
                opt.step()  # skipped: not a sync step
                assert torch.equal(model.weight, before)
    assert seen == [False, False, True] and acc.sync_gradients
