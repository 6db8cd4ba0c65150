"""On-policy distillation (`algorithm: opd`): the teacher's vocabulary is checked against the student's before
training (size and token-to-id map, the error naming both), and a teacher identical to the student gives
zero advantage on the student's own samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rlvr.config import load_config
from rlvr.policy import load_tokenizer
from rlvr.tiny_models import resolve_model_path
from rlvr.trainers import opd

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "smoke_opd.yaml"


def _teacher_with_vocab(tmp_path: Path, name: str, edit) -> Path:
    d = tmp_path / name
    shutil.copytree(resolve_model_path("tiny-qwen2"), d)
    tj = json.loads((d / "tokenizer.json").read_text())
    edit(tj["model"]["vocab"])
    (d / "tokenizer.json").write_text(json.dumps(tj))
    return d


def _swap_a_b(vocab: dict) -> None:
    vocab["a"], vocab["b"] = vocab["b"], vocab["a"]


def test_teacher_with_another_vocabulary_is_refused_naming_both(tmp_path):
    student = load_tokenizer(resolve_model_path("tiny-qwen2-small"))
    same = load_tokenizer(resolve_model_path("tiny-qwen2"))
    opd.check_same_vocabulary(student, same, "tiny-qwen2-small", "tiny-qwen2")  # shared tokenizer: fine
    swapped = _teacher_with_vocab(tmp_path, "swapped", _swap_a_b)
    with pytest.raises(ValueError, match=r"'.*swapped'.*'tiny-qwen2-small'.*token 'a' is id \d+ for the student"):
        opd.check_same_vocabulary(student, load_tokenizer(str(swapped)), "tiny-qwen2-small", str(swapped))
    bigger = _teacher_with_vocab(tmp_path, "bigger", lambda v: v.update({"zzzz": len(v)}))
    with pytest.raises(ValueError, match=r"bigger' \(\d+ tokens\) and student .*tiny-qwen2-small' \(\d+ tokens\)"):
        opd.check_same_vocabulary(student, load_tokenizer(str(bigger)), "tiny-qwen2-small", str(bigger))
    # `rlvr train` checks it before the first step: nothing is trained, no checkpoint written
    cfg = load_config(CONFIG, [f"run_dir={tmp_path / 'run'}", f"opd.teacher={swapped}"])
    with pytest.raises(ValueError, match="do not share a vocabulary"):
        opd.train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_teacher_equal_to_the_student_gives_zero_advantage(tmp_path):
    from rlvr.trainers.grpo import collect
    from rlvr.trainers.runtime import PromptStream, build_runtime, build_task
    from rlvr.generation import build_generator
    from verifiers.pool import VerifierPool

    student = resolve_model_path("tiny-qwen2-small")
    cfg = load_config(CONFIG, [f"run_dir={tmp_path / 'run'}", f"opd.teacher={student}", "grpo.prompts_per_step=2"])
    rt = build_runtime(cfg, total_steps=1)
    teacher = opd.load_teacher(cfg, rt)
    stream = PromptStream(build_task(cfg.task, "task"), 0, 0)
    generator = build_generator(cfg.generation, rt.policy, rt.tokenizer, cfg.model.name_or_path)
    with VerifierPool(num_workers=1) as pool:
        ro = collect(rt, stream, generator, pool, (cfg.verifier.name, cfg.verifier.args), cfg.generation.sampling(), {})
    batch, m = opd.prepare_batch(rt, ro, teacher)
    mask = batch.completion_mask
    assert mask.sum() > 0
    assert batch.extra["advantages"].abs().max().item() < 1e-5  # same model, same tokens: log-ratio 0 everywhere
    assert abs(m["teacher_kl"]) < 1e-5
