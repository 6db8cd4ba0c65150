"""DPO and KTO trainers on the tiny model: step-0 invariants, the reference cache key, exact resume (with the
reference rebuilt from the starting weights when its cache is gone), LoRA's reference, and bad input through the
CLI."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from rlvr.cli import main
from rlvr.config import load_config
from rlvr.metrics import read_metrics
from rlvr.preference_data import EncodedExample, encode_all
from rlvr.reference_logps import completion_logps, reference_mode
from rlvr.trainers.kto import kl_reference_point
from rlvr.trainers.preference import frozen_initial_model, pair_reference, reference_fingerprint
from rlvr.trainers.runtime import build_runtime
from tasks import get_task

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def args(tiny_model_dir, run_dir, *more):
    return [f"model.name_or_path={tiny_model_dir}", f"run_dir={run_dir}", *more]


def test_dpo_run_metrics_and_step_zero(tiny_model_dir, tmp_path):
    run = tmp_path / "dpo"
    assert main(["train", str(CONFIGS / "smoke_dpo.yaml"), *args(tiny_model_dir, run, "dpo.max_steps=2")]) == 0
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 2]  # step-0 evaluation, two steps, final evaluation
    zero, first = rows[0], rows[1]
    assert zero["data/rows"] == 64 and zero["data/skipped_rows"] == 0
    # the policy is its own reference before any update: no preference either way, loss ln 2 (TRL's accuracy reads 0)
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-5) and zero["eval/loss"] == pytest.approx(math.log(2), abs=1e-5)
    for r, prefix in ((first, ""), (zero, "eval/")):
        for k in ("rewards/chosen", "rewards/rejected", "rewards/margins"):
            assert abs(r[prefix + k]) < 1e-5, prefix + k
        assert r[prefix + "rewards/accuracies"] + r[prefix + "rewards/ties"] <= 1.0
    # held-out pairs are scored in the layout of their cached reference: every tie is exact. The training step
    # lays its batch out otherwise, so there a tie may break by float round-off (its loss and rewards stay ~0)
    assert zero["eval/rewards/ties"] == 1.0 and zero["eval/rewards/accuracies"] == 0.0
    for k in ("logps/chosen", "logps/rejected", "grad_norm", "lr", "time/step"):
        assert k in first, k
    assert rows[2]["loss"] != first["loss"] and abs(rows[2]["rewards/margins"]) > 1e-4  # lr 1e-3 moved the policy
    assert {p.name.split("-")[0] for p in (run / "ref_logps").iterdir()} == {"train", "eval"}
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    AutoModelForCausalLM.from_pretrained(run / "final")  # an HF causal LM


@pytest.fixture(scope="module")
def runtime(tiny_model_dir, tmp_path_factory):
    cfg = load_config(CONFIGS / "smoke_dpo.yaml", args(tiny_model_dir, tmp_path_factory.mktemp("rt")))
    rt = build_runtime(cfg, total_steps=1)
    pairs, _ = encode_all(rt.tokenizer, get_task("arithmetic_preference", num_samples=12).pairs, 64)
    return rt, pairs


def test_reference_cache_key(runtime, caplog):
    rt, pairs = runtime
    fp = reference_fingerprint(rt)

    def ref(p=pairs, norm="sum", max_length=64, name="train"):
        return pair_reference(rt, p, name, normalization=norm, max_length=max_length, micro_batch_size=5, fingerprint=fp)

    def files():
        return sorted(p.name for p in (rt.run_dir / "ref_logps").iterdir())

    summed = ref()
    assert len(files()) == 1 and summed.shape == (12, 2)
    torch.testing.assert_close(ref(), summed, rtol=0, atol=0)
    assert len(files()) == 1  # unchanged key: read back
    lengths = torch.tensor([[len(p.chosen), len(p.rejected)] for p in pairs], dtype=torch.float32)
    torch.testing.assert_close(ref(norm="mean"), summed / lengths)  # normalisation is in the key
    assert len(files()) == 2
    ref(max_length=48)
    ref(p=pairs[:-1])  # dataset content
    assert len(files()) == 4
    templated = copy.deepcopy(rt.tokenizer)
    templated.chat_template = rt.tokenizer.chat_template.replace("<|assistant|>{% endif %}", "<|assistant|> {% endif %}")
    rt.tokenizer, saved = templated, rt.tokenizer
    try:
        ref()  # tokenizer and chat template
    finally:
        rt.tokenizer = saved
    assert len(files()) == 5


def test_lora_reference_is_the_adapter_disabled_base(tiny_model_dir, tmp_path, runtime):
    plain_rt, pairs = runtime
    cfg = load_config(CONFIGS / "smoke_kto.yaml", args(tiny_model_dir, tmp_path, "model.lora.r=4"))
    rt = build_runtime(cfg, total_steps=1)
    assert frozen_initial_model(rt, reference_fingerprint(rt)) is None  # no second copy with LoRA
    with torch.no_grad():
        for name, p in rt.policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # as if trained: the adapted policy now differs from the base
    items = [[(p.prompt, p.chosen)] for p in pairs]
    with reference_mode(rt.policy):
        lora_ref = completion_logps(rt.policy, items, "sum", 4, 0, rt.accelerator)
    with reference_mode(plain_rt.policy):
        base = completion_logps(plain_rt.policy, items, "sum", 4, 0, plain_rt.accelerator)
    torch.testing.assert_close(lora_ref, base)
    batch, _ = encode_all(rt.tokenizer, get_task("arithmetic_preference", num_samples=4, chat=False).pairs, 64)
    examples = [EncodedExample(p.prompt, p.chosen, True, p.where) for p in batch]
    assert abs(float(kl_reference_point(rt, examples, None, 2))) > 1e-3  # policy (adapted) vs reference (base)


def _final(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "final" / "model.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["dpo", "kto"])
def test_resume_matches_uninterrupted_with_the_reference_rebuilt(tiny_model_dir, tmp_path, algo):
    config = str(CONFIGS / f"smoke_{algo}.yaml")
    full, cut = tmp_path / "full", tmp_path / "cut"
    common = [f"{algo}.max_steps=4", "save_every=1", "eval.task.name=''"]
    assert main(["train", config, *args(tiny_model_dir, full, *common)]) == 0
    assert main(["train", config, *args(tiny_model_dir, cut, f"{algo}.max_steps=2", *common[1:])]) == 0
    for f in (cut / "ref_logps").iterdir():
        f.unlink()  # the resumed run must rebuild it from the starting weights, not from the ones it trained
    assert main(["train", config, *args(tiny_model_dir, cut, *common)]) == 0
    assert [r["step"] for r in read_metrics(cut / "metrics.jsonl")] == [0, 1, 2, 3, 4]
    a, b = _final(full), _final(cut)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    ra, rb = read_metrics(full / "metrics.jsonl"), read_metrics(cut / "metrics.jsonl")
    assert [r.get("loss") for r in ra] == [r.get("loss") for r in rb]


BAD = [
    {"prompt": "2+2=", "chosen": "4", "rejected": "5"},
    {"prompt": "3+3=", "rejected": "7"},
    {"prompt": "1+1=", "chosen": "2", "rejected": "3"},
]


def test_bad_rows_stop_the_run_naming_file_line_and_field(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in BAD))
    task = [f"task.args={{path: {data}}}", "task.name=preference", "eval.task.name=''", "dpo.batch_size=2"]
    assert main(["train", str(CONFIGS / "smoke_dpo.yaml"), *args(tiny_model_dir, tmp_path / "a", *task)]) == 2
    err = capsys.readouterr().err
    assert f"{data}, line 2: field 'chosen': missing" in err and "dpo.skip_bad_rows" in err
    run = tmp_path / "b"
    assert main(["train", str(CONFIGS / "smoke_dpo.yaml"), *args(tiny_model_dir, run, *task, "dpo.skip_bad_rows=true",
                                                                 "dpo.max_steps=1")]) == 0  # fmt: skip
    zero = read_metrics(run / "metrics.jsonl")[0]
    assert (zero["data/rows"], zero["data/skipped_rows"]) == (2, 1)


@pytest.mark.parametrize("overrides, needle", [
    (["dpo.loss_type=hinge", "dpo.label_smoothing=0.1"], "no effect with loss_type 'hinge'"),
    (["task.name=arithmetic", "task.args={num_samples: 4}"], "not preference data"),
    (["dpo.max_length=8"], "over max_length=8"),
])  # fmt: skip
def test_config_errors(tiny_model_dir, tmp_path, capsys, overrides, needle):
    assert main(["train", str(CONFIGS / "smoke_dpo.yaml"), *args(tiny_model_dir, tmp_path, *overrides)]) == 2
    assert needle in capsys.readouterr().err


def test_dpo_refuses_unpaired_data(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "u.jsonl"
    data.write_text(json.dumps({"prompt": "q", "completion": "a", "label": True}) + "\n")
    task = [f"task.args={{path: {data}}}", "task.name=preference"]
    assert main(["train", str(CONFIGS / "smoke_dpo.yaml"), *args(tiny_model_dir, tmp_path, *task)]) == 2
    assert "algorithm: kto" in capsys.readouterr().err
