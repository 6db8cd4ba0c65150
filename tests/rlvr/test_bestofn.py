"""Best-of-N: choice and tie-break by hand, the accuracy curve by hand, and a real run (tiny policy, real verifier
pool, a tiny ORM) whose SFT rows the SFT trainer reads and whose pairs are real preference rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rlvr.bestofn import accuracy_curve, choose, pick_best
from rlvr.cli import main
from rlvr.metrics import read_metrics
from rlvr.reward_models import conversation, load_reward_model

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_choose_best_and_worst_lowest_index_on_ties():
    assert choose([0.1, 0.7, 0.3, 0.7]) == (1, 0)
    assert choose([0.5, 0.5, 0.5]) is None
    assert choose([0.2, 0.3], min_gap=0.1) is None  # within the gap: nothing to prefer
    assert choose([0.2, 0.35], min_gap=0.1) == (1, 0)
    assert choose([math.nan, 0.4, 0.1]) == (1, 2)  # an unscorable completion is never chosen
    assert choose([math.nan, 0.4]) is None
    assert pick_best([0.3, 0.9, 0.9]) == 1 and pick_best([math.nan]) is None


def test_accuracy_curve_by_hand():
    # n=1: blocks are single samples, 2 of 4 correct; n=2: blocks [0.1, 0.9] picks the wrong 0.9, [0.5, 0.2] picks
    # the wrong 0.5, though each block holds a correct one; n=4 picks 0.9
    curve = accuracy_curve([[0.1, 0.9, 0.5, 0.2]], [[True, False, False, True]], [1, 2, 4])
    assert curve == {1: (0.5, 0.5), 2: (0.0, 1.0), 4: (0.0, 1.0)}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_bestofn_with_an_orm_writes_what_sft_and_dpo_read(tiny_orm_dir, tiny_model_dir, tmp_path):
    run = tmp_path / "bon"
    rc = main(["bestofn", str(CONFIGS / "smoke_bestofn.yaml"), f"model.name_or_path={tiny_model_dir}", f"run_dir={run}",
               f"reward_model.path={tiny_orm_dir}", "reward_model.kind=orm", "reward_model.verifier_weight=0",
               "task.args.num_samples=10", "bestofn.batch_size=3", "bestofn.num_samples=4"])  # fmt: skip
    assert rc == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["prompts"] == 10 and summary["sft_rows"] == 10  # 10 prompts in batches of 3: none lost
    samples, sft, pairs = _jsonl(run / "samples.jsonl"), _jsonl(run / "sft.jsonl"), _jsonl(run / "pairs.jsonl")
    assert len(samples) == 40 and len(pairs) + summary["pairs_dropped"] == 10
    # verifier_weight 0: the score is the ORM's own score of (prompt, completion), and the best one is kept
    rm = load_reward_model(str(tiny_orm_dir), "orm")
    by_id: dict[str, list[dict]] = {}
    for r in samples:
        by_id.setdefault(r["id"], []).append(r)
    for row in sft:
        group = by_id[row["meta"]["source_id"]]
        conv = [conversation(rm.tokenizer, row["prompt"], r["completion"]) for r in group]  # as RL presents them
        want = rm.score([p for p, _ in conv], [c for _, c in conv])
        assert [r["score"] for r in group] == pytest.approx(want, abs=1e-5)
        assert row["meta"]["index"] == max(range(4), key=lambda i: (want[i], -i))
    assert all(p["meta"]["chosen_score"] > p["meta"]["rejected_score"] and {"prompt", "chosen", "rejected"} <= set(p) for p in pairs)
    assert (run / "bestofn.png").read_bytes()[:4] == b"\x89PNG"
    # the SFT trainer reads the rows as written
    rc = main(["train", str(CONFIGS / "smoke_sft.yaml"), f"model.name_or_path={tiny_model_dir}", f"run_dir={tmp_path / 'sft'}",
               "task.name=dataset", f"task.args={{path: {run / 'sft.jsonl'}}}", "sft.max_steps=1", "sft.max_length=128"])  # fmt: skip
    assert rc == 0 and read_metrics(tmp_path / "sft" / "metrics.jsonl")[0]["tokens"] > 0
