"""Generation backends behind one protocol, and the factory trainers call."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rlvr.generation.base import Generator, SamplingParams


@dataclass
class VLLMOptions:
    gpu_memory_utilization: float = 0.3  # GPU: fraction of device memory for weights + KV cache
    kv_cache_gb: float = 0.0  # CPU: KV cache size in GiB (0 = 1 GiB)
    tensor_parallel_size: int = 1
    enable_sleep_mode: bool = False  # GPU: free the KV cache and weights during the update
    dtype: str = "auto"
    max_model_len: int = 2048
    enforce_eager: bool = True
    tis_cap: float = 0.0  # truncated importance sampling cap (0 = off); corrects sampler/trainer mismatch


@dataclass
class GenerationConfig:
    backend: str = "hf"  # hf | vllm
    num_generations: int = 8  # completions per prompt (the GRPO group size)
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    batch_size: int = 256  # sequences per HF generate call
    vllm: VLLMOptions = field(default_factory=VLLMOptions)

    def sampling(self, *, greedy: bool = False, seed: int | None = None) -> SamplingParams:
        return SamplingParams(
            temperature=0.0 if greedy else self.temperature,
            top_p=1.0 if greedy else self.top_p,
            top_k=0 if greedy else self.top_k,
            max_new_tokens=self.max_new_tokens,
            stop=tuple(self.stop),
            seed=seed,
        )


def build_generator(cfg: GenerationConfig, model: torch.nn.Module, tokenizer, model_path: str) -> Generator:
    if cfg.backend == "hf":
        from rlvr.generation.hf import HFGenerator

        return HFGenerator(model, tokenizer, batch_size=cfg.batch_size)
    if cfg.backend == "vllm":
        from rlvr.generation.vllm import VLLMGenerator
        from rlvr.tiny_models import resolve_model_path

        return VLLMGenerator(model_path=resolve_model_path(model_path), tokenizer=tokenizer, options=cfg.vllm)
    raise ValueError(f"generation.backend: {cfg.backend!r} is not one of 'hf', 'vllm'")


__all__ = ["GenerationConfig", "Generator", "SamplingParams", "VLLMOptions", "build_generator"]
