"""One DPO and one KTO update on a fixed global batch, in one process or as one rank of a torchrun group.

Run by tests/rlvr/trainers/test_preference_distributed.py, not collected as a test:
    python dist_preference_update.py MODEL_DIR OUT_DIR
    torchrun --nproc_per_node 2 dist_preference_update.py MODEL_DIR OUT_DIR
Every process encodes the same synthetic arithmetic pairs, computes their reference log-probs with the trainers'
own cached, sharded pass, and runs the trainers' own update on the whole global batch (each rank takes its
share `[rank::world]`), twice: at the first update the policy is its own reference (every pair tied up to float
round-off, which the two layouts break differently), at the second it has moved. Per algorithm it writes
OUT_DIR/{algo}.rank{r}.pt: the gradients the optimizer stepped on, the parameters after, the reference log-probs
and the global metrics of both updates.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

from rlvr.config import TrainConfig
from rlvr.policy import load_tokenizer
from rlvr.preference_data import encode_all
from rlvr.trainers.dpo import dpo_update
from rlvr.trainers.kto import kl_reference_point, kto_update
from rlvr.trainers.preference import (
    disable_dropout,
    frozen_initial_model,
    pair_reference,
    reference_fingerprint,
    reference_logps,
)
from rlvr.trainers.runtime import build_runtime
from tasks import get_task
from tasks.preference import unpair

GLOBAL_BATCH = 8  # pairs for DPO, examples for KTO; 4 per rank in micro-batches of 3 and 1 (gradient accumulation)


def config(model_dir: str, run_dir: Path, algorithm: str) -> TrainConfig:
    cfg = TrainConfig(algorithm=algorithm, run_dir=str(run_dir), seed=0, report_to=[])
    cfg.model.name_or_path = model_dir
    cfg.optim.lr = 1e-3
    cfg.optim.max_grad_norm = 1e6  # computed and compared, never clipping: the gradients stay comparable
    for block in (cfg.dpo, cfg.kto):
        block.batch_size, block.micro_batch_size, block.max_length = GLOBAL_BATCH, 3, 64
    cfg.dpo.label_smoothing = 0.1  # conservative DPO
    cfg.dpo.nll_coef = 0.5  # a token-level term: its denominator (chosen tokens of the global batch) is tested too
    cfg.kto.desirable_weight = 1.2
    return cfg


def run(model_dir: str, out_dir: Path, algorithm: str) -> None:
    cfg = config(model_dir, out_dir / f"run_{algorithm}", algorithm)
    rt = build_runtime(cfg, total_steps=2)
    acc = rt.accelerator
    disable_dropout(rt.policy)
    grads: list[dict[str, torch.Tensor]] = []

    def record(optimizer, args, kwargs) -> None:  # the gradient the optimizer steps on, after DDP's all-reduce
        grads.append({n: p.grad.detach().clone() for n, p in rt.policy.named_parameters()})

    rt.optimizer.optimizer.register_step_pre_hook(record)
    tok = load_tokenizer(model_dir)
    pairs = get_task("arithmetic_preference", num_samples=GLOBAL_BATCH, num_operands=3, max_value=20).pairs
    fp = reference_fingerprint(rt)
    if algorithm == "dpo":
        batch, _ = encode_all(tok, pairs, 64)
        ref = pair_reference(rt, batch, "train", normalization="sum", max_length=64, micro_batch_size=3, fingerprint=fp)
        metrics = [dpo_update(rt, batch, ref, cfg.dpo) for _ in range(2)]
    else:
        batch, _ = encode_all(tok, unpair(pairs, seed=0)[:GLOBAL_BATCH], 64)
        ref = reference_logps(rt, [[(e.prompt, e.completion)] for e in batch], [e.where for e in batch],
                              normalization="sum", max_length=64, name="train", micro_batch_size=3, fingerprint=fp)[:, 0]
        ref_model = frozen_initial_model(rt, fp)
        metrics = [kto_update(rt, batch, ref, ref_model, cfg.kto) for _ in range(2)]
        # the KL reference point, unclamped, against a reference that differs from the policy from the start
        other = copy.deepcopy(ref_model)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in other.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        metrics[1]["kl_probe"] = float(kl_reference_point(rt, batch, other, 3))
    torch.save(
        {
            "world": acc.num_processes,
            "metrics": metrics,
            "ref": ref.cpu(),
            "labels": [getattr(b, "label", None) for b in batch],
            "grads": grads,
            "params": {n: p.detach().clone() for n, p in rt.policy.named_parameters()},
        },
        out_dir / f"{algorithm}.rank{acc.process_index}.pt",
    )
    acc.wait_for_everyone()


if __name__ == "__main__":
    for algo in ("dpo", "kto"):
        run(sys.argv[1], Path(sys.argv[2]), algo)
