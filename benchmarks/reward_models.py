"""Reward models end to end on synthetic arithmetic the tiny model can learn: ORM pair accuracy and PRM
first-wrong-step detection on held-out problems, GRPO with PRM process rewards + the verifier against the
verifier alone on the same budget, and best-of-N accuracy against N picked by the ORM, the PRM and the verifier.

The problems are sums of three digits ("3+5+2="); the policy writes traces ("3+5=8. 8+2=10. \\boxed{10}").
1. sft: tiny-qwen2 warm-started on the traces of 800 training problems (the base of every model below).
2. prm/orm, for two slip sizes: solutions with one wrong step, the step off by 10-20 ("big", a wrong tens
   digit) or by 1-5 ("small", exact addition needed), 4 per training problem; the held-out problems are the
   test split (never trained on). PRM: `eval/first_error_rate` (the first step it scores <= 0.5 is the first
   wrong one, over solutions with a wrong step) against `eval/first_error_chance` (a uniform guess among the
   steps, 1/3). ORM: held-out pair accuracy (chosen = the right solution).
3. grpo: two runs from the SFT policy, same prompts, steps and seed: the `math` verifier alone, and the verifier
   plus the big-slip PRM's process-supervised advantages (`process_advantages: sum`); held-out accuracy =
   mean pass@1 of 4 samples at temperature 1 on the test split, before and after.
4. bestofn: 16 samples per test problem from the SFT policy (the same samples in every run: same seed),
   picked by the ORM, by the PRM (min over steps), and by the verifier (pass@n, the oracle).

    python benchmarks/reward_models.py --out runs/bench_rm            # everything (~1 h on 2 loaded cores)
    python benchmarks/reward_models.py --out runs/bench_rm --parts grpo --grpo-steps 100

Each run is `python -m rlvr.cli train|bestofn CONFIG` in a fresh process with one torch thread; a part whose
run folder already has its result is not run again (delete the folder to redo it). Results: OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# run as a script, this folder is first on sys.path and its sandbox.py would shadow the `sandbox` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import yaml  # noqa: E402

from rlvr.metrics import read_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = {"num_operands": 3, "max_value": 9, "ops": "+"}  # 800 train / ~170 test problems in all
SLIPS = {"big": (10, 20), "small": (1, 5)}


def launch(out: Path, name: str, cfg: dict, args, command: str = "train") -> float:
    run_dir = out / name
    cfg = {"run_dir": str(run_dir), "seed": 0, "report_to": ["jsonl"], "save_every": 0, **cfg}
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "bench_config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": pythonpath}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rlvr.cli", command, str(path)], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def last(run_dir: Path, key: str) -> dict:
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if key in r]
    return rows[-1]


def sft(out: Path, args) -> dict:
    cfg = {"algorithm": "sft", "model": {"name_or_path": "tiny-qwen2"},
           "task": {"name": "arithmetic", "args": {"num_samples": 800, "seed": 1, "split": "train", **PROBLEMS}},
           "sft": {"batch_size": 32, "micro_batch_size": 32, "epochs": 8, "max_length": 64},
           "optim": {"lr": 3e-3, "lr_scheduler": "cosine", "warmup_steps": 20}}  # fmt: skip
    wall = launch(out, "sft", cfg, args)
    return {"wall_s": wall, "loss": last(out / "sft", "loss")["loss"]}


def reward_model(out: Path, args, kind: str, slips: str) -> dict:
    lo, hi = SLIPS[slips]
    data = {"name": "arithmetic_steps" if kind == "prm" else "arithmetic_pairs",
            "args": {"seed": 0, "split": "train", "min_delta": lo, "max_delta": hi, "per_problem": 4, "num_samples": 800, **PROBLEMS}}
    held = {"name": data["name"], "args": {**data["args"], "seed": 1, "split": "test", "per_problem": 1, "num_samples": 150}}
    block = {"batch_size": 32, "micro_batch_size": 32, "max_steps": args.rm_steps, "epochs": 100, "max_length": 64}
    if kind == "prm":
        block["separator"] = " "  # the trace's own delimiter: the PRM reads the policy's text as written
    cfg = {"algorithm": kind, "model": {"name_or_path": str(out / "sft" / "final")}, "task": data,
           "eval": {"task": held, "every": max(args.rm_steps // 4, 1)}, kind: block,
           "optim": {"lr": 1e-3, "lr_scheduler": "cosine", "warmup_steps": 20}}  # fmt: skip
    name = f"{kind}_{slips}"
    wall = launch(out, name, cfg, args)
    evals = [{k: v for k, v in r.items() if k.startswith("eval/") or k == "step"} for r in read_metrics(out / name / "metrics.jsonl")
             if any(k.startswith("eval/") for k in r)]  # fmt: skip
    return {"wall_s": wall, "slips": [lo, hi], "evals": evals}


def grpo(out: Path, args, with_prm: bool) -> dict:
    cfg = {"algorithm": "grpo", "max_steps": args.grpo_steps, "model": {"name_or_path": str(out / "sft" / "final")},
           "task": {"name": "arithmetic", "args": {"num_samples": 800, "seed": 2, "split": "train", **PROBLEMS}},
           "eval": {"task": {"name": "arithmetic", "args": {"num_samples": 150, "seed": 3, "split": "test", **PROBLEMS}},
                    "every": max(args.grpo_steps // 3, 1), "temperature": 1.0, "samples_per_problem": 4},
           "verifier": {"name": "math", "num_workers": 1},
           "generation": {"num_generations": 8, "max_new_tokens": 40, "temperature": 1.0},
           "grpo": {"prompts_per_step": 16, "micro_batch_size": 128},
           "optim": {"lr": 1e-4}}  # fmt: skip
    if with_prm:
        cfg["reward_model"] = {"path": str(out / "prm_big" / "final"), "kind": "prm", "separator": " ",
                               "step_delimiter": " ", "process_advantages": "sum"}  # fmt: skip
    name = "grpo_prm" if with_prm else "grpo_verifier"
    wall = launch(out, name, cfg, args)
    rows = read_metrics(out / name / "metrics.jsonl")
    evals = [(r["step"], r["eval/accuracy"]) for r in rows if "eval/accuracy" in r]
    train = [r for r in rows if "accuracy" in r]
    k = max(1, len(train) // 5)
    return {"wall_s": wall, "eval_accuracy": evals,
            "train_accuracy_first_last": [sum(r["accuracy"] for r in train[:k]) / k, sum(r["accuracy"] for r in train[-k:]) / k],
            "rm": {key: train[-1][key] for key in train[-1] if key.startswith("rm/")}}  # fmt: skip


def bestofn(out: Path, args, scorer: str) -> dict:
    cfg = {"algorithm": "bestofn", "model": {"name_or_path": str(out / "sft" / "final")},
           "task": {"name": "arithmetic", "args": {"num_samples": 150, "seed": 3, "split": "test", **PROBLEMS}},
           "verifier": {"name": "math", "num_workers": 1},
           "generation": {"max_new_tokens": 40, "temperature": 1.0},
           "bestofn": {"num_samples": 16, "batch_size": 16}}  # fmt: skip
    if scorer != "verifier":
        cfg["reward_model"] = {"path": str(out / f"{scorer}_big" / "final"), "kind": {"rm": "orm"}.get(scorer, scorer), "verifier_weight": 0.0,
                               "separator": " ", "step_delimiter": " ", "prm_aggregate": "min"}  # fmt: skip
    name = f"bestofn_{scorer}"
    wall = launch(out, name, cfg, args, command="bestofn")
    return {"wall_s": wall, **json.loads((out / name / "summary.json").read_text())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench_rm"))
    ap.add_argument("--parts", default="sft,prm,orm,grpo,bestofn")
    ap.add_argument("--rm-steps", type=int, default=200)
    ap.add_argument("--grpo-steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    out = args.out.resolve()
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    jobs = {
        "sft": [("sft", lambda: sft(out, args))],
        "prm": [(f"prm_{s}", lambda s=s: reward_model(out, args, "prm", s)) for s in SLIPS],
        "orm": [(f"rm_{s}", lambda s=s: reward_model(out, args, "rm", s)) for s in SLIPS],
        "grpo": [("grpo_verifier", lambda: grpo(out, args, False)), ("grpo_prm", lambda: grpo(out, args, True))],
        "bestofn": [(f"bestofn_{s}", lambda s=s: bestofn(out, args, s)) for s in ("verifier", "rm", "prm")],
    }
    for part in args.parts.split(","):
        for name, job in jobs[part]:
            if name in results:
                print(f"{name}: done before, kept")
                continue
            print(f"{name} ...", flush=True)
            results[name] = job()
            results_file.parent.mkdir(parents=True, exist_ok=True)
            results_file.write_text(json.dumps(results, indent=1))
            print(json.dumps(results[name])[:600], flush=True)
    print(f"results: {results_file}")


if __name__ == "__main__":
    main()
