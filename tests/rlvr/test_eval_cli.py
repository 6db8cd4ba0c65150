"""`rlvr eval` end to end on the tiny model: outputs, pass@k recomputed independently from samples.jsonl, rescore
and re-verification, LoRA adapter directories, GRPO's periodic evaluation, and every bad input named."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rlvr.cli import main
from rlvr.metrics import read_metrics

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SMOKE = str(CONFIGS / "smoke_eval.yaml")
SMALL = ["eval.task.args={num_samples: 4, seed: 3, num_operands: 2, max_value: 9, split: test}", "eval.bootstrap=0",
         "eval.samples_per_problem=2", "eval.max_new_tokens=8"]  # fmt: skip


def independent_pass_at_k(samples_jsonl: Path, k: int) -> float:
    """pass@k from the rows with the binomial closed form, sharing no code with rlvr.evaluate."""
    per_problem: dict[str, list[bool]] = {}
    for line in samples_jsonl.read_text().splitlines():
        r = json.loads(line)
        per_problem.setdefault(r["problem_id"], []).append(r["correct"])
    vals = [1 - math.comb(len(v) - sum(v), k) / math.comb(len(v), k) for v in per_problem.values()]
    return sum(vals) / len(vals)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("smoke_eval")
    assert main(["eval", SMOKE, f"run_dir={run}"]) == 0
    return run


def test_smoke_eval_outputs_and_pass_at_k_recomputed_from_samples(smoke_run):
    summary = json.loads((smoke_run / "summary.json").read_text())
    assert summary["n"] == 8 and summary["k"] == [1, 2, 4, 8]
    assert summary["generation"]["temperature"] == 1.0 and summary["model"] == "tiny-qwen2"
    rows = (smoke_run / "samples.jsonl").read_text().splitlines()
    assert len(rows) == 16 * 8
    first = json.loads(rows[0])
    for key in ("problem_id", "sample_index", "prompt_hash", "completion", "extracted_answer", "correct", "score",
                "verifier_error", "num_tokens", "finish_reason", "seed"):
        assert key in first, key
    m = summary["metrics"]
    assert 0 < m["pass@1"] < m["pass@2"] < m["pass@4"] <= m["pass@8"]  # the length rule gives the numbers spread
    for k in (1, 2, 4, 8):
        assert m[f"pass@{k}"] == pytest.approx(independent_pass_at_k(smoke_run / "samples.jsonl", k), abs=1e-12)
    assert m["avg@8"] == m["accuracy"] == pytest.approx(m["pass@1"])
    u = summary["uncertainty"]["pass@2"]
    assert u["ci95"][0] < m["pass@2"] < u["ci95"][1] and u["stderr"] > 0
    assert "| pass@4 |" in (smoke_run / "summary.md").read_text()
    for png in ("pass_at_k.png", "accuracy_by_length.png"):
        assert (smoke_run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rescore_reproduces_summary_bit_for_bit_and_reverify_applies_a_verifier_change(smoke_run, tmp_path):
    before = (smoke_run / "summary.json").read_bytes()
    assert main(["eval", "--rescore", str(smoke_run)]) == 0
    assert (smoke_run / "summary.json").read_bytes() == before
    assert main(["eval", "--rescore", str(smoke_run), "--reverify"]) == 0  # same verifier: same verdicts
    assert (smoke_run / "summary.json").read_bytes() == before
    # "fix" the verifier (a stricter length rule) and re-verify the stored completions, nothing generated
    spec = json.loads((smoke_run / "eval_spec.json").read_text())
    spec["verifier"]["args"] = {"max_chars": 12}
    (smoke_run / "eval_spec.json").write_text(json.dumps(spec))
    assert main(["eval", "--rescore", str(smoke_run), "--reverify"]) == 0
    rows = [json.loads(x) for x in (smoke_run / "samples.jsonl").read_text().splitlines()]
    assert all(r["correct"] == (len(r["completion"]) <= 12) for r in rows)  # length_limit: n <= max_chars
    after = json.loads((smoke_run / "summary.json").read_text())["metrics"]
    assert after["pass@1"] == pytest.approx(independent_pass_at_k(smoke_run / "samples.jsonl", 1), abs=1e-12)
    assert after["pass@1"] < json.loads(before)["metrics"]["pass@1"]
    assert (smoke_run / "samples.before_reverify.jsonl").is_file()


ALWAYS_ERROR = '''
from verifiers import Verdict, register_verifier

@register_verifier("always_error")
def always_error(completion, sample):
    raise RuntimeError("this verifier is broken")
'''


def test_a_verifier_that_errors_on_every_sample_is_reported_not_scored_zero(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_plugin.py").write_text(ALWAYS_ERROR)
    monkeypatch.syspath_prepend(str(tmp_path))  # the pool's workers inherit sys.path
    run = tmp_path / "run"
    rc = main(["eval", SMOKE, f"run_dir={run}", "verifier.name=always_error", "verifier.args={}",
               "verifier.preload=[broken_plugin]", *SMALL])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert "'always_error' returned an error on all 8 samples" in err and "this verifier is broken" in err
    summary = json.loads((run / "summary.json").read_text())  # written anyway, to be read
    assert summary["metrics"]["accuracy"] is None and summary["metrics"]["verifier_errors"] == 8


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["eval.k=[16]"], "k=16 is larger than n=8"),
        (["eval.temperature=0"], "eval.temperature=0 (greedy)"),
        (["eval.task.name=arithmetc"], "unknown task 'arithmetc'; did you mean 'arithmetic'"),
        (["eval.task.args={num_samples: 0}"], "eval task 'arithmetic' (args {'num_samples': 0}) has no samples"),
        (["model.name_or_path=/nonexistent/model"], "/nonexistent/model"),
        (["model.name_or_path=tiny-qwen9"], "'tiny-qwen9' is not a known tiny model"),
    ],
)
def test_bad_input_stops_with_a_message_naming_it(overrides, needle, tmp_path, capsys):
    assert main(["eval", SMOKE, f"run_dir={tmp_path / 'run'}", *overrides]) == 2
    assert needle in capsys.readouterr().err


def test_unwritable_output_directory_is_named_before_anything_runs(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["eval", SMOKE, f"run_dir={blocker / 'run'}"]) == 2
    assert f"eval output directory '{blocker / 'run'}' is not writable" in capsys.readouterr().err


def test_cli_usage_errors(tmp_path, capsys):
    assert main(["eval"]) == 2
    assert "give a CONFIG" in capsys.readouterr().err
    assert main(["eval", "--rescore", str(tmp_path)]) == 2
    assert "eval_spec.json: no such file" in capsys.readouterr().err


def test_math500_from_a_local_file_is_broken_down_by_level_and_subject(tmp_path):
    data = Path(__file__).resolve().parents[1] / "tasks" / "data" / "math500.json"  # the hub schema, 3 problems
    run = tmp_path / "run"
    assert main(["eval", SMOKE, f"run_dir={run}", "eval.task.name=math500", f"eval.task.args={{path: {data}}}",
                 "verifier.name=math", "verifier.args={}", "eval.samples_per_problem=2", "eval.max_new_tokens=8",
                 "eval.bootstrap=0"]) == 0  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verifier"]["name"] == "math" and summary["metrics"]["num_problems"] == 3
    assert sorted(summary["breakdown"]["level"]) == ["1", "2", "4"]
    assert sorted(summary["breakdown"]["type"]) == ["Algebra", "Prealgebra", "Precalculus"]
    assert summary["breakdown"]["level"]["4"]["num_problems"] == 1
    assert "## By type" in (run / "summary.md").read_text()


def test_lora_adapter_directory_evaluates_as_its_merged_model(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))  # random B: the adapter changes outputs
    lora.save_pretrained(tmp_path / "adapter")  # adapter_config.json names the base directory
    merged = tmp_path / "merged"
    lora.merge_and_unload().save_pretrained(merged)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(merged)

    def completions(model: Path | str, name: str) -> list[str]:
        run = tmp_path / name
        assert main(["eval", SMOKE, f"run_dir={run}", f"model.name_or_path={model}", *SMALL]) == 0
        return [json.loads(x)["completion"] for x in (run / "samples.jsonl").read_text().splitlines()]

    via_adapter = completions(tmp_path / "adapter", "a")
    assert via_adapter == completions(merged, "m")  # same weights, same seed: the same samples
    assert via_adapter != completions(tiny_model_dir, "b")


def test_grpo_periodic_eval_logs_the_same_names_and_leaves_training_unchanged(tiny_model_dir, tmp_path):
    grpo = str(CONFIGS / "smoke_grpo.yaml")
    common = [f"model.name_or_path={tiny_model_dir}", "max_steps=1", "save_every=0", "grpo.kl_coef=0"]
    evals = ["eval.task.name=arithmetic", "eval.task.args={num_samples: 4, seed: 3, split: test}",
             "eval.samples_per_problem=4", "eval.temperature=1.0", "eval.every=1", "eval.bootstrap=100"]  # fmt: skip
    assert main(["train", grpo, f"run_dir={tmp_path / 'with'}", *common, *evals]) == 0
    assert main(["train", grpo, f"run_dir={tmp_path / 'without'}", *common]) == 0
    rows = [r for r in read_metrics(tmp_path / "with" / "metrics.jsonl") if "eval/accuracy" in r]
    assert [r["step"] for r in rows] == [0, 1]  # before training, and after its one step
    for key in ("eval/pass@1", "eval/pass@4", "eval/avg@4", "eval/reward/mean", "eval/verifier_errors",
                "eval/completion_len/p90", "eval/truncated_frac", "eval/pass@1_stderr"):
        assert key in rows[0], key
    summary = json.loads((tmp_path / "with" / "eval" / "step_000001" / "summary.json").read_text())
    assert summary["metrics"]["accuracy"] == rows[-1]["eval/accuracy"]
    # the evaluation samples under its own seed in a forked RNG: training draws what it would have drawn anyway
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(tmp_path / "with" / "final").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "without" / "final").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
