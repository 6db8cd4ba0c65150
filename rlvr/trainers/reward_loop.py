"""The loop the reward-model trainers share (`algorithm: rm` and `algorithm: prm`).

Each step takes `batch_size` encoded items from a seeded stream (this process's share of them), runs
`micro_loss` on micro-batches of `micro_batch_size` with gradient accumulation and a denominator counted over
all processes (so N processes make the update one process makes on the same global batch), clips and steps,
logs `summarize`'s metrics, evaluates held-out data every `eval.every` steps and at the end (`evaluate`, on the
main process with the unwrapped model in eval mode), checkpoints every `save_every` steps (with the data
position, so a resumed run continues exactly), and saves `final/` and `curves.png`.
What it does not: encode data, compute losses or metrics (the trainers pass those in).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from rlvr.trainers.runtime import PromptStream, Runtime, clip_and_step


def run(
    rt: Runtime, data: list[Any], *, batch_size: int, micro_batch_size: int, total: int, desc: str,
    count: Callable[[Any], int],
    micro_loss: Callable[[list[Any], float], tuple[Tensor, Tensor]],
    summarize: Callable[[list[float], float], dict[str, float]],
    evaluate: Callable[[], dict[str, float]] | None, plot_keys: tuple[str, ...],
) -> dict[str, float]:
    """Train for `total` steps. count(item): denominator units in an item (pairs, steps); micro_loss(part,
    global units) -> (loss to backpropagate, per-part sums (K,)); summarize(sums over all processes, global
    units) -> metrics."""
    cfg, acc, model = rt.cfg, rt.accelerator, rt.model
    stream = PromptStream(data, cfg.seed, rt.state.get("data_position", 0))
    result: dict[str, float] = {}

    def run_eval(step: int) -> None:
        if evaluate is None:
            return
        model.eval()
        if acc.is_main_process:  # evaluate uses the unwrapped model: no collective inside
            m = {f"eval/{k}": v for k, v in evaluate().items()}
            rt.logger.log(step, m)
            result.update(m)
        acc.wait_for_everyone()
        model.train()

    model.train()
    bar = tqdm(range(rt.start_step, total), initial=rt.start_step, total=total, disable=not acc.is_main_process, desc=desc)
    for step in bar:
        batch = stream.take(batch_size)[acc.process_index :: acc.num_processes]
        units = acc.reduce(torch.tensor(float(sum(count(x) for x in batch)), device=acc.device), reduction="sum").item()
        sums: Tensor | None = None  # this process's share
        parts = [batch[i : i + micro_batch_size] for i in range(0, len(batch), micro_batch_size)]
        for j, part in enumerate(parts):
            with acc.no_sync(model) if j < len(parts) - 1 else torch.enable_grad():
                loss, stats = micro_loss(part, units)
                acc.backward(loss * acc.num_processes)  # DDP averages gradients; the denominator is already global
            stats = torch.cat([loss.detach().reshape(1), stats.detach().to(acc.device)])
            sums = stats if sums is None else sums + stats
        reduced = acc.reduce(sums, reduction="sum").tolist()
        grad_norm = clip_and_step(rt)
        m = {"loss": reduced[0], **summarize(reduced[1:], units), "grad_norm": grad_norm, "lr": rt.scheduler.get_last_lr()[0]}
        rt.logger.log(step + 1, m)
        bar.set_postfix(loss=f"{m['loss']:.4f}")
        result.update(m)
        if cfg.eval.every and (step + 1) % cfg.eval.every == 0 and step + 1 < total:
            run_eval(step + 1)
        if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step + 1 == total:
            rt.save(step + 1, {"data_position": stream.position})
    run_eval(total)
    rt.finish(plot_keys=plot_keys)
    return result
