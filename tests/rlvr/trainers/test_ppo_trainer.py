"""The PPO trainer on real tiny models: where the score lands when pad == EOS, critic warm-up, bad config,
an end-to-end run through the CLI (metrics, HF exports) and exact resume of policy, critic and KL coefficient."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForTokenClassification

from dist_ppo_update import config, runtime
from rlvr.cli import main
from rlvr.config import load_config
from rlvr.metrics import read_metrics
from rlvr.policy import load_tokenizer
from rlvr.generation.base import SamplingParams
from rlvr.generation.hf import HFGenerator
from rlvr.rollout import Rollout, tokenize_prompts
from rlvr.tiny_models import resolve_model_path
from rlvr.trainers.ppo import check_config, prepare_batch, update
from rlvr.types import Completion, Sample
from verifiers.base import Verdict

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


@pytest.fixture(scope="module")
def small_model_dir() -> Path:
    return Path(resolve_model_path("tiny-qwen2-small"))


def test_score_lands_on_eos_when_pad_is_eos(small_model_dir, tmp_path):
    model_dir = tmp_path / "pad_is_eos"
    shutil.copytree(small_model_dir, model_dir)
    tok = load_tokenizer(str(model_dir))
    tok.pad_token = tok.eos_token
    tok.save_pretrained(model_dir)
    eos = tok.eos_token_id
    cfg = config(str(model_dir), tmp_path / "run")
    cfg.ppo.kl_coef, cfg.ppo.truncation = 0.0, "penalize"
    rt = runtime(cfg)
    assert rt.tokenizer.pad_token_id == eos
    s = Sample(id="a", prompt="p")
    ro = Rollout([s], [[Completion("x", [7, 8, eos], "stop"), Completion("y", [9, eos], "stop"),
                        Completion("z", [5, 6, 7, 8], "length")]],
                 [[Verdict(1.0, True), Verdict(0.5, False), Verdict(0.25, False)]], [[20, 21]])  # fmt: skip
    batch, _ = prepare_batch(rt, rt.extra[0], ro, None, 0.0)
    C = batch.num_completion_tokens
    assert batch.input_ids[1, -C:].tolist() == [9, eos, eos, eos]  # EOS, then padding with the same id
    # the score on each last real token: the emitted EOS, or the last token of the truncated row (minus 0.5)
    expected = torch.tensor([[0, 0, 1.0, 0], [0, 0.5, 0, 0], [0, 0, 0, -0.25]])
    torch.testing.assert_close(batch.extra["rewards"], expected, rtol=0, atol=0)
    # the EOS carries gradient and value loss; the padding after it does not
    assert batch.completion_mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]


def fixed_rollout(vocab_size: int, n: int = 16) -> Rollout:
    """n prompts x 1 completion of random tokens, every other one scored 1: each return is predictable from
    the tokens the critic sees (no two completions share a prefix)."""
    rng = random.Random(0)
    samples, completions, verdicts, prompts = [], [], [], []
    for i in range(n):
        samples.append(Sample(id=f"p{i}", prompt="x"))
        prompts.append([rng.randrange(5, vocab_size) for _ in range(rng.randrange(3, 8))])
        completions.append([Completion("t", [rng.randrange(5, vocab_size) for _ in range(rng.randrange(2, 12))], "stop")])
        verdicts.append([Verdict(float(i % 2), i % 2 == 1)])
    return Rollout(samples, completions, verdicts, prompts)


@pytest.mark.parametrize("mode, steps", [("separate", 50), ("shared", 5)])
def test_critic_warmup_fits_values_and_leaves_the_policy_alone(small_model_dir, tmp_path, mode, steps):
    cfg = config(str(small_model_dir), tmp_path / "run", mode)
    cfg.generation.num_generations, cfg.ppo.prompts_per_step = 1, 16
    cfg.ppo.ppo_epochs, cfg.ppo.micro_batch_size, cfg.ppo.critic.lr = 1, 16, 3e-3
    rt = runtime(cfg)
    critic = rt.extra[0]
    ro = fixed_rollout(rt.policy.config.vocab_size)
    before = {n: p.detach().clone() for n, p in rt.policy.named_parameters()}
    ev = []
    for _ in range(steps):
        batch, m = prepare_batch(rt, critic, ro, None, 0.0)
        update(rt, critic, batch, kl_coef=0.0, train_policy=False)
        ev.append(m["critic/explained_variance"])
    for n, p in rt.policy.named_parameters():
        assert torch.equal(p, before[n]), f"{n} changed during critic warm-up"
    if mode == "separate":
        assert ev[0] < 0 and ev[-1] > 0.9, ev
    else:  # the head alone learns on the frozen shared backbone
        assert ev[-1] > ev[0], ev


def test_stop_strings_and_every_eos_id_end_a_completion_without_penalty(small_model_dir, tmp_path):
    """`truncated` is the generator's finish reason: a configured stop string or any EOS id of the generation
    config ends a completion (no penalty); only running out of max_new_tokens is truncation."""
    cfg = config(str(small_model_dir), tmp_path / "run")
    cfg.ppo.kl_coef, cfg.ppo.truncation, cfg.ppo.truncation_penalty = 0.0, "penalize", 0.5
    rt = runtime(cfg)
    tok = rt.tokenizer
    samples = [Sample(id=f"s{i}", prompt=f"{i}+{i}=") for i in range(4)]
    prompts = tokenize_prompts(tok, samples, 1000)
    sampling = SamplingParams(max_new_tokens=6, stop=tuple("abcdefghij"), seed=0)
    # a second stop id (as Qwen2.5-Instruct's [<|im_end|>, <|endoftext|>]): a token this random model often emits
    first = [t for g in HFGenerator(rt.policy, tok).generate(prompts, 8, sampling) for c in g for t in c.token_ids]
    stop_id = max(set(first) - {tok.eos_token_id}, key=first.count)
    rt.policy.generation_config.eos_token_id = [tok.eos_token_id, stop_id]
    groups = HFGenerator(rt.policy, tok).generate(prompts, 8, sampling)
    ro = Rollout(samples, groups, [[Verdict(1.0, True)] * 8 for _ in samples], prompts)
    batch, _ = prepare_batch(rt, rt.extra[0], ro, None, 0.0)
    kinds = []
    for row, c in enumerate(c for g in groups for c in g):
        last = c.token_ids[-1]
        kind = ("eos" if last == tok.eos_token_id else "second stop id" if last == stop_id
                else "stop string" if any(ch in tok.decode(c.token_ids) for ch in sampling.stop) else "length")  # fmt: skip
        kinds.append(kind)
        assert c.truncated == (kind == "length"), (kind, c)
        assert batch.extra["rewards"][row, len(c.token_ids) - 1] == (0.5 if kind == "length" else 1.0)
    assert {"second stop id", "stop string", "length"} <= set(kinds), kinds  # the cases occurred


@pytest.mark.parametrize("override, needle", [
    ("ppo.gamma=1.5", "ppo.gamma=1.5: must be in [0, 1]"),
    ("ppo.lam=-0.1", "ppo.lam=-0.1: must be in [0, 1]"),
    ("ppo.kl_loss=true", "ppo.kl_in_reward and ppo.kl_loss are both on"),
    ("ppo.truncation=''", "ppo.truncation='': required, one of ('penalize', 'mask', 'bootstrap')"),
    ("ppo.critic.init=tiny-qwen2-small", "ppo.critic.init='tiny-qwen2-small': hidden size 64, the policy's is 128"),
])  # fmt: skip
def test_bad_ppo_config_names_the_key(override, needle, tmp_path, capsys):
    assert main(["train", str(CONFIGS / "smoke_ppo.yaml"), override, f"run_dir={tmp_path}"]) == 2
    assert needle in capsys.readouterr().err


def test_gpu_config_loads_and_passes_the_checks():
    cfg = load_config(CONFIGS / "ppo_qwen2.5-0.5b_gsm8k.yaml")
    check_config(cfg)
    assert cfg.ppo.critic.mode == "separate" and cfg.generation.num_generations == 1


def _run(model_dir, run_dir, *overrides) -> int:
    return main(["train", str(CONFIGS / "smoke_ppo.yaml"), f"model.name_or_path={model_dir}", f"run_dir={run_dir}",
                 "generation.max_new_tokens=8", "ppo.ppo_epochs=1", "ppo.kl_ctrl=adaptive", "ppo.kl_horizon=10",
                 *overrides])  # fmt: skip


def test_shared_critic_run_logs_metrics_and_exports_hf_models(small_model_dir, tmp_path):
    run = tmp_path / "run"
    evals = ["eval.task.name=arithmetic", "eval.task.args={num_samples: 4, seed: 3, split: test}", "eval.bootstrap=0",
             "eval.samples_per_problem=2", "eval.temperature=1.0", "eval.every=1"]  # fmt: skip
    assert _run(small_model_dir, run, "ppo.critic.mode=shared", "max_steps=2", *evals) == 0
    metrics = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in metrics if "eval/accuracy" in r] == [0, 1, 2]  # before training, every step, at the end
    assert sorted(p.name for p in (run / "eval").iterdir()) == [f"step_{i:06d}" for i in range(3)]
    rows = [r for r in metrics if "reward/mean" in r]
    assert [r["critic_warmup"] for r in rows] == [1.0, 0.0]
    for key in ("critic/value_mean", "critic/explained_variance", "critic/vf_clip_frac", "critic/vf_loss", "kl_coef",
                "advantages/mean", "advantages/std", "reward/mean", "accuracy", "kl", "clip_frac", "entropy",
                "completion_len", "time/step", "tokens_per_s", "grad_norm"):  # fmt: skip
        assert key in rows[1], key
    assert rows[1]["kl_coef"] != rows[0]["kl_coef"]  # adaptive, logged every step
    assert AutoModelForCausalLM.from_pretrained(run / "final").config.architectures == ["Qwen2ForCausalLM"]
    critic = AutoModelForTokenClassification.from_pretrained(run / "final" / "critic")
    assert critic.config.num_labels == 1 and (run / "final" / "critic" / "tokenizer_config.json").is_file()
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_resume_continues_policy_critic_and_kl_coef_exactly(small_model_dir, tmp_path):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert _run(small_model_dir, full, "max_steps=3") == 0
    assert _run(small_model_dir, resumed, "max_steps=2") == 0
    assert _run(small_model_dir, resumed, "max_steps=3") == 0  # resumes at step 2 of 3
    state = json.loads((resumed / "checkpoints" / "step_00000003" / "trainer_state.json").read_text())
    assert state["kl_coef"] != 0.05
    for sub in ("final", "final/critic"):
        a, b = load_file(full / sub / "model.safetensors"), load_file(resumed / sub / "model.safetensors")
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{sub} {k}")
    ra, rb = read_metrics(full / "metrics.jsonl"), read_metrics(resumed / "metrics.jsonl")
    assert [r["step"] for r in rb] == [1, 2, 3]
    for key in ("reward/mean", "kl_coef", "critic/vf_loss"):
        assert [r[key] for r in ra] == [r[key] for r in rb], key
