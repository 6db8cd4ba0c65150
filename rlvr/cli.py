"""Command line: `rlvr train CONFIG [key.path=value ...]`, `rlvr eval CONFIG | --rescore RUN_DIR`,
`rlvr bestofn CONFIG [...]`, `rlvr distill CONFIG [--stage S]`, `rlvr demo [NAME]`, `rlvr list`.

The config names the algorithm; the CLI looks its trainer up here and is the
only place that imports trainers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

TRAINERS = {
    "grpo": "rlvr.trainers.grpo",
    "sft": "rlvr.trainers.sft",
    "ppo": "rlvr.trainers.ppo",
    "dpo": "rlvr.trainers.dpo",
    "kto": "rlvr.trainers.kto",
    "rm": "rlvr.trainers.reward_model",
    "prm": "rlvr.trainers.prm",
    "bestofn": "rlvr.bestofn",
    "eval": "rlvr.evaluate.command",
    "distill": "rlvr.distill.pipeline",
    "opd": "rlvr.trainers.opd",
}


def run_training(cfg) -> dict[str, float]:
    if cfg.algorithm not in TRAINERS:
        raise ValueError(f"algorithm: {cfg.algorithm!r} is not one of {sorted(TRAINERS)}")
    return importlib.import_module(TRAINERS[cfg.algorithm]).train(cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rlvr", description="RL of LLM reasoning with verifiable rewards")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train from a YAML config (the config names the algorithm)")
    t.add_argument("config", help="path to a YAML config")
    t.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=1e-5 grpo.kl_coef=0.01")
    e = sub.add_parser("eval", help="evaluate a model on a task: pass@k, maj@k, avg@n with intervals, samples.jsonl")
    e.add_argument("config", nargs="?", help="YAML config: `algorithm: eval`, or a training config (its eval block)")
    e.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.name_or_path=runs/x/final eval.k=[1,8]")
    e.add_argument("--rescore", metavar="RUN_DIR", help="recompute RUN_DIR's summary from samples.jsonl, no generation")
    e.add_argument("--reverify", action="store_true", help="with --rescore: run the verifier again on the completions")
    x = sub.add_parser("distill", help="distill a teacher's traces into a student: generate, filter, train (SFT)")
    x.add_argument("config", help="YAML config with a distill block (teacher, filters) and the student as model")
    x.add_argument("overrides", nargs="*", help="dotted overrides, e.g. distill.teacher=runs/x/final")
    x.add_argument("--stage", action="append", choices=["generate", "filter", "train"],
                   help="run only this stage (repeatable); default: distill.stages")
    d = sub.add_parser("demo", help="CPU demo from configs/demo/ (default `rl`: SFT on easy problems, GRPO on hard)")
    d.add_argument("name", nargs="?", default="rl", help="which demo (default: rl)")
    d.add_argument("--seed", type=int, default=0, help="seed of every phase (data order, sampling)")
    d.add_argument("--run-dir", default="runs/demo", help="where each phase's checkpoints, metrics and plot go")
    d.add_argument("--configs", default=None, help="folder of the demo's YAML configs (default: configs/demo/)")
    b = sub.add_parser("bestofn", help="best-of-N / rejection sampling from a config (writes SFT rows and DPO pairs)")
    b.add_argument("config", help="path to a YAML config (its algorithm is ignored)")
    b.add_argument("overrides", nargs="*", help="dotted overrides, e.g. bestofn.num_samples=16")
    sub.add_parser("list", help="list registered verifiers and tasks")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from rlvr.config import ConfigError

    try:
        if args.cmd in ("train", "bestofn"):
            from rlvr.config import load_config

            cfg = load_config(args.config, args.overrides)
            if args.cmd == "bestofn":
                cfg.algorithm = "bestofn"
            result = run_training(cfg)
            print({k: round(v, 4) for k, v in result.items() if isinstance(v, float)})
        elif args.cmd == "eval":
            from rlvr.evaluate import command

            if args.rescore and (args.config or args.overrides):
                raise ValueError("rlvr eval: give a CONFIG or --rescore RUN_DIR, not both")
            if args.rescore:
                command.rescore(args.rescore, reverify_rows=args.reverify)
            elif args.config:
                from rlvr.config import load_config

                command.run(load_config(args.config, args.overrides))
            else:
                raise ValueError("rlvr eval: give a CONFIG (YAML) or --rescore RUN_DIR")
        elif args.cmd == "distill":
            from rlvr.config import load_config
            from rlvr.distill.pipeline import run

            run(load_config(args.config, args.overrides), stages=args.stage)
        elif args.cmd == "demo":
            from rlvr.demo import run_demo

            run_demo(args.name, args.run_dir, args.seed, args.configs)
        elif args.cmd == "list":
            from tasks import list_tasks
            from verifiers import list_verifiers

            print("verifiers:", ", ".join(list_verifiers()))
            print("tasks:", ", ".join(list_tasks()))
    except (ConfigError, FileNotFoundError, KeyError, ValueError) as e:
        print(f"rlvr: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
