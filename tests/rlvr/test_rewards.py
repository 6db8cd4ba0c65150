"""Reward models beside the verifier: combinations by hand, steps cut and mapped to tokens, a rollout rescored
with real tiny reward models (the verifier's verdict kept, unscorable inputs reported as errors)."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.config import RewardModelConfig
from rlvr.policy import load_tokenizer
from rlvr.reward_models import conversation
from rlvr.rewards import RewardSource, aggregate_steps, combine_scores, split_steps, step_token_ends
from rlvr.rollout import Rollout
from rlvr.types import Completion, Sample
from verifiers.base import Verdict

V = torch.tensor([[1.0, 0.0, 1.0]])
OK = V > 0
RM = torch.tensor([[0.5, 2.0, -1.0]])


def close(actual, expected, atol=1e-5):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


def test_combinations_by_hand():
    close(combine_scores(V, OK, RM, how="weighted_sum"), [[1.5, 2.0, 0.0]])
    close(combine_scores(V, OK, RM, how="weighted_sum", weight=0.5, verifier_weight=2.0), [[2.25, 1.0, 1.5]])
    close(combine_scores(V, OK, RM, how="gate"), [[1.5, 0.0, 0.0]])  # the wrong answer's RM score 2.0 does not count
    # verifier: mean 2/3, unbiased std sqrt(1/3) -> [0.57735, -1.154701, 0.57735]; rm: mean 0.5, std 1.5 -> [0, 1, -1]
    close(combine_scores(V, OK, RM, how="normalize_then_sum"), [[0.57735, -0.154701, -0.42265]])


def test_unscorable_is_nan_and_left_out_of_group_statistics():
    rm = torch.tensor([[0.5, math.nan, -1.0]])
    out = combine_scores(V, OK, rm, how="normalize_then_sum")
    assert math.isnan(out[0, 1])
    # over the two valid completions: verifier [1, 1] is flat -> 0; rm [0.5, -1] -> +-0.707107 (std 1.06066)
    close(out[0, [0, 2]], [0.707107, -0.707107])
    with pytest.raises(ValueError, match="reward_model.combine"):
        combine_scores(V, OK, RM, how="max")


def test_aggregate_steps():
    assert aggregate_steps([0.9, 0.2, 0.5], "min") == 0.2
    assert aggregate_steps([0.9, 0.2, 0.5], "product") == pytest.approx(0.09)
    assert aggregate_steps([0.9, 0.2, 0.5], "last") == 0.5


def test_split_steps_keeps_every_character():
    assert split_steps("a\n\nb\n\n\n\nc\n\n", "\n\n") == [("a", 1), ("b", 4), ("c", 11)]
    assert split_steps("", ". ") == [("", 0)]
    assert split_steps("no delimiter", ". ") == [("no delimiter", 12)]


def test_step_token_ends_on_the_tiny_tokenizer(tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    text = "12+7=19. 19-3=16. \\boxed{16}"
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    decode = lambda x: tok.decode(x, skip_special_tokens=True)  # noqa: E731
    steps = split_steps(text, ". ")
    ends = step_token_ends(decode, ids, [e for _, e in steps])
    assert ends[-1] == len(ids) - 1  # the last step owns EOS
    # each step's last token completes its text, the token before does not
    for (_, char_end), k in zip(steps[:-1], ends[:-1]):
        assert len(decode(ids[: k + 1])) >= char_end > len(decode(ids[:k]))
    assert decode(ids[: ends[0] + 1]) == "12+7=19"  # the delimiter ". " starts the next step


def _rollout(tok, texts: list[list[str]], verdicts: list[list[Verdict]]) -> Rollout:
    samples = [Sample(id=f"s{i}", prompt=f"{i}+1=", reference=str(i + 1)) for i in range(len(texts))]
    comps = [[Completion(t, tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], "stop") for t in g] for g in texts]
    return Rollout(samples, comps, verdicts, [[1, 2]] * len(texts))


def test_rescore_with_an_orm_keeps_the_verifier(tiny_orm_dir, tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    cfg = RewardModelConfig(path=str(tiny_orm_dir), kind="orm", combine="gate", weight=1.0, verifier_weight=1.0)
    source = RewardSource(cfg, tok, "cpu")
    ro = _rollout(tok, [["\\boxed{1}", "\\boxed{2}", "oops"]],
                  [[Verdict(0.0, False), Verdict(1.0, True), Verdict.failure("verifier crashed")]])  # fmt: skip
    out = source.rescore(ro)
    v = out.verdicts[0]
    conv = [conversation(source.model.tokenizer, "0+1=", t) for t in ("\\boxed{1}", "\\boxed{2}", "oops")]
    rm = source.model.score([p for p, _ in conv], [c for _, c in conv])
    assert conv[0] == ([{"role": "user", "content": "0+1="}], [{"role": "assistant", "content": "\\boxed{1}"}])
    assert [x.info["rm_score"] for x in v] == pytest.approx(rm)
    assert [x.info["verifier_score"] for x in v] == [0.0, 1.0, 0.0]
    assert v[0].score == 0.0 and v[1].score == pytest.approx(1.0 + rm[1])  # gate: only the correct answer's RM counts
    assert v[2].error == "verifier crashed"  # a verifier error stays an error
    assert [x.correct for x in v] == [False, True, False]
    m = source.metrics(out)
    assert m["rm/rank_agreement"] == (1.0 if rm[1] > rm[0] else 0.0)


def test_rescore_with_a_prm_maps_steps_to_tokens(tiny_prm_dir, tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    cfg = RewardModelConfig(path=str(tiny_prm_dir), kind="prm", step_delimiter=". ", prm_aggregate="min",
                            process_advantages="sum", max_length=40)  # fmt: skip
    source = RewardSource(cfg, tok, "cpu")
    texts = [["1+1=2. \\boxed{2}", "\\boxed{3}"], ["2+1=3. 3+0=3. 3+0=3. 3+0=3. 3+0=3. \\boxed{3}", "\\boxed{3}"]]
    ro = _rollout(tok, texts, [[Verdict(1.0, True), Verdict(0.0, False)], [Verdict(1.0, True), Verdict(1.0, True)]])
    out = source.rescore(ro)
    a, b = out.verdicts[0]
    probs = source.model.step_probs(["0+1="], [["1+1=2", "\\boxed{2}"]])[0]
    assert a.info["step_probs"] == pytest.approx(probs) and a.score == 1.0  # process mode: score stays the verifier's
    assert a.info["rm_score"] == pytest.approx(min(probs))
    assert a.info["step_ends"] == [4, len(ro.completions[0][0].token_ids) - 1]
    assert len(b.info["step_probs"]) == 1
    long = out.verdicts[1][0]  # over max_length=40 for the PRM: unscorable, an error
    assert long.error is not None and "reward model" in long.error and long.info["verifier_score"] == 1.0
    m = source.metrics(out)
    assert m["rm/errors"] == 1 and m["rm/steps_per_completion"] == pytest.approx(4 / 3)
    C = max(len(c.token_ids) for g in ro.completions for c in g)
    adv = source.token_advantages(out, torch.tensor([1.0, -1.0, 0.0, 0.0]), C)
    assert adv.shape == (4, C)
    # group 1: steps (p1, p2) then (q,) normalised; the first completion's tokens 0-4 ("1+1=2") carry both its
    # steps, tokens 5-11 (". \boxed{2}" and EOS) the second; outcome advantages add on every token
    r = torch.tensor(probs + b.info["step_probs"])
    z = (r - r.mean()) / (r.std(unbiased=False) + 1e-6)
    close(adv[0, :5], [1.0 + float(z[0] + z[1])] * 5, atol=1e-4)
    close(adv[0, 5:12], [1.0 + float(z[1])] * 7, atol=1e-4)
    close(adv[1, 0], -1.0 + float(z[2]), atol=1e-4)
    assert torch.all(adv[2:] == 0)  # group 2: outcome advantages 0, the unscorable completion has no steps, the other alone
