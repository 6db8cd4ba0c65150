"""The vLLM backend on a GPU: checks against HF and timings, one part per fresh process.

Builds, offline, a random Qwen2 with Qwen2.5-0.5B's shape (hidden 896, 24 layers,
14 heads, 2 KV heads, intermediate 4864) and the demo's tokenizer, then runs each
part in its own process (a clean GPU and allocator each) and prints one JSON line
per part:
  engine   bf16: engine start, greedy vs HF, push after an optimizer step (outputs
           follow the new weights), LoRA pushed merged, tokens/s HF vs vLLM
  graphs   the same without LoRA, with CUDA graphs and torch.compile (enforce_eager false)
  fp32     the same greedy and push checks in fp32
  sleep    sleep mode: free GPU memory awake / asleep / after the push, outputs after wake
  grpo     `rlvr.trainers.grpo.train` with the HF backend, vLLM, and vLLM + sleep mode
           (grpo2: HF and vLLM only; grpo_sleep: vLLM + sleep mode only)
Greedy agreement is reported three ways: identical sequences, first divergence,
and teacher-forced (the share of vLLM's greedy tokens that are HF's argmax on the
same prefix, with HF's top-2 margin where they differ: a near tie means rounding).
It asserts nothing (a report, not a test); CI never runs it (it needs a GPU and vLLM).

    python benchmarks/gpu_vllm.py --out /tmp/gpu_vllm    # engine, sleep, grpo, fp32
    python benchmarks/gpu_vllm.py --out /tmp/gpu_vllm --parts graphs,sleep
    python benchmarks/gpu_vllm.py --out /tmp/gpu_vllm --small --new-tokens 16   # try it on CPU
Results on an H100: docs/vllm.md, "Validated on GPU".
"""

from __future__ import annotations

import os
import sys

# benchmarks/sandbox.py is named like the package: keep this folder off the import path (workers inherit it)
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _HERE]

import argparse
import copy
import json
import statistics
import subprocess
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local model directories only; no network lookups
ROOT = Path(_HERE).parent
GREEDY_TOKENS = 32
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # CPU only to try the script itself (--small)


def build_model_dir(path: Path, small: bool) -> None:
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from rlvr.tiny_models import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path("tiny-qwen2"))  # the tiny models' tokenizer, built offline
    torch.manual_seed(0)
    shape = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2)  # Qwen2.5-0.5B
    if small:
        shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                     num_key_value_heads=1)
    cfg = Qwen2Config(vocab_size=len(tok), **shape, max_position_embeddings=2048,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.eos_token_id)
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, vocab {len(tok)}, at {path}")


def load(path: Path, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(DEVICE).eval()
    return model, tok


def prompts(tok, n: int, seed: int = 1) -> list[list[int]]:
    from tasks import get_task

    return [tok(s.prompt)["input_ids"] for s in get_task("arithmetic", num_samples=n, seed=seed, num_operands=3,
                                                         max_value=99, ops="+-*")]


@torch.no_grad()
def hf_greedy(model, ps: list[list[int]], eos: int, max_new: int = GREEDY_TOKENS) -> list[list[int]]:
    """One unpadded `generate` per prompt, so padding plays no part in the comparison."""
    outs = []
    for p in ps:
        ids = torch.tensor([p], device=DEVICE)
        seq = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
                             eos_token_id=eos, pad_token_id=eos)[0, len(p):].tolist()
        outs.append(seq[: seq.index(eos) + 1] if eos in seq else seq)
    return outs


@torch.no_grad()
def agreement(model, ps: list[list[int]], got: list[list[int]], want: list[list[int]], logprobs=None) -> dict:
    """How far vLLM's greedy tokens `got` agree with HF's `want` for the same weights."""
    first = []
    for a, b in zip(got, want):
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        first.append(k if k is not None else (None if len(a) == len(b) else min(len(a), len(b))))
    diverged = [k for k in first if k is not None]
    same_argmax = total = 0
    margins, gaps = [], []
    for i, (p, c) in enumerate(zip(ps, got)):
        ids = torch.tensor([p + c], device=DEVICE)
        logits = model(ids).logits[0, len(p) - 1 : -1].float()  # (C, V)
        top2 = logits.topk(2, -1)
        hit = top2.indices[:, 0] == torch.tensor(c, device=DEVICE)
        same_argmax += int(hit.sum())
        total += len(c)
        margins += (top2.values[:, 0] - top2.values[:, 1])[~hit].tolist()
        if logprobs is not None and logprobs[i] is not None:
            hf_lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c, device=DEVICE)[:, None])[:, 0]
            gaps += (hf_lp - torch.tensor(logprobs[i], device=DEVICE)).abs().tolist()
    return {
        "identical_frac": sum(k is None for k in first) / len(first),
        "first_divergence": diverged,
        "teacher_forced_argmax_agree": same_argmax / max(total, 1),
        "max_hf_top2_margin_where_differs": max(margins) if margins else None,
        "logprob_gap_mean": statistics.fmean(gaps) if gaps else None,
        "logprob_gap_max": max(gaps) if gaps else None,
    }


def optimizer_step(model, ps: list[list[int]], lr: float) -> None:
    """One AdamW step on next-token loss over the prompts: every weight moves by about `lr`."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    ids = torch.tensor([p[:8] for p in ps if len(p) >= 8], device=DEVICE)
    model(ids, labels=ids).loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()


def vllm_greedy(gen, ps: list[list[int]]) -> tuple[list[list[int]], list]:
    from rlvr.generation.base import SamplingParams

    groups = gen.generate(ps, 1, SamplingParams(temperature=0.0, max_new_tokens=GREEDY_TOKENS))
    return [g[0].token_ids for g in groups], [g[0].logprobs for g in groups]


def mark(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def mem_free_gib() -> float:
    return torch.cuda.mem_get_info()[0] / 2**30 if DEVICE == "cuda" else float("nan")


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def part_engine(path: Path, dtype: str, throughput: bool, new_tokens: int, eager: bool = True) -> dict:
    from rlvr.generation import VLLMOptions
    from rlvr.generation.base import SamplingParams
    from rlvr.generation.hf import HFGenerator
    from rlvr.generation.vllm import VLLMGenerator

    res: dict = {"part": f"engine-{dtype}" + ("" if eager else "-cudagraphs")}
    model, tok = load(path, getattr(torch, dtype))
    eos = tok.eos_token_id
    ps = prompts(tok, 16)
    t0 = time.perf_counter()
    import vllm

    res["import_vllm_s"] = time.perf_counter() - t0
    gen = VLLMGenerator(str(path), tok, VLLMOptions(dtype=dtype, gpu_memory_utilization=0.3, enforce_eager=eager))
    res["engine_start_s"] = gen.startup_s
    mark("engine up")
    got, lps = vllm_greedy(gen, ps)  # the checkpoint the engine loaded
    res["greedy_vs_hf_loaded"] = agreement(model, ps, got, hf_greedy(model, ps, eos), lps)
    gen.update_weights(model)  # a push of the same weights changes nothing
    got2, _ = vllm_greedy(gen, ps)
    res["same_after_push_of_same_weights"] = got2 == got

    mark("greedy checked")
    before = copy.deepcopy(model)
    optimizer_step(model, ps, lr=1e-3)
    pushes = []
    for _ in range(3):
        gen.update_weights(model)
        pushes.append(gen.last_sync_s * 1000)
    res["push_ms"] = pushes
    new, lps = vllm_greedy(gen, ps)
    res["outputs_changed_after_step"] = sum(a != b for a, b in zip(new, got)) / len(got)
    res["greedy_vs_hf_after_step"] = agreement(model, ps, new, hf_greedy(model, ps, eos), lps)
    # the sampler's log-probs against the weights before the step: far larger than against the new ones
    res["logprob_gap_vs_old_weights"] = agreement(before, ps, new, new, lps)["logprob_gap_mean"]
    del before

    if dtype == "bfloat16" and eager:
        import peft

        mark("push checked")
        lora = peft.get_peft_model(model, peft.LoraConfig(r=16, lora_alpha=32,
                                                          target_modules=["q_proj", "v_proj", "down_proj"]))
        with torch.no_grad():  # B starts at zero: make the adapter matter
            for name, p in lora.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
        lora.eval()
        t0 = time.perf_counter()
        gen.update_weights(lora)
        res["lora_push_ms"] = (time.perf_counter() - t0) * 1000
        lgot, lps = vllm_greedy(gen, ps)
        res["lora_outputs_differ_from_base"] = sum(a != b for a, b in zip(lgot, new)) / len(new)
        res["lora_greedy_vs_hf_peft"] = agreement(lora, ps, lgot, hf_greedy(lora, ps, eos), lps)
        model = lora.unload()  # the base module again, adapters removed
        gen.update_weights(model)

    if throughput:
        mark("lora checked")
        hf = HFGenerator(model, tok, batch_size=256)
        ps64 = prompts(tok, 64, seed=2)
        sampling = SamplingParams(temperature=1.0, max_new_tokens=new_tokens, seed=0)
        for g in (hf, gen):
            g.generate(ps64[:4], 1, SamplingParams(temperature=1.0, max_new_tokens=8, seed=0))  # warm-up
        for name, g in (("hf", hf, ), ("vllm", gen)):
            runs = []
            for _ in range(2):
                sync()
                t0 = time.perf_counter()
                out = g.generate(ps64, 1, sampling)
                sync()
                dt = time.perf_counter() - t0
                runs.append((sum(len(c[0].token_ids) for c in out), dt))
            n, dt = min(runs, key=lambda r: r[1])
            res[f"throughput_{name}"] = {"tokens": n, "s": dt, "tok_per_s": n / dt}
        res["throughput_vllm_over_hf"] = res["throughput_vllm"]["tok_per_s"] / res["throughput_hf"]["tok_per_s"]
    return res


def part_sleep(path: Path) -> dict:
    from rlvr.generation import VLLMOptions
    from rlvr.generation.vllm import VLLMGenerator

    res: dict = {"part": "sleep"}
    model, tok = load(path, torch.bfloat16)
    eos = tok.eos_token_id
    ps = prompts(tok, 16)
    res["free_gib_before_engine"] = mem_free_gib()
    gen = VLLMGenerator(str(path), tok, VLLMOptions(dtype="bfloat16", gpu_memory_utilization=0.3,
                                                    enable_sleep_mode=True))
    res["engine_start_s"] = gen.startup_s
    res["free_gib_engine_awake"] = mem_free_gib()
    first, _ = vllm_greedy(gen, ps)  # ends asleep
    res["free_gib_after_generate_asleep"] = mem_free_gib()
    again, _ = vllm_greedy(gen, ps)  # asleep, nothing pushed yet: wakes and reloads the checkpoint from disk
    res["same_after_wake_from_disk"] = again == first
    optimizer_step(model, ps, lr=1e-3)
    t0 = time.perf_counter()
    gen.update_weights(model)  # wakes weights, pushes, wakes KV cache
    res["wake_push_ms"] = (time.perf_counter() - t0) * 1000
    res["free_gib_after_update_awake"] = mem_free_gib()
    new, lps = vllm_greedy(gen, ps)
    res["outputs_changed_after_step"] = sum(a != b for a, b in zip(new, first)) / len(first)
    res["greedy_vs_hf_after_step"] = agreement(model, ps, new, hf_greedy(model, ps, eos), lps)
    res["freed_by_sleep_gib"] = res["free_gib_after_generate_asleep"] - res["free_gib_engine_awake"]
    return res


def part_grpo(path: Path, backend: str, sleep: bool, steps: int, lr: float, out: Path) -> dict:
    from rlvr.config import load_config
    from rlvr.metrics import read_metrics
    from rlvr.trainers import grpo

    name = backend + ("-sleep" if sleep else "")
    run = out / f"grpo-{name}"
    cfg = load_config(ROOT / "configs" / "smoke_grpo.yaml", [
        f"model.name_or_path={path}", "model.dtype=bfloat16", f"run_dir={run}", f"max_steps={steps}",
        "save_every=0", f"optim.lr={lr}", "grpo.prompts_per_step=8", "generation.num_generations=8",
        "generation.max_new_tokens=128", "grpo.micro_batch_size=32", "grpo.kl_coef=0.0", "grpo.num_iterations=1",
        "verifier.name=length_limit", "verifier.args={max_chars: 40}", f"generation.backend={backend}",
        f"generation.vllm.enable_sleep_mode={str(sleep).lower()}"])
    t0 = time.perf_counter()
    grpo.train(cfg)
    rows = read_metrics(run / "metrics.jsonl")
    rows = [r for r in rows if "time/step" in r]
    med = lambda k: statistics.median(r[k] for r in rows[1:])  # noqa: E731  (step 1 holds warm-up)
    return {"part": f"grpo-{name}", "total_s": time.perf_counter() - t0, "step_s_median": med("time/step"),
            "rollout_s_median": med("time/rollout"), "update_s_median": med("time/update"),
            "step_s": [round(r["time/step"], 3) for r in rows],
            "completion_len": [round(r["completion_len"], 1) for r in rows],
            "reward": [round(r["reward/mean"], 3) for r in rows],
            "sampler_logp_gap": [round(r.get("sampler_logp_gap", float("nan")), 4) for r in rows],
            "peak_torch_alloc_gib": torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else None,
            "free_gib_at_end": mem_free_gib()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/gpu_vllm"))
    ap.add_argument("--parts", default="engine,sleep,grpo,fp32")
    ap.add_argument("--grpo-steps", type=int, default=5)
    ap.add_argument("--grpo-lr", type=float, default=1e-5, help="small: completion lengths stay put across steps")
    ap.add_argument("--new-tokens", type=int, default=256, help="throughput: 64 prompts x this many sampled tokens")
    ap.add_argument("--timeout", type=int, default=240, help="seconds per part")
    ap.add_argument("--small", action="store_true", help="a 2-layer model, to try the script on CPU")
    ap.add_argument("--child", default="")
    args = ap.parse_args()
    path = args.out / "q05"
    if args.child:
        kind, *rest = args.child.split(":")
        if kind == "engine":
            res = part_engine(path, rest[0], throughput=rest[0] == "bfloat16", new_tokens=args.new_tokens,
                              eager=rest[1:] != ["graphs"])
        elif kind == "sleep":
            res = part_sleep(path)
        else:
            res = part_grpo(path, rest[0], rest[1] == "sleep", args.grpo_steps, args.grpo_lr, args.out)
        print("RESULT " + json.dumps(res), flush=True)
        return

    args.out.mkdir(parents=True, exist_ok=True)
    import transformers

    gpu = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {gpu}", flush=True)
    if not (path / "config.json").exists():
        build_model_dir(path, args.small)
    children = {"engine": ["engine:bfloat16"], "fp32": ["engine:float32"], "sleep": ["sleep"],
                "grpo": ["grpo:hf:-", "grpo:vllm:-", "grpo:vllm:sleep"], "grpo2": ["grpo:hf:-", "grpo:vllm:-"],
                "graphs": ["engine:bfloat16:graphs"], "grpo_sleep": ["grpo:vllm:sleep"]}
    for part in args.parts.split(","):
        for child in children[part]:
            t0 = time.perf_counter()
            cmd = [sys.executable, __file__, "--out", str(args.out), "--grpo-steps", str(args.grpo_steps),
                   "--grpo-lr", str(args.grpo_lr),
                   "--new-tokens", str(args.new_tokens), "--child", child]
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                log, rc = p.stdout + p.stderr, p.returncode
            except subprocess.TimeoutExpired as e:
                text = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or "")  # noqa: E731
                log, rc = f"{text(e.stdout)}{text(e.stderr)}\nTIMEOUT", -1
            (args.out / f"{child.replace(':', '_')}.log").write_text(str(log))
            lines = [line[7:] for line in str(log).splitlines() if line.startswith("RESULT ")]
            summary = lines[0] if lines else str(log)[-3000:]
            print(f"[{child}] rc={rc} {time.perf_counter() - t0:.1f}s", summary, flush=True)


if __name__ == "__main__":
    main()
