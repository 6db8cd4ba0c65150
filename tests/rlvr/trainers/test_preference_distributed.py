"""Scale out: 2 CPU processes (torchrun, gloo) make the same DPO and KTO update as 1 process on the same global
batch. dist_preference_update.py runs once with plain python (world 1) and once under torchrun (world 2); the
gradients the optimizer stepped on are the tight check (see test_distributed.py for why, and for `_run`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from test_distributed import _run, _torchrun

SCRIPT = Path(__file__).resolve().parent / "dist_preference_update.py"
LR = 1e-3  # dist_preference_update.config's optim.lr


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    single, dist = tmp_path_factory.mktemp("pref_single"), tmp_path_factory.mktemp("pref_dist")
    _run([sys.executable, str(SCRIPT), str(tiny_model_dir), str(single)], cwd=single)
    _run(_torchrun([str(SCRIPT), str(tiny_model_dir), str(dist)]), cwd=dist)
    return single, dist


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["dpo", "kto"])
def test_two_processes_update_like_one(runs, algo):
    single_dir, dist_dir = runs
    one = torch.load(single_dir / f"{algo}.rank0.pt")
    r0, r1 = (torch.load(dist_dir / f"{algo}.rank{r}.pt") for r in (0, 1))
    assert (one["world"], r0["world"], r1["world"]) == (1, 2, 2)
    # the sharded reference pass gathers every row's value on every rank, in the single run's order
    torch.testing.assert_close(r0["ref"], one["ref"], rtol=1e-6, atol=1e-5)  # other batches: float round-off
    torch.testing.assert_close(r1["ref"], r0["ref"], rtol=0, atol=0)
    if algo == "kto":
        assert set(one["labels"]) == {True, False}
    for step, m in enumerate(one["metrics"]):
        for k, v in m.items():
            if step == 0 and k in ("rewards/accuracies", "rewards/ties"):
                continue  # reference = policy: each pair's tie holds or breaks by float round-off of its layout
            assert r0["metrics"][step][k] == pytest.approx(v, rel=1e-4, abs=1e-6), f"update {step}: {k}"
            assert r1["metrics"][step][k] == r0["metrics"][step][k], k
    first, second = one["metrics"]
    assert first["loss"] > 0 and abs(first["rewards/margins"]) < 1e-5 and abs(second["rewards/margins"]) > 1e-3
    if algo == "kto":
        assert first["kl"] == 0.0 and second["kl"] >= 0.0  # an estimate below 0 is clamped
        assert abs(second["kl_probe"]) > 1e-2  # averaged over both ranks' mismatched pairs, compared above
    assert len(one["grads"]) == len(r0["grads"]) == 2
    for step, (atol, rtol) in enumerate([(1e-6, 1e-5), (1e-5, 1e-4)]):  # the second from weights one step apart
        for name, g in one["grads"][step].items():
            assert g.abs().max() > 0, f"update {step}: {name} got no gradient"
            torch.testing.assert_close(r0["grads"][step][name], g, atol=atol, rtol=rtol, msg=lambda m: f"{step} {name}: {m}")
            torch.testing.assert_close(r1["grads"][step][name], r0["grads"][step][name], atol=0, rtol=0)
    for name, p in one["params"].items():
        torch.testing.assert_close(r0["params"][name], p, atol=0.05 * LR, rtol=0, msg=lambda m: f"{name}: {m}")
        torch.testing.assert_close(r1["params"][name], r0["params"][name], atol=0, rtol=0)  # DDP keeps ranks equal
