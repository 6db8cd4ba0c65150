"""Estimators and intervals against numbers worked out by hand, and maj@k against brute force over k-subsets."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import numpy as np
import pytest

from rlvr.evaluate.bootstrap import Problem, two_level_bootstrap
from rlvr.evaluate.estimators import across_runs_std, default_ks, maj_at_k, mean_stderr, pass_at_k


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (4, 1, 4, 1.0),  # every 4-subset of 4 holds the correct one (verl's best@4 reads 0.684 here)
        (16, 4, 8, 0.961538),  # 1 - (5/13)(6/14)(7/15)(8/16) = 1 - 1/26
        (7, 0, 3, 0.0),
        (1, 1, 1, 1.0),
        (10, 3, 1, 0.3),  # pass@1 = c/n
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-6)


def test_pass_at_k_equals_the_binomial_form():
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


@pytest.mark.parametrize("n, c, k, needle", [(4, 1, 5, "k=5"), (4, 1, 0, "k=0"), (4, 5, 2, "c=5"), (0, 0, 1, "n=0")])
def test_pass_at_k_refuses_what_it_cannot_estimate(n, c, k, needle):
    with pytest.raises(ValueError, match=needle) as e:
        pass_at_k(n, c, k)
    if k > n:
        assert f"n={n}" in str(e.value)  # names both (lighteval would return 1.0 here)


def test_default_ks():
    assert default_ks(1) == [1]
    assert default_ks(8) == [1, 2, 4, 8]
    assert default_ks(6) == [1, 2, 4, 6]


def test_maj_at_k_hand_values():
    A, B = "A", "B"
    assert maj_at_k([A, B, A, B], [1, 0, 1, 0], 4) == 0.5  # tie: the mean over the tied answers
    assert maj_at_k([A, A, A, B], [1, 1, 1, 0], 4) == 1.0
    assert maj_at_k([A, B, B, None], [1, 0, 0, 0], 4) == 0.0
    # no_answer takes a place but no vote: of {A, None} the vote is A's
    assert maj_at_k([A, None], [1, 0], 2) == 1.0
    assert maj_at_k([None, None], [0, 0], 2) == 0.0  # no answer at all scores 0
    # k=2 of [A, A, B]: subsets {A,A} (1), {A,B} twice (tie: 0.5 each) -> (1 + 0.5 + 0.5) / 3
    assert maj_at_k([A, A, B], [1, 1, 0], 2) == pytest.approx(2 / 3)
    # k=1 is the fraction correct
    assert maj_at_k([A, B, None, A, B], [1, 0, 0, 1, 0], 1) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="k=5"):
        maj_at_k([A, B], [1, 0], 5)


def _brute_maj(keys, correct, k):
    total, subsets = 0.0, 0
    for sub in itertools.combinations(range(len(keys)), k):
        votes = Counter(keys[i] for i in sub if keys[i] is not None)
        subsets += 1
        if not votes:
            continue
        top = max(votes.values())
        tied = [a for a, c in votes.items() if c == top]
        corr = {keys[i]: correct[i] for i in sub}
        total += sum(corr[a] for a in tied) / len(tied)
    return total / subsets


def test_maj_at_k_equals_brute_force_over_all_subsets():
    rng = random.Random(0)
    for _ in range(150):
        n = rng.randint(1, 9)
        keys = [rng.choice(["A", "B", "C", "D", None]) for _ in range(n)]
        correct = [key == "A" for key in keys]  # one answer is right
        k = rng.randint(1, n)
        assert maj_at_k(keys, correct, k) == pytest.approx(_brute_maj(keys, correct, k), abs=1e-12), (keys, k)


def test_mean_stderr_and_across_runs_hand_values():
    assert mean_stderr([1, 0, 1, 1]) == pytest.approx((0.75, 0.25))  # std(ddof=1) 0.5 over sqrt(4)
    assert math.isnan(mean_stderr([1.0])[1])
    # NeMo-Skills' definition: run j = sample j of every problem; run averages [2/3, 2/3, 2/3, 1/3]
    std, se = across_runs_std([[1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 1]])
    assert (std, se) == pytest.approx((1 / 6, 1 / 12))


def _problems(correct_rows: list[list[int]]) -> list[Problem]:
    return [Problem(np.array(r, dtype=bool), np.array(r, dtype=float)) for r in correct_rows]


def test_bootstrap_interval_on_fixed_scores():
    # one sample per problem: level 2 adds nothing, and the replicate means of [1, 0, 1, 1] are Binomial(4, 3/4)/4:
    # P(<= 0.25) = 13/256 = 5.1% > 2.5% > P(0) = 0.4%, P(<= 0.75) = 68% < 97.5%: the interval is [0.25, 1.0]
    probs = _problems([[1], [0], [1], [1]])
    ci = two_level_bootstrap(probs, {"avg@1": ("avg", 0)}, {"avg@1": 0.75}, resamples=2000, seed=0)
    assert ci["avg@1"] == (0.25, 1.0)
    again = two_level_bootstrap(probs, {"avg@1": ("avg", 0)}, {"avg@1": 0.75}, resamples=2000, seed=0)
    assert again == ci  # fixed seed: the same interval, bit for bit


def test_bootstrap_is_centred_on_unbiased_pass_at_k_not_on_the_with_replacement_value():
    # verl's case on every problem: n=4, c=1, so pass@4 = 1.0 exactly; with-replacement redraws score
    # 1 - (3/4)^4 = 0.684 on average, so an unshifted percentile interval would sit around 0.68 and miss 1.0
    probs = _problems([[1, 0, 0, 0]] * 40)
    stats = {"pass@4": ("pass", 4), "pass@2": ("pass", 2)}
    est = {"pass@4": 1.0, "pass@2": pass_at_k(4, 1, 2)}
    ci = two_level_bootstrap(probs, stats, est, resamples=1000, seed=0)
    assert ci["pass@4"][0] < 1.0 and ci["pass@4"][1] == 1.0
    assert ci["pass@2"][0] < est["pass@2"] < ci["pass@2"][1]
    assert ci["pass@2"][0] < ci["pass@4"][0]


def test_bootstrap_counts_the_noise_within_problems():
    # every problem scores 0.5 (one of two samples right): a problems-only bootstrap gives a zero-width interval,
    # but the samples are noisy; level 2 redraws them: a replicate mean is a mean of 20 Binomial(2, 1/2)/2, sd
    # sqrt(1/8 / 20) = 0.079, so the 95% interval is about 4 sd = 0.31 wide
    probs = _problems([[1, 0]] * 20)
    lo, hi = two_level_bootstrap(probs, {"avg@2": ("avg", 0)}, {"avg@2": 0.5}, resamples=2000, seed=1)["avg@2"]
    assert 0.25 < hi - lo < 0.37 and lo < 0.5 < hi
