"""What every trainer that samples from its policy sets up the same way (GRPO, PPO, on-policy distillation).

`start_sampling(rt)`: the training task as a resumable prompt stream, the verifier named by the config (or the
task's), the generator (given the resumed weights after a restart), the verifier pool, and the held-out
evaluation (its samples checked against the eval block before training starts, so a bad eval block never
surfaces at the first evaluation). `Sampling.evaluate` runs `rlvr.evaluate` on the live policy and keeps
`eval/accuracy_before` and `eval/accuracy` in the trainer's result.
What it does not: the step itself (each trainer's loop), or close the pool on its own (`close()` in a finally).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlvr.evaluate import EvalSpec, check_samples, evaluate, spec_from_config, write_outputs
from rlvr.generation import build_generator
from rlvr.trainers.runtime import PromptStream, Runtime, build_task
from rlvr.types import Sample
from verifiers.pool import VerifierPool


@dataclass
class Sampling:
    rt: Runtime
    verifier: tuple[str, dict]  # (name, args) for the verifier pool
    stream: PromptStream
    generator: Any  # rlvr.generation backend (HF or vLLM)
    pool: VerifierPool
    eval_samples: list[Sample]
    eval_spec: EvalSpec | None

    def evaluate(self, step: int, result: dict[str, float]) -> None:
        """Held-out evaluation at `step` when an eval task is configured (logged under eval/, written to
        run_dir/eval/step_N); the first one is kept as `eval/accuracy_before`, the latest as `eval/accuracy`."""
        if not self.eval_samples:
            return
        rt, spec = self.rt, self.eval_spec
        max_prompt_len = rt.policy.config.max_position_embeddings - spec.generation["max_new_tokens"]
        res = evaluate(self.eval_samples, self.generator, rt.tokenizer, self.pool, spec, max_prompt_len=max_prompt_len,
                       progress=False)  # fmt: skip
        m = res.log_metrics()
        rt.logger.log(step, {f"eval/{k}": v for k, v in m.items()})
        if rt.accelerator.is_main_process:
            write_outputs(res, rt.run_dir / "eval" / f"step_{step:06d}", plots=False)
        result.setdefault("eval/accuracy_before", m["accuracy"])
        result["eval/accuracy"] = m["accuracy"]

    def evaluate_between(self, step: int, result: dict[str, float]) -> None:
        """After `step` steps: every `eval.every` steps, except after the last (the trainer's final evaluate)."""
        cfg = self.rt.cfg
        if cfg.eval.every and step % cfg.eval.every == 0 and step < cfg.max_steps:
            self.evaluate(step, result)

    def close(self) -> None:
        self.pool.close()


def start_sampling(rt: Runtime) -> Sampling:
    cfg = rt.cfg
    task = build_task(cfg.task, "task")
    verifier = (cfg.verifier.name or task.default_verifier, cfg.verifier.args)
    stream = PromptStream(task, cfg.seed, rt.state.get("data_position", 0))
    generator = build_generator(cfg.generation, rt.policy, rt.tokenizer, cfg.model.name_or_path)
    if rt.start_step > 0:
        generator.update_weights(rt.policy)  # resumed weights differ from the ones on disk
    eval_samples = list(build_task(cfg.eval.task, "eval.task")) if cfg.eval.task.name else []
    eval_spec = None
    if cfg.eval.task.name:  # an eval task with no samples is an error here, not a silently skipped evaluation
        eval_spec = spec_from_config(cfg, task=cfg.eval.task, verifier=verifier[0], model=cfg.model.name_or_path)
        check_samples(eval_samples, eval_spec)
    pool = VerifierPool(num_workers=cfg.verifier.num_workers, timeout_s=cfg.verifier.timeout_s,
                        preload=tuple(cfg.verifier.preload))  # fmt: skip
    return Sampling(rt, verifier, stream, generator, pool, eval_samples, eval_spec)
