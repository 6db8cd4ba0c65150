"""Generation throughput and GRPO step time: HF `generate` vs the vLLM backend, in one run.

Builds one tiny Qwen2 (random weights, ~2.7M parameters, byte-level tokenizer)
in a temporary directory and measures, on the same machine and workload:
  1. tokens/s of HF `generate` (HFGenerator) and of the vLLM backend
     (VLLMGenerator, in-process engine) for fp32 and bf16: `--prompts` prompts
     x `--new-tokens` sampled tokens, best of `--repeats`;
  2. engine startup (import of vllm, then engine build) and one weight push;
  3. GRPO seconds per step (configs/smoke_grpo.yaml, arithmetic task) with
     `generation.backend` hf and vllm: runs alternate, median over all steps
     after each run's first.
It prints ratios against the HF baseline measured in the same run; it asserts
no speed (not a test). Needs vLLM installed (docs/vllm.md).

    python benchmarks/generation.py                # full run, ~5 min on 2 CPU cores
    python benchmarks/generation.py --skip-grpo    # throughput only
    python benchmarks/generation.py --skip-throughput --grpo-new-tokens 128   # GRPO only, longer completions
"""

from __future__ import annotations

import os
import sys

# benchmarks/sandbox.py is named like the package: keep this folder off the import path (workers inherit it)
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _HERE]

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

VOCAB = 4096
STEP_TIMES = ("step", "rollout", "update", "weight_sync")  # the trainer's time/* metrics, per GRPO step


def byte_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """Byte-level BPE with no merges (one token per byte) padded to VOCAB ids that all decode."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # 256 printable stand-ins for bytes
    vocab = {"<pad>": 0, "<eos>": 1}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    i = 0
    while len(vocab) < VOCAB:  # two-byte tokens: never produced by encoding, but a random model samples them
        vocab.setdefault(alphabet[i // 256] + alphabet[i % 256], len(vocab))
        i += 1
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def tiny_model(path: Path) -> None:
    torch.manual_seed(0)
    config = transformers.Qwen2Config(vocab_size=VOCAB, hidden_size=256, intermediate_size=512, num_hidden_layers=3,
                                      num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=512,
                                      tie_word_embeddings=True, eos_token_id=1, pad_token_id=0, bos_token_id=None)
    model = transformers.Qwen2ForCausalLM(config)
    model.save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    print(f"model: Qwen2 {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters at {path}")


def throughput(generators: dict, prompts: list[list[int]], new_tokens: int, repeats: int) -> dict[str, float]:
    """Best tokens/s of each generator; rounds alternate between them so load from elsewhere hits all alike."""
    from rlvr.generation.base import SamplingParams

    sampling = SamplingParams(temperature=1.0, max_new_tokens=new_tokens, seed=0)
    best = dict.fromkeys(generators, 0.0)
    for gen in generators.values():
        gen.generate(prompts[:2], 1, sampling)  # warm-up: lazy kernels, allocator
    for _ in range(repeats):
        for name, gen in generators.items():
            t0 = time.perf_counter()
            groups = gen.generate(prompts, 1, sampling)
            n_tok = sum(len(c.token_ids) for g in groups for c in g)  # EOS may end a few early
            best[name] = max(best[name], n_tok / (time.perf_counter() - t0))
    return best


def grpo_step_seconds(
    path: Path, backend: str, steps: int, new_tokens: int, run_dir: Path
) -> tuple[dict[str, list[float]], float]:
    """Step/rollout/update seconds of each step after the first, and the run's wall seconds (setup included).

    Each run is a fresh process: one engine per training process, as in real use."""
    import subprocess

    t0 = time.perf_counter()
    args = [backend, str(path), str(steps), str(new_tokens), str(run_dir)]
    subprocess.run([sys.executable, __file__, "--grpo-run", *args], check=True)
    wall = time.perf_counter() - t0
    from rlvr.metrics import read_metrics

    rows = read_metrics(run_dir / backend / "metrics.jsonl")
    rows = rows[1:] or rows  # the first step pays for lazy initialisation
    return {k: [r[f"time/{k}"] for r in rows] for k in STEP_TIMES}, wall


def grpo_run(path: Path, backend: str, steps: int, new_tokens: int, run_dir: Path) -> None:
    from rlvr.config import load_config
    from rlvr.trainers.grpo import train

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs" / "smoke_grpo.yaml", [
        f"model.name_or_path={path}", f"generation.backend={backend}", f"max_steps={steps}", "save_every=0",
        f"run_dir={run_dir / backend}", "generation.vllm.dtype=float32", "generation.vllm.max_model_len=512",
        f"generation.max_new_tokens={new_tokens}", "generation.num_generations=8", "grpo.prompts_per_step=8",
        # kl 0 (TRL's default beta): the reference forward costs both backends the same, and leaving it
        # out measures what the backend changes (rollout and weight push) against less unrelated work
        "grpo.micro_batch_size=16", "grpo.num_iterations=1", "grpo.kl_coef=0.0",
    ])  # fmt: skip
    train(cfg)


def throughput_part(args, path: Path, tokenizer) -> None:
    """Tokens/s of HF and vLLM in fp32 and bf16, engine startup and weight-push time; printed."""
    from rlvr.generation import VLLMOptions
    from rlvr.generation.base import SamplingParams
    from rlvr.generation.hf import HFGenerator

    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(2, VOCAB, (args.prompts, args.prompt_len), generator=g).tolist()
    work = f"{args.prompts} prompts x {args.new_tokens} new tokens (prompt {args.prompt_len}), sampled, T=1"
    t0 = time.perf_counter()
    from vllm import LLM  # noqa: F401  (`import vllm` alone is lazy and hides most of this)

    t_import = time.perf_counter() - t0
    from rlvr.generation.vllm import VLLMGenerator

    results: dict[str, float] = {}
    startup, first_call, sync = {}, {}, {}
    for dtype, name in ((torch.float32, "float32"), (torch.bfloat16, "bfloat16")):
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
        engine = VLLMGenerator(str(path), tokenizer, VLLMOptions(dtype=name, max_model_len=512))
        startup[name] = engine.startup_s
        t0 = time.perf_counter()  # what a first rollout pays beyond its work (lazy kernels, compiles)
        engine.generate(prompts[:2], 1, SamplingParams(temperature=1.0, max_new_tokens=8, seed=0))
        first_call[name] = time.perf_counter() - t0
        hf = HFGenerator(model, tokenizer, batch_size=args.prompts)
        best = throughput({"hf": hf, "vllm": engine}, prompts, args.new_tokens, args.repeats)
        results.update({f"{k} {name}": v for k, v in best.items()})
        engine.update_weights(model)
        engine.update_weights(model)  # second push: steady state
        sync[name] = engine.last_sync_s
        del engine

    print(f"\nthroughput, {work}:")
    for dtype in ("float32", "bfloat16"):
        hf, vl = results[f"hf {dtype}"], results[f"vllm {dtype}"]
        print(f"  {dtype:9s} HF {hf:8.0f} tok/s   vLLM {vl:8.0f} tok/s   vLLM/HF {vl / hf:5.2f}x")
    print(f"vLLM startup: import {t_import:.1f} s (once per process); engine fp32 {startup['float32']:.1f} s "
          f"(first generate of 2 x 8 tokens {first_call['float32']:.2f} s), bf16 {startup['bfloat16']:.1f} s "
          f"(second engine in the process); weight push fp32 {sync['float32'] * 1e3:.0f} ms, "
          f"bf16 {sync['bfloat16'] * 1e3:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--grpo-steps", type=int, default=6)
    ap.add_argument("--grpo-rounds", type=int, default=3)
    ap.add_argument("--grpo-new-tokens", type=int, default=64)
    ap.add_argument("--skip-grpo", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--grpo-run", nargs=5, metavar=("BACKEND", "MODEL", "STEPS", "NEW_TOKENS", "RUN_DIR"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    if args.grpo_run:  # the child process of grpo_step_seconds
        backend, model, steps, new_tokens, run_dir = args.grpo_run
        grpo_run(Path(model), backend, int(steps), int(new_tokens), Path(run_dir))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")

    from rlvr.allocator import keep_freed_memory

    keep_freed_memory()  # as the trainer does on CPU: both backends' runs below get it too
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny"
        tiny_model(path)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        if not args.skip_throughput:
            throughput_part(args, path, tokenizer)
        if not args.skip_grpo:
            print(f"\nGRPO ({args.grpo_rounds} rounds x {args.grpo_steps} steps, 8 prompts x 8 generations x "
                  f"<={args.grpo_new_tokens} tokens, one update per batch, kl 0, fp32, each run in a fresh process):")
            times = {b: {k: [] for k in STEP_TIMES} for b in ("hf", "vllm")}
            for rnd in range(args.grpo_rounds):  # alternate, so load from elsewhere hits both alike
                for backend in ("hf", "vllm"):
                    t, wall = grpo_step_seconds(path, backend, args.grpo_steps, args.grpo_new_tokens,
                                                Path(tmp) / f"runs{rnd}")
                    for k, v in t.items():
                        times[backend][k] += v
                    med = {k: statistics.median(v) for k, v in t.items()}
                    print(f"  {backend:5s} {med['step']:6.2f} s/step (rollout {med['rollout']:.2f}, update "
                          f"{med['update']:.2f}, weight push {med['weight_sync']:.2f}; medians after the first step); "
                          f"whole run {wall:.1f} s")
            med = {b: {k: statistics.median(v) for k, v in t.items()} for b, t in times.items()}
            print(f"  all rounds, medians: HF {med['hf']['step']:.2f} s/step (rollout {med['hf']['rollout']:.2f}), "
                  f"vLLM {med['vllm']['step']:.2f} s/step (rollout {med['vllm']['rollout']:.2f}); vLLM/HF rollout "
                  f"{med['vllm']['rollout'] / med['hf']['rollout']:.2f}x, step time "
                  f"{med['vllm']['step'] / med['hf']['step']:.2f}x (< 1: vLLM faster)")
    sys.stdout.flush()


if __name__ == "__main__":  # vLLM may spawn processes that re-import this module
    main()
