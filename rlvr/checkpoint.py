"""Training checkpoints (resume after a crash) and the final Hugging Face export.

What it does:
- `save_checkpoint` stores everything registered with `accelerator.prepare` (models, optimizers, LR schedulers,
  GradScaler, `register_for_checkpointing` objects) through `accelerator.save_state`, which also writes one RNG file
  per process (python `random`, numpy, torch CPU and CUDA default generators), plus our `trainer_state.json`
  (step, data position, anything JSON-able). The save is atomic: everything goes into a hidden temporary sibling
  (`.tmp_step_XXXXXXXX`) that is renamed to `step_XXXXXXXX` only once complete, so a SIGKILL mid-save never leaves
  a directory `latest_checkpoint` would pick. Only the newest `keep_last` complete checkpoints are kept.
- `load_checkpoint` restores all of that with `accelerator.load_state` and returns the trainer state.
- `save_pretrained` writes a plain safetensors model + tokenizer + generation config that
  `AutoModelForCausalLM.from_pretrained` and vLLM load. A peft (LoRA) model is saved merged (see below).

What it does not do:
- Data position: accelerate saves a sampler only for its own seedable samplers / stateful dataloaders; our trainers
  keep their own position (e.g. `{"epoch": e, "batch": b}`) in `trainer_state` and skip ahead on resume.
- Non-default `torch.Generator` objects (e.g. one passed to sampling) are not in accelerate's RNG files; store their
  `get_state()` in `trainer_state` (as a list of ints) or register an object with `state_dict`/`load_state_dict`.
- Multi-node: `ckpt_root` must be on a filesystem shared by all nodes (the main process renames the directory).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator

TRAINER_STATE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step_(\d{8,})$")
_TMP_PREFIX = ".tmp_step_"
_OLD_PREFIX = ".old_step_"


def _complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, dir) of complete checkpoints under `root`, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        # The rename makes a `step_*` dir complete; the json check also rejects a half-copied dir made by hand.
        if match and child.is_dir() and (child / TRAINER_STATE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(ckpt_root: str | Path) -> Path | None:
    """The newest complete checkpoint dir under `ckpt_root`, or None. Temporary / incomplete dirs are ignored."""
    found = _complete_checkpoints(Path(ckpt_root))
    return found[-1][1] if found else None


def save_checkpoint(
    accelerator: Accelerator, ckpt_root: str | Path, step: int, trainer_state: dict, *, keep_last: int = 2
) -> Path:
    """Save the accelerator state + `trainer_state` to `ckpt_root/step_{step:08d}` atomically; return that path.

    Every process must call it (accelerate saves per-process RNG files and gathers sharded weights).
    `trainer_state["step"]`, if present, must equal `step`; it is set to `step` otherwise.
    """
    if step < 0:
        raise ValueError(f"save_checkpoint: step must be >= 0, got {step}")
    if keep_last < 1:
        raise ValueError(f"save_checkpoint: keep_last must be >= 1, got {keep_last}")
    if accelerator.project_configuration.automatic_checkpoint_naming:
        # save_state would ignore our directory and write to project_dir/checkpoints instead.
        raise ValueError("save_checkpoint: use an Accelerator without ProjectConfiguration(automatic_checkpoint_naming=True)")
    if "step" in trainer_state and trainer_state["step"] != step:
        raise ValueError(f"save_checkpoint: trainer_state['step']={trainer_state['step']!r} but step={step}")
    # Serialise first: a non-JSON-able trainer_state fails before any heavy write.
    state_text = json.dumps({**trainer_state, "step": step}, indent=2, sort_keys=True)

    root = Path(ckpt_root)
    name = f"step_{step:08d}"
    final, tmp = root / name, root / f"{_TMP_PREFIX}{step:08d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():  # left over by a save that was killed
            shutil.rmtree(tmp)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()  # all RNG files / shards written before the rename

    if accelerator.is_main_process:
        (tmp / TRAINER_STATE).write_text(state_text + "\n")
        if final.exists():  # re-saving a step (e.g. after resuming from it): swap, then drop the old one
            old = root / f"{_OLD_PREFIX}{step:08d}"
            if old.exists():
                shutil.rmtree(old)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
        _prune(root, keep_last, keep=final)
    accelerator.wait_for_everyone()
    return final


def _prune(root: Path, keep_last: int, keep: Path) -> None:
    """Drop all but the newest `keep_last` complete checkpoints (never `keep`) and stale temporary dirs."""
    complete = _complete_checkpoints(root)
    for _, path in complete[: max(0, len(complete) - keep_last)]:
        if path != keep:
            shutil.rmtree(path)
    # Saves run one at a time, so any other temporary dir is from a killed save.
    for child in root.iterdir():
        if child.is_dir() and child.name.startswith((_TMP_PREFIX, _OLD_PREFIX)):
            shutil.rmtree(child)


def load_checkpoint(accelerator: Accelerator, ckpt_dir: str | Path) -> dict:
    """Restore models/optimizers/schedulers/RNG registered with `accelerator` from `ckpt_dir`; return trainer_state.

    The same objects must have been passed to `accelerator.prepare` (same order) as when the checkpoint was saved.
    """
    ckpt_dir = Path(ckpt_dir)
    state_file = ckpt_dir / TRAINER_STATE
    if not state_file.is_file():
        raise FileNotFoundError(f"{ckpt_dir} is not a complete checkpoint: {TRAINER_STATE} is missing")
    accelerator.load_state(str(ckpt_dir))
    try:
        return json.loads(state_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{state_file}: not valid JSON ({err})") from err


# ----------------------------------------------------------------------------------------------------------------
# Final export


def save_pretrained(accelerator: Accelerator, model: torch.nn.Module, tokenizer, out_dir: str | Path) -> Path:
    """Write `out_dir` loadable by `AutoModelForCausalLM.from_pretrained` and vLLM (safetensors); return it.

    Every process must call it: the full state dict is gathered first (FSDP / DeepSpeed ZeRO-3 shard weights).
    A peft LoRA model is saved two ways: merged weights (W + scaling * B @ A, computed on the gathered state dict,
    so the training model is neither mutated nor copied) at `out_dir` as a plain model, and the adapter alone under
    `out_dir/adapter` for further LoRA training. DoRA and non-Linear LoRA layers are refused with an error.
    `tokenizer` may be None (nothing saved for it).
    """
    out = Path(out_dir)
    state = accelerator.get_state_dict(model)  # full dict on the main process
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if is_peft(unwrapped):
            unwrapped.save_pretrained(str(out / "adapter"), state_dict=state)
            base = unwrapped.get_base_model()
            base.save_pretrained(str(out), state_dict=merged_lora_state(unwrapped, state))
        else:
            unwrapped.save_pretrained(str(out), state_dict=state)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(out))
    accelerator.wait_for_everyone()
    return out


def is_peft(model: torch.nn.Module) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # peft not installed: cannot be a peft model
        return False
    return isinstance(model, PeftModel)


def merged_lora_state(peft_model, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The base model's state dict (its own key names) with the active LoRA adapter merged in."""
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.lora import LoraLayer

    adapter = peft_model.active_adapter
    if not isinstance(adapter, str):
        raise ValueError(f"save_pretrained: merging needs one active adapter, got {adapter!r}")
    lora = {name: mod for name, mod in peft_model.named_modules() if isinstance(mod, LoraLayer)}
    for name, mod in lora.items():
        if adapter not in mod.lora_A:
            continue
        if not isinstance(mod, LoraLinear):
            raise NotImplementedError(f"save_pretrained: cannot merge {type(mod).__name__} LoRA layer {name}; "
                                      "save the adapter with model.save_pretrained instead")
        if mod.use_dora.get(adapter, False) or getattr(mod, "lora_bias", {}).get(adapter, False):
            raise NotImplementedError(f"save_pretrained: merging DoRA / lora_bias layer {name} is not supported")

    prefix = "base_model.model."  # PeftModel -> LoraModel -> base model
    merged = {}
    for key, value in state.items():
        if ".lora_" in key or ".original_module." in key:
            continue  # adapter tensors (merged below) and the frozen copy behind modules_to_save
        module_name, _, leaf = key.rpartition(".")
        if module_name.endswith(".base_layer") and leaf == "weight" and module_name[: -len(".base_layer")] in lora:
            owner = module_name[: -len(".base_layer")]
            mod = lora[owner]
            if adapter in mod.lora_A:
                a = state[f"{owner}.lora_A.{adapter}.weight"].float()  # (r, in)
                b = state[f"{owner}.lora_B.{adapter}.weight"].float()  # (out, r)
                delta = b @ a * mod.scaling[adapter]  # (out, in)
                if mod.fan_in_fan_out:
                    delta = delta.T
                value = (value.float() + delta.to(value.device)).to(value.dtype)
        key = key.replace(".base_layer.", ".").replace(f".modules_to_save.{adapter}.", ".")
        merged[key.removeprefix(prefix)] = value
    return merged
