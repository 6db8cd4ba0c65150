"""`rlvr demo [NAME]`: end-to-end runs on a CPU in minutes, made of ordinary configs.

A demo is a module in `DEMOS` with `run(run_dir, seed, configs) -> dict[str, float]`. It trains through
`rlvr train`'s own path (`rlvr.cli.run_training`) from the YAML files in `configs/demo/`, and prints each
phase as the `rlvr train ...` command that does the same, so what a reader learns from it is the real
interface. Each phase keeps its run in `run_dir/<phase>/` (default `runs/demo/`: `sft/final`,
`grpo/final`, ...), where a later demo finds the models an earlier one trained.

A phase whose run folder already holds a run of the same config resumes it (a finished one is not
retrained); one that holds a run of a different config is an error, never overwritten or mixed in.

What it does not: download anything (models are tiny ones built offline, data is synthetic), or hide
settings: every number a demo uses is in its configs or on the printed command lines.
"""

from __future__ import annotations

import importlib
import json
import shlex
import time
from pathlib import Path

DEMOS = {"rl": "rlvr.demo.rl", "distill": "rlvr.distill.demo"}  # name -> module with run(run_dir, seed, configs)
DEFAULT_DEMO = "rl"
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "demo"  # the repository's (an editable install)


def run_demo(name: str, run_dir: str | Path, seed: int, configs: str | Path | None = None) -> dict[str, float]:
    if name not in DEMOS:
        raise ValueError(f"rlvr demo: no demo named {name!r}; known: {', '.join(sorted(DEMOS))}")
    configs = Path(configs) if configs is not None else CONFIGS
    if not configs.is_dir():
        raise FileNotFoundError(
            f"rlvr demo: no config folder at {configs} (the demos read the repository's configs/demo/: "
            f"install with `pip install -e .` from a checkout, or pass --configs)"
        )
    return importlib.import_module(DEMOS[name]).run(Path(run_dir), seed, configs)


def _changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The settings that differ between two configs, as "key: old -> new". Keys only one side has are not
    differences: they are fields that another version of rlvr added or removed, at their defaults."""
    keys = []
    for k in sorted(set(old) & set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return keys


def train_phase(config: Path, overrides: list[str]) -> float:
    """Run `rlvr train CONFIG OVERRIDES...` in this process, printing the command first; returns its seconds."""
    from rlvr.cli import run_training
    from rlvr.config import load_config, to_dict

    shown = config.relative_to(Path.cwd()) if config.is_relative_to(Path.cwd()) else config
    print("$ rlvr train " + shlex.join([str(shown), *overrides]), flush=True)
    cfg = load_config(config, overrides)
    saved = Path(cfg.run_dir) / "config.json"
    if saved.is_file():
        changed = _changed_keys(json.loads(saved.read_text()), to_dict(cfg))
        if changed:
            raise ValueError(
                f"{cfg.run_dir} holds a run of another config ({'; '.join(changed[:3])}); "
                f"remove it or pass another --run-dir"
            )
        print(f"  (resuming the run in {cfg.run_dir})", flush=True)
    t0 = time.perf_counter()
    run_training(cfg)
    return time.perf_counter() - t0
