"""What every trainer loop needs around its update: accelerator, seeded model and
optimizer, LR schedule, data position, metrics, checkpoints, final save.

Trainers compose these helpers (no base class to inherit). Resume is exact:
model, optimizer, scheduler, RNG (via accelerate) and the data position (ours)
are restored from the newest complete checkpoint in `run_dir/checkpoints`.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from rlvr.allocator import keep_freed_memory
from rlvr.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, save_pretrained
from rlvr.config import TrainConfig, to_dict
from rlvr.metrics import MetricsLogger, plot_metrics
from rlvr.policy import ModelConfig, load_policy
from rlvr.types import Sample
from tasks.base import Task, get_task

log = logging.getLogger("rlvr")


class PromptStream:
    """Samples of a task in a seeded order, reshuffled each epoch; `position` counts samples consumed."""

    def __init__(self, task: Task, seed: int, position: int = 0):
        if len(task) == 0:
            raise ValueError("task has no samples")
        self.task, self.seed, self.position = task, seed, position

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.task)))
        random.Random(self.seed * 100_003 + epoch).shuffle(order)
        return order

    def take(self, k: int) -> list[Sample]:
        out = []
        n = len(self.task)
        while len(out) < k:
            epoch, i = divmod(self.position, n)
            out.append(self.task[self._order(epoch)[i]])
            self.position += 1
        return out


@dataclass
class Runtime:
    cfg: TrainConfig
    accelerator: Accelerator
    model: torch.nn.Module
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    logger: MetricsLogger
    run_dir: Path
    start_step: int
    state: dict[str, Any]  # trainer state restored on resume (data position, ...)
    extra: Any = None  # what `build_runtime(prepare_extra=...)` prepared (PPO's critic), restored on resume too

    @property
    def policy(self) -> torch.nn.Module:
        """The bare model under the DDP/FSDP/compile wrappers (for generation and the reference copy)."""
        return self.accelerator.unwrap_model(self.model)

    @property
    def ckpt_root(self) -> Path:
        return self.run_dir / "checkpoints"

    def save(self, step: int, state: dict[str, Any]) -> None:
        save_checkpoint(self.accelerator, self.ckpt_root, step, {"step": step, **state}, keep_last=self.cfg.keep_last)

    def finish(self, plot_keys: tuple[str, ...]) -> Path:
        """Save the final HF model (`run_dir/final`), close the metrics and plot them (`run_dir/curves.png`)."""
        out = save_pretrained(self.accelerator, self.model, self.tokenizer, self.run_dir / "final")
        self.logger.close()
        if self.accelerator.is_main_process and "jsonl" in self.cfg.report_to:
            plot_metrics(self.run_dir / "metrics.jsonl", self.run_dir / "curves.png", keys=plot_keys,
                         title=f"{self.cfg.algorithm} ({self.run_dir})")  # fmt: skip
        return out


def build_task(cfg_task, what: str) -> Task:
    if not cfg_task.name:
        raise ValueError(f"{what}.name is empty: name a registered task (see `rlvr list`)")
    return get_task(cfg_task.name, **cfg_task.args)


def _has_accelerator() -> bool:
    acc = getattr(torch, "accelerator", None)  # torch >= 2.6 knows CUDA, XPU, MPS, ...
    return acc.is_available() if acc is not None else torch.cuda.is_available()


def optimizer_and_scheduler(params: list[torch.nn.Parameter], lr: float, cfg: TrainConfig, total_steps: int):
    """AdamW over `params` at `lr` with `cfg.optim`'s other settings and LR schedule."""
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(params, lr=lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay)
    scheduler = get_scheduler(
        cfg.optim.lr_scheduler, optimizer, num_warmup_steps=cfg.optim.warmup_steps, num_training_steps=total_steps
    )
    return optimizer, scheduler


def warn_low_precision_updates(params: list[torch.nn.Parameter], lr: float) -> None:
    """Warn when AdamW would train 16-bit weights directly: its step is about `lr` per weight, and a bf16 weight
    only moves when the step exceeds half its spacing (|w| / 256), so at lr 1e-6 every weight above ~5e-4 in
    magnitude stays where it is. Float32 weights with autocast (fp32 master weights) do not lose the updates."""
    half = [p for p in params if p.dtype in (torch.bfloat16, torch.float16)]
    if not half:
        return
    w = torch.cat([p.detach().flatten()[:4096].float().abs() for p in half])
    spacing = 2.0 ** -8 if half[0].dtype == torch.bfloat16 else 2.0 ** -11
    lost = float((w * spacing / 2 > lr).float().mean())
    if lost > 0.5:
        log.warning("model.dtype %s with optim.lr %g: AdamW steps of ~%g are below half the spacing of %.0f%% of "
                    "the sampled weights and round away; load model.dtype float32 and launch with "
                    "`accelerate launch --mixed_precision bf16` (fp32 master weights), or train LoRA adapters",
                    str(half[0].dtype).removeprefix("torch."), lr, lr, 100 * lost)  # fmt: skip


def build_runtime(cfg: TrainConfig, total_steps: int, accelerator: Accelerator | None = None,
                  load_model: Callable[[ModelConfig], tuple[torch.nn.Module, Any]] = load_policy, *,
                  prepare_extra: Callable[[Accelerator, torch.nn.Module, Any], Any] | None = None) -> Runtime:
    """Everything a trainer needs; `load_model` builds (model, tokenizer) from `cfg.model` (reward models pass a
    classifier loader; the default is the causal-LM policy). `prepare_extra(accelerator, policy, tokenizer)`
    builds and `accelerator.prepare`s more models and optimizers (a critic) before the checkpoint is loaded, so
    that a resume restores them too."""
    # On a host without a GPU (or other accelerator) accelerate only joins a torchrun/`accelerate launch` group
    # when told cpu=True; without it every rank silently trains alone on the whole batch as rank 0.
    accelerator = accelerator or Accelerator(cpu=not _has_accelerator())
    if accelerator.device.type == "cpu":
        keep_freed_memory()  # ~10% off a CPU update: no page faults on memory the last step freed
    set_seed(cfg.seed, device_specific=True)
    run_dir = Path(cfg.run_dir)
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    model, tok = load_model(cfg.model)
    params = [p for p in model.parameters() if p.requires_grad]
    warn_low_precision_updates(params, cfg.optim.lr)
    optimizer, scheduler = optimizer_and_scheduler(params, cfg.optim.lr, cfg, total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    extra = prepare_extra(accelerator, accelerator.unwrap_model(model), tok) if prepare_extra else None
    start_step, state = 0, {}
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is not None:
        state = load_checkpoint(accelerator, ckpt)
        start_step = int(state["step"])
        log.warning("resumed from %s at step %d", ckpt, start_step)
    logger = MetricsLogger(
        run_dir,
        config=to_dict(cfg),
        report_to=tuple(cfg.report_to),
        resume_step=start_step if ckpt is not None else None,
        is_main_process=accelerator.is_main_process,
    )
    return Runtime(cfg, accelerator, model, tok, optimizer, scheduler, logger, run_dir, start_step, state, extra)


@contextmanager
def accumulating(accelerator: Accelerator, model: torch.nn.Module, last: bool) -> Iterator[None]:
    """Around one micro-batch's forward and backward: gradients sync across processes only on the `last` one
    (DDP/FSDP `no_sync` before it), and accelerate's `sync_gradients` says so, which is what DeepSpeed steps on
    (its backward runs the optimizer step when it is set: without this it would step after every micro-batch).
    Set as accelerate's own `accumulate()` and transformers' Trainer set it; ours has a varying micro-batch count."""
    accelerator.gradient_state._set_sync_gradients(last)
    with nullcontext() if last else accelerator.no_sync(model):
        yield


def clip_and_step(rt: Runtime) -> float:
    """Gradient clipping (if configured), optimizer and scheduler step; returns the pre-clip grad norm."""
    return step_optimizer(rt.accelerator, rt.model, rt.optimizer, rt.scheduler, rt.cfg.optim.max_grad_norm)


def step_optimizer(accelerator: Accelerator, model: torch.nn.Module, optimizer, scheduler, max_grad_norm: float) -> float:
    """`clip_and_step` for any prepared (model, optimizer, scheduler), e.g. a critic."""
    grad_norm = 0.0
    if max_grad_norm > 0:
        grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), max_grad_norm))
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm

