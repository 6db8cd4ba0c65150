"""`rlvr demo`: its configs, its CLI wiring end to end at a tiny scale, and the behaviour summary."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlvr.cli import main
from rlvr.config import load_config
from rlvr.demo import CONFIGS, DEMOS
from rlvr.demo.behaviour import summarize
from rlvr.trainers.runtime import build_task
from rlvr.types import Completion
from tasks.arithmetic import ArithmeticTask
from verifiers.base import Verdict


def test_the_demo_configs_load_and_keep_worked_solutions_off_the_hard_problems():
    sft, grpo = load_config(CONFIGS / "sft.yaml"), load_config(CONFIGS / "grpo.yaml")
    assert (sft.algorithm, grpo.algorithm) == ("sft", "grpo")
    assert grpo.model.name_or_path == f"{sft.run_dir}/final"  # the printed commands chain as written
    # the honest part: SFT sees traces of easy problems only; GRPO and the held-out set are harder, answers only
    easy, hard, held_out = (list(build_task(c, n)) for c, n in ((sft.task, "task"), (grpo.task, "task"),
                                                                 (grpo.eval.task, "eval.task")))  # fmt: skip
    longest_easy = max(len(s.meta["operands"]) for s in easy)
    assert all(len(s.meta["operands"]) > longest_easy for s in hard + held_out)
    assert all("trace" not in s.meta for s in hard + held_out)
    assert not {s.prompt for s in held_out} & ({s.prompt for s in hard} | {s.prompt for s in easy})


def _tiny_configs(folder: Path) -> None:
    """configs/demo/ at a scale that runs in seconds (same keys, fewer problems and steps)."""
    folder.mkdir()
    sft = yaml.safe_load((CONFIGS / "sft.yaml").read_text())
    sft["task"]["args"]["num_samples"] = 32
    sft["sft"].update(epochs=1, batch_size=16, micro_batch_size=16)
    grpo = yaml.safe_load((CONFIGS / "grpo.yaml").read_text())
    grpo["task"]["args"]["num_samples"] = 16
    grpo["eval"]["task"]["args"]["num_samples"] = 4
    grpo.update(max_steps=2, save_every=0)
    grpo["eval"]["every"] = 0
    grpo["grpo"].update(prompts_per_step=2)
    grpo["generation"].update(num_generations=2, max_new_tokens=8)
    (folder / "sft.yaml").write_text(yaml.safe_dump(sft))
    (folder / "grpo.yaml").write_text(yaml.safe_dump(grpo))


def test_rlvr_demo_runs_its_configs_and_prints_them_as_rlvr_train_commands(tmp_path, capsys, tiny_model_dir):
    configs, run_dir = tmp_path / "configs", tmp_path / "runs"
    _tiny_configs(configs)
    assert main(["demo", "--configs", str(configs), "--run-dir", str(run_dir), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert f"$ rlvr train {configs / 'sft.yaml'} seed=1 run_dir={run_dir / 'sft'}" in out
    assert f"model.name_or_path={run_dir / 'sft' / 'final'}" in out
    for phase in ("sft", "grpo"):
        assert (run_dir / phase / "final" / "model.safetensors").is_file()
        assert load_config(run_dir / phase / "config.json").seed == 1
    assert "completions that show steps" in out and "steps the problems need" in out
    assert out.rstrip().splitlines()[-1].startswith("held-out accuracy: ")

    # the same run folder with another seed is another run: an error naming what differs, nothing overwritten
    assert main(["demo", "--configs", str(configs), "--run-dir", str(run_dir), "--seed", "2"]) == 2
    assert "holds a run of another config" in capsys.readouterr().err


def test_an_unknown_demo_is_an_error_listing_the_known_ones(capsys):
    assert main(["demo", "nope"]) == 2
    err = capsys.readouterr().err  # read once: a second readouterr() returns nothing
    assert all(name in err for name in DEMOS)


def test_summarize_counts_steps_right_steps_and_worked_solutions():
    sample = ArithmeticTask(num_samples=1, seed=0, num_operands=3, max_value=9)[0]
    a, b, c = sample.meta["operands"]
    o1, o2 = sample.meta["ops"]
    ab = a + b if o1 == "+" else a - b
    abc = ab + c if o2 == "+" else ab - c
    worked = f"{a}{o1}{b}={ab}. {ab}{o2}{c}={abc}. \\boxed{{{abc}}}"
    wrong_step = f"{a}{o1}{b}={ab + 1}. \\boxed{{{ab + 1}}}"
    bare = f"\\boxed{{{abc}}}"
    texts = [worked, wrong_step, bare]
    completions = [[Completion(text=t, token_ids=list(range(len(t))), finish_reason="stop") for t in texts]]
    verdicts = [[Verdict(score=1.0, correct=True), Verdict(score=0.0, correct=False), Verdict(score=1.0, correct=True)]]
    s = summarize([sample], completions, verdicts)
    assert s["accuracy"] == pytest.approx(2 / 3)
    assert s["shows_steps"] == pytest.approx(2 / 3)
    assert s["steps"] == pytest.approx(1.0)  # 2 + 1 + 0 steps
    assert s["steps_needed"] == 2
    assert s["steps_right"] == pytest.approx(2 / 3)  # of the 3 steps written, the third is off by one
    assert s["worked"] == pytest.approx(1 / 3)
    assert s["length"] == pytest.approx(sum(map(len, texts)) / 3)


def test_a_run_dir_differs_only_in_settings_both_configs_have():
    from rlvr.demo import _changed_keys

    old = {"seed": 0, "sft": {"epochs": 4, "old_field": 1}}
    new = {"seed": 0, "sft": {"epochs": 4}, "prm": {"head": "two_class"}}  # a newer rlvr added `prm`, dropped one
    assert _changed_keys(old, new) == []
    assert _changed_keys(old, {**new, "seed": 1}) == ["seed: 0 -> 1"]
