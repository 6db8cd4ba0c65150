"""Best-of-N and rejection sampling (`rlvr bestofn CONFIG`, or `algorithm: bestofn` with `rlvr train`).

For every prompt of `task` the policy samples `bestofn.num_samples` completions (one generate call per batch
of prompts, N per prompt), the verifier judges each, and a reward model (`reward_model:`, ORM or PRM, combined
with the verifier as in GRPO, see `rlvr.rewards`) scores them when one is configured; without one the score is
the verifier's. Written to `run_dir`:
- `sft.jsonl`: the best completion of each prompt (`keep: best`) or every distinct completion the verifier
  passes (`keep: passing`, rejection sampling), as rows of the generic `dataset` schema with the completion in
  `meta.solution`: `task: {name: dataset, args: {path: RUN_DIR/sft.jsonl}}` trains on it with `algorithm: sft`.
- `pairs.jsonl`: `{prompt, chosen, rejected}` per prompt (best vs worst score) for DPO; a group whose best and
  worst scores differ by no more than `min_gap` has nothing to prefer and is dropped (counted).
- `samples.jsonl` (every completion, its verdict and score), `summary.json`, and `bestofn.png`: best-of-n
  accuracy (the verifier's verdict on the completion the score picks from n samples, averaged over the N/n
  disjoint blocks of each prompt's samples) against n, beside pass@n (any of the n correct, the oracle).
Ties go to the lowest sample index, so a run is reproducible; an unscorable completion (an error verdict) is
never chosen, and a prompt without a scorable completion is dropped and counted.
What it does not: train (feed `sft.jsonl` or `pairs.jsonl` to a trainer), or shard prompts across processes
(it runs in one process, on the GPU when there is one).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rlvr.config import TrainConfig, to_dict
from rlvr.generation import build_generator
from rlvr.policy import load_policy, load_tokenizer
from rlvr.rewards import RewardSource
from rlvr.rollout import Rollout, generate_and_verify, tokenize_prompts
from rlvr.trainers.runtime import build_task
from verifiers.pool import VerifierPool

KEEP = ("best", "passing")


def choose(scores: list[float], min_gap: float = 0.0) -> tuple[int, int] | None:
    """(best, worst) indices of `scores`, the lowest index on ties; None when the scores that are not NaN
    differ by no more than `min_gap` (or fewer than two are scorable): nothing to prefer.

    >>> choose([0.1, 0.7, 0.3, 0.7])
    (1, 0)
    >>> choose([0.5, 0.5, 0.5]) is None
    True
    """
    valid = [i for i, s in enumerate(scores) if not math.isnan(s)]
    if len(valid) < 2:
        return None
    best = max(valid, key=lambda i: (scores[i], -i))
    worst = min(valid, key=lambda i: (scores[i], i))
    return None if scores[best] - scores[worst] <= min_gap else (best, worst)


def pick_best(scores: list[float]) -> int | None:
    """Index of the highest score that is not NaN (lowest index on ties), None when none is scorable."""
    valid = [i for i, s in enumerate(scores) if not math.isnan(s)]
    return max(valid, key=lambda i: (scores[i], -i)) if valid else None


def accuracy_curve(scores: list[list[float]], correct: list[list[bool]], ns: list[int]) -> dict[int, tuple[float, float]]:
    """n -> (best-of-n accuracy, pass@n) over prompts, each averaged over the N // n disjoint blocks of n samples."""
    out = {}
    for n in ns:
        picked, oracle, blocks = 0.0, 0.0, 0
        for s, c in zip(scores, correct):
            for b in range(len(s) // n):
                idx = pick_best(s[b * n : (b + 1) * n])
                picked += idx is not None and c[b * n + idx]
                oracle += any(c[b * n : (b + 1) * n])
                blocks += 1
        out[n] = (picked / max(blocks, 1), oracle / max(blocks, 1))
    return out


def _plot(curve: dict[int, tuple[float, float]], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ns = sorted(curve)
    ax.plot(ns, [curve[n][0] for n in ns], "o-", label="best-of-n (picked by score)")
    ax.plot(ns, [curve[n][1] for n in ns], "s--", alpha=0.6, label="pass@n (oracle)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("n samples per prompt")
    ax.set_ylabel("accuracy (verifier)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title, fontsize="small")
    fig.savefig(path, dpi=100)


def _rows(ro: Rollout, keep: str, min_gap: float, counts: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """(sft rows, preference pairs, sample rows) of one rolled-out batch."""
    sft, pairs, samples = [], [], []
    for s, group, verdicts in zip(ro.samples, ro.completions, ro.verdicts):
        scores = [math.nan if v.error else v.score for v in verdicts]
        for i, (c, v) in enumerate(zip(group, verdicts)):
            samples.append({"id": s.id, "index": i, "completion": c.text, "score": scores[i], "correct": v.correct,
                            "error": v.error, "finish_reason": c.finish_reason})  # fmt: skip
        best = pick_best(scores)
        if best is None:
            counts["unscorable_prompts"] += 1
            continue
        if keep == "best":
            chosen = [best]
        else:
            texts = {}
            chosen = [texts.setdefault(c.text, i) for i, (c, v) in enumerate(zip(group, verdicts)) if v.correct and c.text not in texts]
        for i in chosen:
            meta = {"solution": group[i].text, "score": scores[i], "index": i, "source_id": s.id}
            sft.append({"id": f"{s.id}-{i}", "prompt": s.prompt, "reference": s.reference or "", "meta": meta})
        pair = choose(scores, min_gap)
        if pair is None:
            counts["pairs_dropped"] += 1
            continue
        b, w = pair
        pairs.append({"prompt": s.prompt, "chosen": group[b].text, "rejected": group[w].text,
                      "meta": {"id": s.id, "chosen_score": scores[b], "rejected_score": scores[w]}})  # fmt: skip
    return sft, pairs, samples


def train(cfg: TrainConfig) -> dict[str, float]:
    bc = cfg.bestofn
    if bc.keep not in KEEP:
        raise ValueError(f"bestofn.keep: {bc.keep!r} is not one of {KEEP}")
    if bc.num_samples < 1 or bc.batch_size < 1:
        raise ValueError(f"bestofn.num_samples and bestofn.batch_size must be >= 1, got {bc.num_samples}, {bc.batch_size}")
    torch.manual_seed(cfg.seed)
    task = build_task(cfg.task, "task")
    samples = list(task)[: bc.prompts or None]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.generation.backend == "hf":
        model, tok = load_policy(cfg.model)
        model.to(device).eval()
        context = model.config.max_position_embeddings
    else:  # vLLM loads the weights itself
        model, tok, context = None, load_tokenizer(cfg.model.name_or_path), cfg.generation.vllm.max_model_len
    generator = build_generator(cfg.generation, model, tok, cfg.model.name_or_path)
    verifier = (cfg.verifier.name or task.default_verifier, cfg.verifier.args)
    rm = RewardSource(cfg.reward_model, tok, device) if cfg.reward_model.path else None
    out = Path(cfg.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    counts = {"prompts": len(samples), "unscorable_prompts": 0, "pairs_dropped": 0}
    sft, pairs, rows, scores, correct = [], [], [], [], []
    max_prompt_len = context - cfg.generation.max_new_tokens
    with VerifierPool(num_workers=cfg.verifier.num_workers, timeout_s=cfg.verifier.timeout_s,
                      preload=tuple(cfg.verifier.preload)) as pool:  # fmt: skip
        for k in tqdm(range(0, len(samples), bc.batch_size), desc="bestofn", dynamic_ncols=True):
            batch = samples[k : k + bc.batch_size]
            sampling = cfg.generation.sampling(seed=cfg.seed + k)
            ro = generate_and_verify(batch, tokenize_prompts(tok, batch, max_prompt_len), generator, pool, verifier,
                                     bc.num_samples, sampling)  # fmt: skip
            if rm is not None:
                ro = rm.rescore(ro)
            s, p, r = _rows(ro, bc.keep, bc.min_gap, counts)
            sft, pairs, rows = sft + s, pairs + p, rows + r
            scores += [[math.nan if v.error else v.score for v in g] for g in ro.verdicts]
            correct += [[v.correct for v in g] for g in ro.verdicts]
    for name, data in (("sft.jsonl", sft), ("pairs.jsonl", pairs), ("samples.jsonl", rows)):
        (out / name).write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in data))
    ns = sorted({2**i for i in range(int(math.log2(bc.num_samples)) + 1)} | {bc.num_samples})
    curve = accuracy_curve(scores, correct, ns)
    rc = cfg.reward_model
    scorer = "verifier" if rm is None else rc.kind if rc.verifier_weight == 0 else f"{rc.kind} + verifier ({rc.combine})"
    _plot(curve, out / "bestofn.png", f"best-of-n on {cfg.task.name}, scored by {scorer}")
    result = {**{k: float(v) for k, v in counts.items()}, "sft_rows": float(len(sft)), "pairs": float(len(pairs)),
              **{f"bestofn/accuracy@{n}": a for n, (a, _) in curve.items()},
              **{f"bestofn/pass@{n}": p for n, (_, p) in curve.items()}}  # fmt: skip
    (out / "summary.json").write_text(json.dumps({"scored_by": scorer, **result}, indent=2))
    return result
