"""FSDP through accelerate: 2 CPU processes under FSDP2 (gloo) make the same GRPO update as 1 process.

Runs tests/rlvr/trainers/dist_update.py (the trainer's prepare_batch + update on a fixed rollout; see there) once
in one plain process and once under torchrun with `--fsdp`: accelerate's FSDP2 (`fully_shard` per decoder layer
and at the root, parameters and gradients sharded as DTensors across the two processes), padded and padding-free.
Under FSDP every forward all-gathers weights, so both processes must run the same number of micro-batches; the
padding-free run gives them different token loads on purpose.

accelerate enables FSDP only on GPU-like devices (on a CPU host its state stays MULTI_CPU, i.e. DDP, whatever the
config says), so `dist_update.fsdp_accelerator` switches the state after construction; everything after that is
accelerate's and torch's own FSDP2 code (prepare, no_sync via set_requires_gradient_sync, clip_grad_norm_ over
DTensors), which runs on CPU with gloo in torch 2.13. On GPUs `accelerate launch --config_file
examples/accelerate/fsdp2.yaml` gets the same path without the switch (docs/distributed.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dist_update import assert_same_update
from test_distributed import LR, load_updates, run_updates

SPECS = ["token-mean", "seq-mean-token-sum-norm@40"]  # padded, and padding-free at 40 tokens per micro-batch


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    plain = [s.split("@")[0] for s in SPECS]  # the reference: one process, padded
    return run_updates(tiny_model_dir, tmp_path_factory, plain, SPECS, "--fsdp")


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS)
def test_two_fsdp_processes_update_like_one(runs, spec):
    one, r0, r1 = load_updates(runs, spec.split("@")[0], spec)
    assert r0["micro_batches"] == r1["micro_batches"]
    for k in ("reward/mean", "accuracy", "verifier_errors"):
        assert r0["metrics"][k] == pytest.approx(one["metrics"][k], rel=1e-6), k
    assert_same_update(one, r0, "FSDP rank 0")
    for name, g in r0["grads"][1].items():  # gathered from the shards: both ranks see the same full gradient
        torch.testing.assert_close(r1["grads"][1][name], g, atol=0, rtol=0)
    for name, p in one["params"].items():  # gathered from the shards after two optimizer steps
        torch.testing.assert_close(r0["params"][name], p, atol=0.05 * LR, rtol=0, msg=lambda m: f"{name}: {m}")
