"""ORM and PRM trainers through the CLI on tiny models: checkpoints plain transformers loads and scores the same,
bad preference rows named, two gloo processes update like one, and a resumed run ends where an uninterrupted one does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_distributed import _run, _torchrun  # the torchrun helpers (process-group kill on failure)
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

from rlvr.cli import main
from rlvr.metrics import read_metrics
from rlvr.reward_models import conversation, load_reward_model, orm_input_ids
from tasks.stepwise import StepwiseExample, write_stepwise

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_rm_checkpoint_is_a_plain_sequence_classifier(tiny_model_dir, tmp_path):
    run = tmp_path / "rm"
    assert main(["train", str(CONFIGS / "smoke_rm.yaml"), f"model.name_or_path={tiny_model_dir}", f"run_dir={run}"]) == 0
    rows = read_metrics(run / "metrics.jsonl")
    assert {"accuracy", "ties", "margin", "reward/mean", "reward/std", "loss"} <= set(rows[0])
    assert "eval/accuracy" in rows[-1] and "eval/ties" in rows[-1]
    model = AutoModelForSequenceClassification.from_pretrained(run / "final").eval()  # what TRL and vLLM load
    tok = AutoTokenizer.from_pretrained(run / "final")
    assert type(model).__name__ == "Qwen2ForSequenceClassification" and model.config.num_labels == 1
    assert model.config.pad_token_id == tok.pad_token_id != tok.eos_token_id
    ours = load_reward_model(str(run / "final"), "orm")
    texts = ["3+4+1=8. \\boxed{8}", "3+4=7. 7+1=9. \\boxed{9}"]
    conv = [conversation(tok, "3+4+1=", t) for t in texts]
    want = ours.score([p for p, _ in conv], [c for _, c in conv])
    for (p, c), w in zip(conv, want):  # transformers' own pooling, one text at a time, no position ids given
        with torch.no_grad():
            assert model(torch.tensor([orm_input_ids(tok, p, c)])).logits[0, 0].item() == pytest.approx(w, abs=1e-5)


def test_rm_bad_preference_row_names_file_and_row(tiny_model_dir, tmp_path, capsys):
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(json.dumps({"prompt": "1+1=", "chosen": "2", "rejected": "3"}) + "\n"
                     + json.dumps({"prompt": "2+2=", "chosen": "4"}) + "\n")  # fmt: skip
    rc = main(["train", str(CONFIGS / "smoke_rm.yaml"), f"model.name_or_path={tiny_model_dir}", f"run_dir={tmp_path / 'r'}",
               "task.name=preference", f"task.args={{path: {prefs}}}", "eval.task.name="])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "prefs.jsonl, line 2: field 'rejected': missing" in err and "rm.skip_bad_rows" in err


def test_prm_checkpoint_is_a_plain_token_classifier(tiny_model_dir, tmp_path):
    run = tmp_path / "prm"
    assert main(["train", str(CONFIGS / "smoke_prm.yaml"), f"model.name_or_path={tiny_model_dir}", f"run_dir={run}"]) == 0
    last = read_metrics(run / "metrics.jsonl")[-1]
    assert {"eval/step_accuracy", "eval/first_error_rate", "eval/first_error_chance"} <= set(last)
    model = AutoModelForTokenClassification.from_pretrained(run / "final").eval()
    assert model.config.num_labels == 2 and model.dropout.p == 0.0
    ours = load_reward_model(str(run / "final"), "prm")
    probs = ours.step_probs(["3+4+1="], [["3+4=7.", "7+1=9.", "\\boxed{9}"]])[0]
    ids = ours.tokenizer("<|user|>3+4+1=<|assistant|>3+4=7.<extra_0>7+1=9.<extra_0>\\boxed{9}<extra_0>",
                         add_special_tokens=False)["input_ids"]  # fmt: skip
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    at = [i for i, t in enumerate(ids) if t == ours.sep_id]
    assert probs == pytest.approx(torch.softmax(logits[at], -1)[:, 1].tolist(), abs=1e-5)


@pytest.mark.slow
def test_prm_two_processes_update_like_one(tiny_model_dir, tmp_path):
    """Solutions have different numbers of steps, so each rank's share of the steps differs: the loss and the
    gradient norm only match one process's when the denominator is the global step count."""
    examples = [StepwiseExample(f"{i}+{i}=", [f"step {j}." for j in range(1 + i % 5)], [float((i + j) % 3 > 0) for j in range(1 + i % 5)])
                for i in range(16)]  # 1 to 5 steps each  # fmt: skip
    data = write_stepwise(examples, tmp_path / "steps.jsonl")
    args = ["-m", "rlvr.cli", "train", str(CONFIGS / "smoke_prm.yaml"), f"model.name_or_path={tiny_model_dir}",
            "prm.max_steps=1", "eval.task.name=", "task.name=stepwise_file", f"task.args={{path: {data}}}"]  # fmt: skip
    _run([sys.executable, *args, f"run_dir={tmp_path / 'one'}"], cwd=tmp_path)
    _run(_torchrun([*args, f"run_dir={tmp_path / 'two'}"]), cwd=tmp_path)
    (one,), (two,) = read_metrics(tmp_path / "one" / "metrics.jsonl"), read_metrics(tmp_path / "two" / "metrics.jsonl")
    assert one["steps"] == two["steps"] == sum(len(ex.steps) for ex in examples)
    for key in ("loss", "step_accuracy", "grad_norm"):
        assert two[key] == pytest.approx(one[key], rel=1e-5), key


def test_prm_resume_ends_where_an_uninterrupted_run_does(tiny_model_dir, tmp_path):
    common = ["train", str(CONFIGS / "smoke_prm.yaml"), f"model.name_or_path={tiny_model_dir}", "eval.task.name=",
              "save_every=1"]  # fmt: skip
    assert main([*common, f"run_dir={tmp_path / 'straight'}", "prm.max_steps=2"]) == 0
    assert main([*common, f"run_dir={tmp_path / 'resumed'}", "prm.max_steps=1"]) == 0  # "crash" after step 1
    assert main([*common, f"run_dir={tmp_path / 'resumed'}", "prm.max_steps=2"]) == 0  # picks up at step 1
    a = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in read_metrics(tmp_path / "resumed" / "metrics.jsonl")]
    assert steps == [1, 2]
