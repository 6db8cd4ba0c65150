"""Checkpoint round trips on CPU with one accelerate process and a tiny Qwen2 built from a config."""

import json
import random

import numpy as np
import pytest
import safetensors.torch
import torch
import transformers
from accelerate import Accelerator
from tokenizers import Tokenizer, models, pre_tokenizers

from rlvr.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, save_pretrained


def tiny_qwen2(seed: int = 0) -> transformers.PreTrainedModel:
    torch.manual_seed(seed)
    config = transformers.Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1)
    return transformers.Qwen2ForCausalLM(config)


def tiny_tokenizer() -> transformers.PreTrainedTokenizerFast:
    words = ["<pad>", "<eos>", "<unk>"] + "the answer is one two three four plus equals".split()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                                unk_token="<unk>")


def train_setup(seed: int = 0):
    accelerator = Accelerator(cpu=True)
    model = tiny_qwen2(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    return accelerator, model, optimizer, scheduler


def train_step(model, optimizer, scheduler) -> None:
    ids = torch.randint(0, 64, (2, 6))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


def test_round_trip_restores_weights_optimizer_scheduler_and_rng(tmp_path):
    accelerator, model, optimizer, scheduler = train_setup()
    for _ in range(2):
        train_step(model, optimizer, scheduler)
    ckpt = save_checkpoint(accelerator, tmp_path, 2, {"data_position": 17})
    assert ckpt == tmp_path / "step_00000002"
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    p0 = next(model.parameters())
    exp_avg = optimizer.state[p0]["exp_avg"].clone()
    lr, sched_step = scheduler.get_last_lr()[0], scheduler.state_dict()["last_epoch"]
    expected_rand = (torch.rand(4), random.random(), np.random.rand())

    for _ in range(3):  # move everything away from the saved state
        train_step(model, optimizer, scheduler)
    assert not torch.equal(optimizer.state[p0]["exp_avg"], exp_avg)
    assert scheduler.get_last_lr()[0] != lr

    state = load_checkpoint(accelerator, ckpt)
    assert state == {"data_position": 17, "step": 2}
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert torch.equal(optimizer.state[p0]["exp_avg"], exp_avg)
    assert scheduler.state_dict()["last_epoch"] == sched_step
    assert scheduler.get_last_lr()[0] == lr
    assert torch.equal(torch.rand(4), expected_rand[0])
    assert random.random() == expected_rand[1]
    assert np.random.rand() == expected_rand[2]


def test_keep_last_prunes_and_latest_ignores_incomplete(tmp_path):
    accelerator, model, optimizer, scheduler = train_setup()
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None
    for step in (1, 2, 3):
        save_checkpoint(accelerator, tmp_path, step, {}, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000002", "step_00000003"]
    # a save killed midway: its temporary dir, and a step dir copied by hand without trainer_state.json
    (tmp_path / ".tmp_step_00000009").mkdir()
    (tmp_path / ".tmp_step_00000009" / "model.safetensors").write_bytes(b"partial")
    (tmp_path / "step_00000008").mkdir()
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000003"
    # the next save clears the stale temporary dir; re-saving an existing step replaces it
    save_checkpoint(accelerator, tmp_path, 3, {"note": "again"}, keep_last=2)
    assert not (tmp_path / ".tmp_step_00000009").exists()
    assert json.loads((tmp_path / "step_00000003" / "trainer_state.json").read_text())["note"] == "again"
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000003"


def test_bad_trainer_state_fails_before_writing(tmp_path):
    accelerator, *_ = train_setup()
    with pytest.raises(TypeError):
        save_checkpoint(accelerator, tmp_path, 1, {"tensor": torch.zeros(1)})
    with pytest.raises(ValueError, match="step"):
        save_checkpoint(accelerator, tmp_path, 1, {"step": 2})
    assert not tmp_path.joinpath("step_00000001").exists()
    with pytest.raises(FileNotFoundError, match="trainer_state.json"):
        load_checkpoint(accelerator, tmp_path)


def test_save_pretrained_reloads_with_transformers(tmp_path):
    accelerator, model, optimizer, scheduler = train_setup()
    tokenizer = tiny_tokenizer()
    out = save_pretrained(accelerator, model, tokenizer, tmp_path / "final")
    assert (out / "model.safetensors").is_file()
    assert (out / "generation_config.json").is_file()
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out)
    ids = torch.tensor(tokenizer("the answer is two")["input_ids"])[None]  # (1, T)
    assert ids.shape[1] == 4
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, model(ids).logits)
    # PreTrainedTokenizerFast, not AutoTokenizer: next to a qwen2 config.json, AutoTokenizer (transformers 5)
    # rebuilds a Qwen2 BPE tokenizer, which our WordLevel test vocabulary is not.
    reloaded_tok = transformers.PreTrainedTokenizerFast.from_pretrained(out)
    assert reloaded_tok("one plus one")["input_ids"] == tokenizer("one plus one")["input_ids"] == [6, 10, 6]


def test_lora_saves_merged_weights_as_plain_model(tmp_path):
    peft = pytest.importorskip("peft")
    accelerator = Accelerator(cpu=True)
    lora_cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    model = peft.get_peft_model(tiny_qwen2(), lora_cfg)
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # B starts at zero; make the adapter matter
            p.data.normal_(std=0.5)
    model = accelerator.prepare(model)
    out = save_pretrained(accelerator, model, tiny_tokenizer(), tmp_path / "final")

    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out)
    saved = safetensors.torch.load_file(out / "model.safetensors")
    assert sorted(saved) == sorted(tiny_qwen2().state_dict())  # plain Qwen2 key names, no lora/base_layer
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    with torch.no_grad():
        want = model(input_ids=ids).logits
        base_only = tiny_qwen2()(ids).logits
        got = reloaded(ids).logits
    assert not torch.allclose(want, base_only, atol=1e-3)  # the adapter changes outputs...
    assert torch.allclose(got, want, atol=1e-5)  # ...and the merged model reproduces them
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    # the training model was not modified (still unmerged LoRA)
    assert not any(getattr(m, "merged", False) for m in model.modules())


DDP_WORKER = '''
import json, sys, torch, transformers
from accelerate import Accelerator
from rlvr.checkpoint import load_checkpoint, save_checkpoint, save_pretrained
root = sys.argv[1]
acc = Accelerator(cpu=True)
torch.manual_seed(0)
cfg = transformers.Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                               num_attention_heads=2, num_key_value_heads=1)
model = transformers.Qwen2ForCausalLM(cfg)
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
model, opt = acc.prepare(model, opt)
torch.manual_seed(100 + acc.process_index)  # different data stream per rank

def step():
    ids = torch.randint(0, 64, (2, 6))
    acc.backward(model(input_ids=ids, labels=ids).loss)
    opt.step()
    opt.zero_grad()

step()
ckpt = save_checkpoint(acc, root + "/ckpt", 1, {"rank0_pos": 7})
want_rand = torch.rand(3).tolist()
want_w = {k: v.clone() for k, v in model.state_dict().items()}
step()
save_checkpoint(acc, root + "/ckpt", 2, {}, keep_last=2)
state = load_checkpoint(acc, ckpt)
ok = (torch.rand(3).tolist() == want_rand and state["rank0_pos"] == 7
      and all(torch.equal(v, want_w[k]) for k, v in model.state_dict().items()))
save_pretrained(acc, model, None, root + "/final")
with open(f"{root}/rank{acc.process_index}.json", "w") as f:
    json.dump({"ok": ok, "rand": want_rand, "world": acc.num_processes}, f)
'''


@pytest.mark.slow
def test_two_gloo_processes_save_and_restore_per_rank_rng(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert all(r["ok"] and r["world"] == 2 for r in ranks)
    assert ranks[0]["rand"] != ranks[1]["rand"]  # each rank got its own RNG stream back
    ckpt_files = sorted(p.name for p in (tmp_path / "ckpt" / "step_00000001").iterdir())
    assert {"random_states_0.pkl", "random_states_1.pkl", "trainer_state.json"} <= set(ckpt_files)
    assert transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "final").config.num_hidden_layers == 1
