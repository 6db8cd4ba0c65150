"""GRPO at Qwen2.5's vocabulary: peak memory and seconds per step, TRL's `GRPOTrainer` vs ours; then our
padding-free update against our padded one on a realistic spread of completion lengths.

Model (built here, offline): tiny-qwen2-small's layers (hidden 64, 2 layers, random weights) with a tied
151,936-row embedding, Qwen2.5's vocabulary size, and the tiny byte-level tokenizer extended to 151,936 ids
(extra vocabulary entries without merges: prompts encode exactly as before, and every id a sampler can
draw decodes to text).

Part 1, TRL vs ours (`grpo_vs_trl.py`'s runners, each framework through its real entry point in its own fresh
process, alternating, `--rounds` times): 1 arithmetic prompt x 8 completions x exactly 512 new tokens (EOS
suppressed by `min_new_tokens` on both sides), beta 0, one update per batch, all 8 completions in one
forward/backward on both sides, fp32 on CPU. Prints peak RSS (`ru_maxrss`, max over rounds) and the median
seconds per step after `--warmup`; ours splits its step into rollout and update.

Part 2, padding-free vs padded (ours only, the update alone: `prepare_batch` + `update` on a fixed rollout, no
generation, so generation time does not dilute the ratio): 2 prompts x 8 completions whose lengths are drawn
uniformly from 32..1024 (seeded), rewards 0/1. Padded: `micro_batch_size` 8, every row padded to the batch's
longest completion (the default, `max_tokens_per_micro_batch: 0`; its head is the tiled one too). Padding-free: `max_tokens_per_micro_batch` =
8 x (prompt + 1024), the padded micro-batch's worst case. Same alternation, median update seconds, peak RSS.

With `--parts head`, the output head alone (hidden 64 x VOCAB, 2048 tokens, log-probs and entropies, forward
and backward): our tiled `head_logprobs` against the plain expression `token_logprobs(chunk_size=0)` evaluates.

Ends with three lines: `memory ratio: X` (our peak RSS over TRL's), `speedup: Y` (TRL's s/step over ours) and
`padding-free speedup: Z` (padded update s over padding-free). Not a test: it asserts nothing.

    python benchmarks/grpo_scale.py                  # parts 1 and 2, 2 rounds x 3 steps each
    python benchmarks/grpo_scale.py --parts padding  # part 2 only
    python benchmarks/grpo_scale.py --parts head     # the output head alone, tiled vs plain (tile tuning)
    python benchmarks/grpo_scale.py --threads 2      # torch intra-op threads in every run (default 1)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# run as a script, this folder is first on sys.path and its sandbox.py would shadow the `sandbox` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
_spec = importlib.util.spec_from_file_location("grpo_vs_trl", HERE / "grpo_vs_trl.py")
vs_trl = sys.modules["grpo_vs_trl"] = importlib.util.module_from_spec(_spec)  # registered: its dataclass needs it
_spec.loader.exec_module(vs_trl)

VOCAB = 151_936  # Qwen2.5
PART1 = vs_trl.Workload(prompts=1, generations=8, new_tokens=512)
PART2_PROMPTS, PART2_GENERATIONS, MIN_LEN, MAX_LEN, ROWS = 2, 8, 32, 1024, 8
HEAD_TOKENS = 2048


def make_model(path: Path) -> None:
    """tiny-qwen2-small's layers under a VOCAB-row tied embedding, and its tokenizer extended to VOCAB ids."""
    import torch
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.policy import load_tokenizer
    from rlvr.tiny_models import MAX_POSITIONS, TINY_MODELS, build_tiny_model

    path.mkdir(parents=True, exist_ok=True)
    build_tiny_model("tiny-qwen2-small", path)
    load_tokenizer(str(path)).save_pretrained(path)  # as trainers load it (Qwen2Tokenizer adds <|endoftext|>)
    tj = json.loads((path / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    taken = set(vocab) | {t["content"] for t in tj["added_tokens"]}
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # 256 symbols: 3-symbol strings give 16.7M names
    next_id, i = max(max(vocab.values()), *(t["id"] for t in tj["added_tokens"])) + 1, 0
    while next_id < VOCAB:
        name = alphabet[i // 65536] + alphabet[i // 256 % 256] + alphabet[i % 256]
        i += 1
        if name not in taken:
            vocab[name], next_id = next_id, next_id + 1
    (path / "tokenizer.json").write_text(json.dumps(tj))
    tok = load_tokenizer(str(path))
    assert len(tok) == VOCAB, len(tok)
    arch = {k: v for k, v in TINY_MODELS["tiny-qwen2-small"].items() if k != "seed"}
    cfg = Qwen2Config(vocab_size=VOCAB, max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=True,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id,
                      **arch)  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    model.save_pretrained(path)
    vs_trl.force_length(path, PART1.new_tokens)


def part2_rollout(tokenizer, seed: int = 0):
    """PART2_PROMPTS arithmetic prompts x PART2_GENERATIONS completions of lengths uniform in MIN_LEN..MAX_LEN."""
    from rlvr.rollout import Rollout, tokenize_prompts
    from rlvr.types import Completion
    from tasks import get_task
    from verifiers.base import Verdict

    rng = random.Random(seed)
    samples = list(get_task("arithmetic", **vs_trl.TASK))[:PART2_PROMPTS]
    prompt_ids = tokenize_prompts(tokenizer, samples, 1024)
    completions, verdicts = [], []
    for _ in samples:
        group = []
        for _ in range(PART2_GENERATIONS):
            n = rng.randint(MIN_LEN, MAX_LEN)
            group.append(Completion(text="", token_ids=[rng.randrange(10, VOCAB) for _ in range(n)], finish_reason="stop"))
        completions.append(group)
        verdicts.append([Verdict(score=float(rng.random() < 0.5), correct=False) for _ in group])
    return Rollout(samples, completions, verdicts, prompt_ids)


def run_update(model: Path, steps: int, run_dir: Path, padding_free: bool) -> dict:
    from rlvr.config import TrainConfig
    from rlvr.trainers.grpo import micro_parts, prepare_batch, update
    from rlvr.trainers.runtime import build_runtime

    cfg = TrainConfig(algorithm="grpo", run_dir=str(run_dir), seed=0, report_to=[])
    cfg.model.name_or_path = str(model)
    cfg.generation.num_generations, cfg.generation.max_new_tokens = PART2_GENERATIONS, MAX_LEN
    cfg.grpo.prompts_per_step, cfg.grpo.micro_batch_size, cfg.grpo.kl_coef = PART2_PROMPTS, ROWS, 0.0
    rt = build_runtime(cfg, total_steps=steps)
    ro = part2_rollout(rt.tokenizer)
    longest_prompt = max(len(p) for p in ro.prompt_ids)
    cfg.grpo.max_tokens_per_micro_batch = ROWS * (longest_prompt + MAX_LEN) if padding_free else 0
    times, micro = [], 0
    for _ in range(steps):
        t0 = time.perf_counter()
        batch, _ = prepare_batch(rt, ro, None)
        rt.model.train()
        update(rt, batch)
        times.append(time.perf_counter() - t0)
        micro = len(micro_parts(rt, batch))
    real = int(batch.attention_mask.sum())
    return {"times": times, "micro_batches": micro, "real_tokens": real, "padded_tokens": batch.input_ids.numel()}


def run_head(chunked: bool, tokens: int, steps: int) -> dict:
    """The output head alone, forward + backward of the log-probs and entropies of `tokens` tokens at hidden 64:
    our tiled head against the plain expression (the one `token_logprobs(chunk_size=0)` evaluates)."""
    import torch

    from rlvr.logprobs import head_logprobs
    from rlvr.losses import entropy_from_logits

    torch.manual_seed(0)
    head = torch.nn.Linear(64, VOCAB, bias=False)
    h = torch.randn(tokens, 64, requires_grad=True)
    t = torch.randint(0, VOCAB, (tokens,))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        if chunked:
            logp, _ = head_logprobs(head, h, t, with_entropy=True)
        else:
            z = head(h).float()  # (K, V)
            logp = z.gather(-1, t[:, None]).squeeze(-1) - torch.logsumexp(z, -1)
            with torch.no_grad():
                entropy_from_logits(z)
        logp.sum().backward()
        times.append(time.perf_counter() - t0)
        h.grad = head.weight.grad = None
    return {"times": times}


def child(args: list[str]) -> None:
    import torch

    which, model, steps, run_dir, threads = args[0], Path(args[1]), int(args[2]), Path(args[3]), int(args[4])
    if which in ("ours", "trl"):
        vs_trl.child(which, model, steps, run_dir, threads, PART1)
        return
    torch.set_num_threads(threads)
    if which.startswith("head"):
        res = run_head(which == "head-tiled", HEAD_TOKENS, steps)
    else:
        res = run_update(model, steps, run_dir, padding_free=which == "padding-free")
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print("RESULT " + json.dumps(res), flush=True)


def alternate(names: tuple[str, str], model: Path, tmp: Path, args: argparse.Namespace) -> dict[str, dict]:
    """Each of `names` in a fresh process, alternating, `args.rounds` times: median s after warm-up, peak RSS."""
    out = {n: {"times": [], "rss": 0.0, "last": {}} for n in names}
    for rnd in range(args.rounds):
        for n in names:
            cmd = [sys.executable, __file__, "--child", n, str(model), str(args.steps), str(tmp / f"{n}{rnd}"), str(args.threads)]
            res = vs_trl.run_child(cmd, n)
            kept = res["times"][args.warmup :]
            extra = {k: res[k] for k in ("mean_len", "micro_batches", "real_tokens", "padded_tokens") if k in res}
            print(f"  round {rnd} {n:12s}: s {' '.join(f'{t:.2f}' for t in kept)}  peak RSS {res['peak_rss_mb']:.0f} MB  {extra}",
                  flush=True)  # fmt: skip
            out[n]["times"] += kept
            out[n]["rss"] = max(out[n]["rss"], res["peak_rss_mb"])
            out[n]["last"] = res
    for n in names:
        out[n]["median"] = statistics.median(out[n]["times"])
        print(f"{n:12s} median {out[n]['median']:8.2f} s   peak RSS {out[n]['rss']:7.0f} MB")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="steps per run, warm-up included")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2, help="runs of each side, alternating")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads in every run")
    ap.add_argument("--parts", default="trl,padding", help="comma-separated: head (the output head alone, tiled vs "
                    "plain), trl (part 1), padding (part 2)")  # fmt: skip
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    import os

    import torch

    print(f"torch {torch.__version__}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs; model: vocabulary {VOCAB}, hidden 64, 2 layers, fp32")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        make_model(model)
        lines = []
        parts = args.parts.split(",")
        if "head" in parts:
            print(f"head alone: {HEAD_TOKENS} tokens x hidden 64 x vocabulary {VOCAB}, log-probs + entropies, forward + backward")
            ph = alternate(("head-plain", "head-tiled"), model, Path(tmp), args)
            lines.append(f"head: tiled/plain peak RSS {ph['head-tiled']['rss'] / ph['head-plain']['rss']:.2f}, "
                         f"speedup {ph['head-plain']['median'] / ph['head-tiled']['median']:.2f}")  # fmt: skip
        if "trl" in parts:
            import trl

            print(f"part 1: trl {trl.__version__} vs ours, {PART1.prompts} prompt x {PART1.generations} completions x "
                  f"{PART1.new_tokens} new tokens, beta 0")  # fmt: skip
            p1 = alternate(("trl", "ours"), model, Path(tmp), args)
            split = p1["ours"]["last"]["split"]
            print(f"ours, last run's medians: rollout {statistics.median(split['rollout'][args.warmup:]):.2f} s, "
                  f"update {statistics.median(split['update'][args.warmup:]):.2f} s")  # fmt: skip
            lines += [f"memory ratio: {p1['ours']['rss'] / p1['trl']['rss']:.2f}",
                      f"speedup: {p1['trl']['median'] / p1['ours']['median']:.2f}"]  # fmt: skip
        if "padding" in parts:
            print(f"part 2: our update, {PART2_PROMPTS} prompts x {PART2_GENERATIONS} completions of {MIN_LEN}..{MAX_LEN} "
                  f"tokens, padded ({ROWS} rows per micro-batch) vs padding-free ({ROWS} x (prompt + {MAX_LEN}) tokens)")  # fmt: skip
            p2 = alternate(("padded", "padding-free"), model, Path(tmp), args)
            lines.append(f"padding-free speedup: {p2['padded']['median'] / p2['padding-free']['median']:.2f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
