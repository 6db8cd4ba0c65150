"""HF `generate` backend: the fallback that runs anywhere (CPU or GPU).

Samples `n` completions per prompt in batches from the live training model
(so there is nothing to sync: `update_weights` is a no-op), stops on EOS or
stop strings, and returns token ids (EOS included, so the policy learns to
stop), text and finish reason. It does not return sampler log-probs: with the
same weights they equal the trainer's, which the trainer computes anyway.
"""

from __future__ import annotations

import torch

from rlvr.generation.base import SamplingParams
from rlvr.types import Completion


class HFGenerator:
    def __init__(self, model: torch.nn.Module, tokenizer, *, batch_size: int = 256):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size  # sequences per `generate` call
        self.pad_id = tokenizer.pad_token_id
        eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])

    def update_weights(self, model: torch.nn.Module) -> None:
        self.model = model  # samples from the live module: nothing to copy

    @torch.no_grad()
    def generate(self, prompt_ids: list[list[int]], n: int, sampling: SamplingParams) -> list[list[Completion]]:
        flat = [p for p in prompt_ids for _ in range(n)]  # each prompt n times, grouped
        out: list[Completion] = []
        for i in range(0, len(flat), self.batch_size):
            out.extend(self._generate_batch(flat[i : i + self.batch_size], sampling))
        return [out[j * n : (j + 1) * n] for j in range(len(prompt_ids))]

    def _generate_batch(self, prompts: list[list[int]], sampling: SamplingParams) -> list[Completion]:
        model = self.model
        device = next(model.parameters()).device
        P = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), P), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), P), dtype=torch.long)
        for r, p in enumerate(prompts):  # left padding: completions start at column P
            ids[r, P - len(p) :] = torch.tensor(p)
            mask[r, P - len(p) :] = 1
        greedy = sampling.temperature <= 0
        kwargs = dict(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=not greedy,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids),
        )
        if not greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or None)
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        was_training = model.training
        model.eval()
        try:
            seqs = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
        finally:
            model.train(was_training)
        completions = []
        for row in seqs[:, P:].tolist():
            toks, finish = [], "length"
            for t in row:
                toks.append(t)
                if t in self.eos_ids:
                    finish = "stop"
                    break
            while finish == "length" and toks and toks[-1] == self.pad_id:  # padding after a stop string
                toks.pop()
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            if finish == "length" and sampling.stop and any(s in text for s in sampling.stop):
                finish = "stop"
            if finish == "length" and len(toks) < sampling.max_new_tokens:  # stopped by a stop string
                finish = "stop"
            completions.append(Completion(text=text, token_ids=toks, finish_reason=finish))
        return completions
