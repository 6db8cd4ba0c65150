"""AdamW on 16-bit weights at a typical RL learning rate: the step rounds away, and the runtime says so."""

from __future__ import annotations

import logging

import torch

from rlvr.trainers.runtime import warn_low_precision_updates


def test_bf16_weights_at_lr_1e6_warn_and_the_update_really_vanishes(caplog):
    torch.manual_seed(0)
    w = torch.nn.Parameter((torch.randn(4096) * 0.02).to(torch.bfloat16))
    before = w.detach().clone()
    opt = torch.optim.AdamW([w], lr=1e-6, weight_decay=0.0)
    w.grad = torch.ones_like(w)
    opt.step()
    unchanged = float((w.detach() == before).float().mean())
    assert unchanged > 0.9  # what the warning is about: nearly every weight kept its value
    with caplog.at_level(logging.WARNING, logger="rlvr"):
        warn_low_precision_updates([w], 1e-6)
    assert "round away" in caplog.text and "float32" in caplog.text


def test_float32_weights_or_a_large_step_do_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="rlvr"):
        warn_low_precision_updates([torch.nn.Parameter(torch.randn(4096) * 0.02)], 1e-6)
        warn_low_precision_updates([torch.nn.Parameter((torch.randn(4096) * 0.02).to(torch.bfloat16))], 1e-2)
    assert caplog.text == ""
