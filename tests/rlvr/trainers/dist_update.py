"""One GRPO batch update on a fixed synthetic rollout, in one process or as one rank of a torchrun group.

Run by tests/rlvr/trainers/test_distributed.py, not collected as a test:
    python dist_update.py MODEL_DIR OUT_DIR MODE[@BUDGET] [MODE[@BUDGET] ...]
    torchrun --nproc_per_node 2 dist_update.py [--fsdp] MODEL_DIR OUT_DIR MODE[@BUDGET] [MODE[@BUDGET] ...]
Every process builds the same global rollout (fixed prompts, completions and rewards: no sampling), keeps
its share of the prompt groups the way `grpo.collect` splits them (`samples[rank::world]`), then does what
`grpo.train` does between rollout and generator sync: old/reference log-probs, advantages over the gathered
rewards (`advantages_for`) and `update`; `@BUDGET` runs it padding-free (grpo.max_tokens_per_micro_batch=BUDGET),
`--fsdp` under accelerate's FSDP2 instead of DDP.
Per MODE[@BUDGET] it writes OUT_DIR/{mode}[@budget].rank{r}.pt with the
gradients each optimizer step saw, the parameters after, its advantages and the global metrics.
It does not generate, verify or save checkpoints (the test runs `rlvr train` under torchrun for that).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_multi_gpu_env
from torch.distributed.tensor import DTensor

from rlvr.config import TrainConfig
from rlvr.policy import Reference
from rlvr.rollout import Rollout
from rlvr.trainers.grpo import micro_parts, prepare_batch, update
from rlvr.trainers.runtime import build_runtime
from rlvr.types import Completion, Sample
from verifiers.base import Verdict

NUM_PROMPTS, GROUP = 4, 4
# each loss_agg_mode runs with one scale_rewards, so "batch" (std over the gathered batch) is covered too
SCALE_REWARDS = {
    "token-mean": "group", "seq-mean-token-mean": "batch",
    "seq-mean-token-sum": "group", "seq-mean-token-sum-norm": "none",
}  # fmt: skip
MAX_NEW_TOKENS = 12
BUDGET = 40  # tokens per padding-free micro-batch: the rollout's 16 sequences (5..25 tokens, 234 in all) need 6+
FSDP_CONFIG = Path(__file__).resolve().parents[3] / "examples" / "accelerate" / "fsdp2.yaml"


def global_rollout(vocab_size: int) -> Rollout:
    """P=4 prompts x G=4 completions: prompts and completions of different lengths, one empty completion,
    one truncated (masked by mask_truncated_completions), one verifier error (masked, no baseline effect),
    one zero-variance group."""
    rng = random.Random(0)
    rewards = [[1.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.25], [0.0, 1.0, 1.0, 0.0]]
    lengths = [[3, 7, 12, 1], [5, 5, 9, 2], [0, 11, 4, 8], [6, 12, 3, 10]]
    samples, completions, verdicts, prompt_ids = [], [], [], []
    for p in range(NUM_PROMPTS):
        samples.append(Sample(id=f"p{p}", prompt=f"prompt {p}"))
        prompt_ids.append([rng.randrange(5, vocab_size) for _ in range(4 + 3 * p)])
        group, group_v = [], []
        for g in range(GROUP):
            n = lengths[p][g]
            ids = [rng.randrange(5, vocab_size) for _ in range(n)]
            group.append(Completion(text=f"c{p}{g}", token_ids=ids, finish_reason="length" if n == MAX_NEW_TOKENS else "stop"))
            if (p, g) == (3, 2):  # an unscorable completion: masked, and stood in at its group's valid mean
                group_v.append(Verdict.failure("verifier crashed"))
            else:
                group_v.append(Verdict(score=rewards[p][g], correct=rewards[p][g] == 1.0))
        completions.append(group)
        verdicts.append(group_v)
    return Rollout(samples, completions, verdicts, prompt_ids)


def config(model_dir: str, run_dir: Path, mode: str, budget: int = 0) -> TrainConfig:
    cfg = TrainConfig(algorithm="grpo", run_dir=str(run_dir), seed=0, report_to=[])
    cfg.model.name_or_path = model_dir
    cfg.generation.max_new_tokens = MAX_NEW_TOKENS
    cfg.generation.num_generations = GROUP
    cfg.grpo.prompts_per_step = NUM_PROMPTS
    cfg.grpo.micro_batch_size = 3  # several micro-batches per process: gradient accumulation under no_sync
    cfg.grpo.max_tokens_per_micro_batch = budget
    cfg.grpo.num_iterations = 2  # the second step is off-policy (ratios != 1, clipping active)
    cfg.grpo.kl_coef = 0.05
    cfg.grpo.loss_agg_mode = mode
    cfg.grpo.scale_rewards = SCALE_REWARDS[mode]
    cfg.grpo.mask_truncated_completions = True
    cfg.optim.lr = 1e-3
    cfg.optim.max_grad_norm = 1e6  # the norm is computed (and compared) but never clips: grads stay comparable
    return cfg


def fsdp_accelerator() -> Accelerator:
    """accelerate's FSDP2 on CPU (gloo), configured by examples/accelerate/fsdp2.yaml as `accelerate launch`
    reads it (its FSDP_* environment), in fp32 so the update compares with one fp32 process.
    accelerate itself turns FSDP on only for GPU-like devices (its state stays MULTI_CPU, i.e. DDP, on a CPU
    host), but its FSDP2 preparation, no_sync and clipping run on CPU, so the state is switched here."""
    args = launch_command_parser().parse_args(["--config_file", str(FSDP_CONFIG), "train.py"])
    args, _, _ = _validate_launch_command(args)  # what `accelerate launch` does with a config file
    os.environ.update({k: v for k, v in prepare_multi_gpu_env(args).items() if k.startswith("FSDP_")})
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward, "examples/accelerate/fsdp2.yaml changed"
    acc = Accelerator(cpu=True, fsdp_plugin=plugin)
    acc.state.distributed_type, acc.state.fsdp_plugin = DistributedType.FSDP, plugin
    return acc


def _full(t: torch.Tensor) -> torch.Tensor:
    """A parameter or gradient as one plain tensor (FSDP2 holds each process's shard in a DTensor)."""
    return (t.full_tensor() if isinstance(t, DTensor) else t).detach().clone()


def run(model_dir: str, out_dir: Path, spec: str, fsdp: bool) -> None:
    mode, _, budget = spec.partition("@")
    cfg = config(model_dir, out_dir / f"run_{spec}", mode, int(budget or 0))
    rt = build_runtime(cfg, total_steps=cfg.grpo.num_iterations, accelerator=fsdp_accelerator() if fsdp else None)
    acc = rt.accelerator
    grads: list[dict[str, torch.Tensor]] = []

    def record(optimizer, args, kwargs) -> None:  # the gradient the optimizer steps on, after DDP's all-reduce
        grads.append({n: _full(p.grad) for n, p in rt.policy.named_parameters()})

    rt.optimizer.optimizer.register_step_pre_hook(record)
    ro = global_rollout(rt.policy.config.vocab_size)
    ro = ro.select(list(range(NUM_PROMPTS))[acc.process_index :: acc.num_processes])
    batch, metrics = prepare_batch(rt, ro, Reference(rt.policy))  # the trainer's own code path
    n_micro = len(micro_parts(rt, batch))  # what update() forms for its one mini-batch
    rt.model.train()
    metrics["grad_norm"] = update(rt, batch)["grad_norm"]
    torch.save(
        {
            "world": acc.num_processes,
            "micro_batches": n_micro,
            "prompts": [s.id for s in ro.samples],
            "advantages": batch.extra["advantages"].cpu(),  # (P_local * G,)
            "metrics": metrics,
            "grads": grads,
            "params": {n: _full(p) for n, p in rt.policy.named_parameters()},
        },
        out_dir / f"{spec}.rank{acc.process_index}.pt",
    )
    acc.wait_for_everyone()


def assert_same_update(ref: dict, other: dict, label: str) -> None:
    """`other` (a run's saved output) stepped on `ref`'s gradients at both iterations: tight at step 0 (identical
    weights), looser at step 1 (off-policy, after one AdamW step whose round-off can move a weight by up to lr).
    Every gradient must be non-zero, so a lost parameter cannot pass as equal."""
    assert other["metrics"]["grad_norm"] == pytest.approx(ref["metrics"]["grad_norm"], rel=1e-5), label
    assert len(ref["grads"]) == len(other["grads"]) == 2
    for step, (atol, rtol) in enumerate([(1e-6, 1e-5), (1e-5, 1e-4)]):
        for name, g in ref["grads"][step].items():
            assert g.abs().max() > 0, f"{label}, step {step}: {name} got no gradient"
            torch.testing.assert_close(other["grads"][step][name], g, atol=atol, rtol=rtol,
                                       msg=lambda m: f"{label}, step {step}, {name}: {m}")  # fmt: skip


def main(argv: list[str]) -> None:
    fsdp = argv[0] == "--fsdp"
    model_dir, out_dir, specs = argv[fsdp], Path(argv[fsdp + 1]), argv[fsdp + 2 :]
    for spec in specs:
        run(model_dir, out_dir, spec, fsdp)


if __name__ == "__main__":
    main(sys.argv[1:])
