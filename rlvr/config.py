"""Typed configuration: dataclasses filled from YAML plus dotted CLI overrides.

`load_config(path, overrides)` reads a YAML file into `TrainConfig`, applies
overrides such as `optim.lr=1e-5`, and checks every key and type: an unknown
key or a value of the wrong type is an error that names the key's dotted
path (and suggests the nearest valid key). Each component owns its block;
components are named by registry name, never by import path.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlvr.generation import GenerationConfig
from rlvr.policy import ModelConfig


class ConfigError(ValueError):
    pass


@dataclass
class ComponentConfig:
    """A registry name plus its arguments (a task or a verifier)."""

    name: str = ""
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class VerifierConfig:
    name: str = ""  # "" = the task's default verifier
    args: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 2  # verification worker processes
    timeout_s: float = 5.0  # hard per-item timeout; a stuck worker is killed and replaced
    preload: list[str] = field(default_factory=list)  # modules workers import (plugins without an entry point)


@dataclass
class OptimConfig:
    lr: float = 1e-6
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    lr_scheduler: str = "constant"  # any transformers scheduler name: constant, linear, cosine, ...
    warmup_steps: int = 0
    max_grad_norm: float = 1.0  # 0 = no clipping


@dataclass
class GRPOConfig:
    prompts_per_step: int = 8  # prompts per optimizer step (x num_generations completions)
    micro_batch_size: int = 16  # completions per forward/backward (gradient accumulation inside a step)
    max_tokens_per_micro_batch: int = 0  # > 0: padding-free micro-batches of at most this many prompt + completion tokens (instead of micro_batch_size rows)
    num_iterations: int = 1  # updates per batch (PPO epochs); 1 = on-policy fast path, no old-logp forward
    mini_batches: int = 1  # optimizer steps per batch per iteration
    estimator: str = "grpo"  # grpo | rloo
    scale_rewards: str = "group"  # group | batch | none (Dr.GRPO)
    loss_agg_mode: str = "token-mean"  # token-mean | seq-mean-token-mean | seq-mean-token-sum | seq-mean-token-sum-norm
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.2  # DAPO clip-higher: e.g. 0.28
    clip_ratio_c: float = 0.0  # dual-clip bound for negative advantages (0 = off)
    kl_coef: float = 0.0  # 0 = no reference model is loaded
    kl_estimator: str = "k3"  # k1 | k2 | k3
    kl_in_reward: bool = False  # subtract kl_coef * KL from the reward instead of adding it to the loss
    mask_truncated_completions: bool = False  # completions cut at max_new_tokens give no gradient
    filter_groups: bool = False  # DAPO dynamic sampling: drop zero-variance groups, sample more
    max_filter_rounds: int = 4  # generation rounds per step when filter_groups is on


@dataclass
class CriticConfig:
    mode: str = "separate"  # separate (own model, own optimizer) | shared (value head on the policy's backbone)
    init: str = ""  # separate: "" = the policy's weights; else a path/hub name of a critic, reward model or LM
    lr: float = 1e-5  # the critic's own learning rate (shared: the head's)
    warmup_steps: int = 0  # first steps train only the critic (the policy is not updated)
    clip_range: float = 0.2  # value clipping around the rollout's values (0 = off)
    vf_coef: float = 0.1  # weight of the value loss in the summed loss (shared backbone; separate: scales its grads)


@dataclass
class PPOConfig:
    prompts_per_step: int = 8  # prompts per step (x generation.num_generations completions)
    micro_batch_size: int = 16  # completions per forward/backward
    ppo_epochs: int = 1  # passes over each rolled-out batch
    mini_batches: int = 1  # optimizer steps per pass
    loss_agg_mode: str = "token-mean"  # token-mean | seq-mean-token-mean | seq-mean-token-sum | seq-mean-token-sum-norm
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.2
    clip_ratio_c: float = 0.0  # dual-clip bound for negative advantages (0 = off)
    gamma: float = 1.0  # discount, in [0, 1]
    lam: float = 0.95  # GAE lambda, in [0, 1]
    whiten_advantages: bool = True  # over the global batch (all processes)
    truncation: str = ""  # required: penalize | mask | bootstrap (completions cut at max_new_tokens)
    truncation_penalty: float = 1.0  # truncation: penalize subtracts it from the score
    kl_coef: float = 0.05  # KL to the reference (initial value when adaptive); 0 = no reference model
    kl_in_reward: bool = True  # per-token -kl_coef * KL in the reward (classic RLHF)
    kl_estimator: str = "k1"  # estimator of the KL in the reward: k1 | k2 | k3
    kl_loss: bool = False  # KL in the loss instead (GRPO-style); refused together with kl_in_reward
    kl_loss_estimator: str = "k3"
    kl_ctrl: str = "fixed"  # fixed | adaptive
    kl_target: float = 6.0  # adaptive: target KL per sequence (nats, summed over tokens)
    kl_horizon: float = 10000.0  # adaptive: sequences over which the error is corrected
    critic: CriticConfig = field(default_factory=CriticConfig)


@dataclass
class SFTConfig:
    batch_size: int = 16  # examples per optimizer step
    micro_batch_size: int = 16  # examples per forward/backward (without packing)
    epochs: int = 1
    max_steps: int = 0  # 0 = run all epochs
    max_length: int = 512  # longer examples are an error, never silently cut
    packing: bool = False  # concatenate examples into rows (attention kept per example): no compute on padding
    max_tokens_per_micro_batch: int = 0  # with packing: tokens per forward/backward (0 = micro_batch_size * max_length)


@dataclass
class PRMConfig:
    """`algorithm: prm`: a token-classification head trained on step labels at the separator positions.
    Data: `task` (stepwise_file | arithmetic_steps), held out: `eval.task`, every `eval.every` steps."""

    head: str = "two_class"  # two_class (TRL, Qwen2.5-Math-PRM) | one_logit; both take soft labels
    separator: str = "<extra_0>"  # must be one token of the tokenizer
    batch_size: int = 16  # solutions per optimizer step
    micro_batch_size: int = 16
    epochs: int = 1
    max_steps: int = 0  # 0 = run all epochs
    max_length: int = 1024  # longer solutions are an error naming the example, never cut


@dataclass
class RMConfig:
    """`algorithm: rm`: a Bradley-Terry outcome reward model. Data: `task` (preference pairs), held out: `eval.task`."""

    margin: float = 0.0  # the chosen score should beat the rejected one by this (Llama 2's margin loss)
    center_rewards_coefficient: float = 0.0  # Eisenstein et al. centering, c * (r_c + r_r)^2 (TRL's name; 0.01 is usual)
    batch_size: int = 16  # pairs per optimizer step
    micro_batch_size: int = 8  # pairs per forward/backward (x2 sequences)
    epochs: int = 1
    max_steps: int = 0  # 0 = run all epochs
    max_length: int = 1024  # a longer pair is a bad row naming it, never cut
    skip_bad_rows: bool = False  # skip (and count, and list) rows that cannot be used instead of stopping


@dataclass
class RewardModelConfig:
    """A trained reward model used as a reward beside the verifier (GRPO, best-of-N); never instead of it."""

    path: str = ""  # "" = none; a model directory (a run's final/) or a hub name
    kind: str = "orm"  # orm (one score) | prm (a score per step)
    combine: str = "weighted_sum"  # weighted_sum | gate (RM counts only when the verifier passes) | normalize_then_sum
    weight: float = 1.0  # the reward model's weight
    verifier_weight: float = 1.0  # the verifier's weight (0 = rank by the reward model alone)
    prm_aggregate: str = "min"  # PRM -> one score: min | product | last
    process_advantages: str = "off"  # GRPO with a PRM: off | sum (DeepSeekMath process supervision) | min_form (PURE)
    min_form_temperature: float = 0.1
    step_std: str = "population"  # process_advantages normalisation: population | sample
    step_delimiter: str = "\n\n"  # how a completion is cut into steps
    separator: str = "<extra_0>"  # PRM step separator, one token
    token_budget: int = 8192  # padded tokens per reward-model forward
    max_length: int = 0  # 0 = the model's context
    dtype: str = "float32"
    trust_remote_code: bool = False  # Qwen2.5-Math-PRM's head is remote code


@dataclass
class BestOfNConfig:
    """`rlvr bestofn` / `algorithm: bestofn`: N samples per prompt, scored; SFT rows and DPO pairs written."""

    num_samples: int = 8  # N completions per prompt
    prompts: int = 0  # prompts of the task to use (0 = all)
    batch_size: int = 16  # prompts per generate call (x num_samples sequences)
    keep: str = "best"  # best (one per prompt) | passing (every distinct completion the verifier passes)
    min_gap: float = 0.0  # a pair needs best - worst > min_gap, else the group is dropped (counted)


@dataclass
class DPOConfig:
    loss_type: str = "sigmoid"  # sigmoid | robust | hinge | ipo (per-token) | ipo_sum | sigmoid_norm | simpo (rlvr.losses.preference)
    beta: float = 0.1
    label_smoothing: float = 0.0  # sigmoid (conservative DPO), sigmoid_norm, simpo, robust; an error with the others
    simpo_gamma: float = 0.5  # SimPO's target margin: -log sigmoid(beta * (avg_c - avg_r) - simpo_gamma)
    nll_coef: float = 0.0  # + nll_coef * NLL of the chosen completions (CPO/SimPO's cpo_alpha, RPO's rpo_alpha)
    batch_size: int = 16  # pairs per optimizer step
    micro_batch_size: int = 8  # pairs per forward/backward (chosen and rejected in one forward)
    epochs: int = 1
    max_steps: int = 0  # 0 = run all epochs
    max_length: int = 1024  # prompt + completion tokens; a longer row is an error (or skipped), never cut
    skip_bad_rows: bool = False  # skip (and count, and list) rows that cannot be used instead of stopping


@dataclass
class KTOConfig:
    beta: float = 0.1
    desirable_weight: float = 1.0  # lambda_D
    undesirable_weight: float = 1.0  # lambda_U; keep lambda_D*n_D / (lambda_U*n_U) in [1, 4/3] (warned)
    batch_size: int = 16  # examples per optimizer step; >= 2, the KL reference point pairs them up
    micro_batch_size: int = 8  # examples per forward/backward
    epochs: int = 1
    max_steps: int = 0  # 0 = run all epochs
    max_length: int = 1024  # prompt + completion tokens; a longer row is an error (or skipped), never cut
    skip_bad_rows: bool = False  # skip (and count, and list) rows that cannot be used instead of stopping


@dataclass
class EvalConfig:
    task: ComponentConfig = field(default_factory=ComponentConfig)  # name "" = no evaluation
    every: int = 0  # steps between evaluations (0 = only before and after training)
    max_new_tokens: int = 0  # 0 = generation.max_new_tokens
    temperature: float = 0.0  # 0 = greedy
    samples_per_problem: int = 1  # n; accuracy (= avg@n) is the mean over problems of the fraction correct
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    k: list[int] = field(default_factory=list)  # k of pass@k and maj@k ([] = 1, 2, 4, ... below n, and n)
    bootstrap: int = 1000  # resamples of the two-level bootstrap behind the 95% intervals (0 = none)
    breakdown: list[str] = field(default_factory=lambda: ["level", "difficulty", "subject", "type"])  # meta fields


@dataclass
class DistillConfig:
    teacher: str = ""  # the model that writes the traces: tiny name, local dir, hub name or LoRA adapter dir
    teacher_dtype: str = ""  # "" = model.dtype
    stages: list[str] = field(default_factory=lambda: ["generate", "filter", "train"])  # `rlvr distill --stage` picks one
    traces: str = ""  # trace parquet file or folder; "" = run_dir/traces (what generate writes)
    shard_size: int = 64  # problems per parquet shard: the unit written whole and skipped on resume
    filters: list[str] = field(default_factory=lambda: ["complete", "verified", "dedup"])  # in order (rlvr.distill.filters)
    keep: str = "all"  # all | best (one trace per problem: highest verifier score, then fewest tokens)
    max_tokens: int = 0  # `length` filter: traces of more completion tokens are dropped
    near_dup_ngram: int = 3  # `near_dedup`: word n-grams compared within one problem's traces
    near_dup_threshold: float = 0.85  # `near_dedup`: Jaccard at or above which a trace is a near duplicate
    decontaminate: ComponentConfig = field(default_factory=ComponentConfig)  # task to decontaminate against ("" = eval.task)
    decontam_ngram: int = 8  # `decontaminate`: shared word n-grams of the problem text that flag a trace


@dataclass
class OPDConfig:
    teacher: str = ""  # the model whose log-probs score the student's samples (same vocabulary as the student)
    teacher_dtype: str = ""  # "" = model.dtype
    kl_coef: float = 1.0  # A_t = -kl_coef * (log p_student - log p_teacher) (Tinker's kl_penalty_coef)
    discount: float = 0.0  # 0 = each token's own term (Tinker's kl_discount_factor); else a discounted sum of later ones
    verifier_coef: float = 0.0  # + verifier_coef * the verifier's group advantage (0 = distillation alone)


@dataclass
class TrainConfig:
    algorithm: str = "grpo"  # grpo | ppo | sft | dpo | kto | rm | prm | bestofn | eval | distill | opd
    run_dir: str = "runs/default"
    seed: int = 0
    max_steps: int = 100
    save_every: int = 50  # steps between checkpoints (0 = only at the end)
    keep_last: int = 2  # checkpoints kept
    report_to: list[str] = field(default_factory=lambda: ["jsonl", "tensorboard", "wandb"])
    model: ModelConfig = field(default_factory=ModelConfig)
    task: ComponentConfig = field(default_factory=ComponentConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rm: RMConfig = field(default_factory=RMConfig)
    prm: PRMConfig = field(default_factory=PRMConfig)
    reward_model: RewardModelConfig = field(default_factory=RewardModelConfig)
    bestofn: BestOfNConfig = field(default_factory=BestOfNConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    kto: KTOConfig = field(default_factory=KTOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    opd: OPDConfig = field(default_factory=OPDConfig)


def _check(value: Any, tp: Any, path: str) -> Any:
    """`value` converted to type `tp`, or ConfigError naming `path`."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        opts = typing.get_args(tp)
        if value is None and type(None) in opts:
            return None
        return _check(value, next(o for o in opts if o is not type(None)), path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML reads 1e-5 as a string
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{path}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in hints:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {(prefix + '.' if prefix else '') + close[0]!r}?" if close else ""
            raise ConfigError(f"unknown config key {path!r}{hint} (valid: {', '.join(names)})")
        kwargs[key] = _check(value, hints[key], path)
    return cls(**kwargs)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {k!r} is not a mapping")
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    out = []
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"override {o!r}: expected key.path=value")
        key, raw = o.split("=", 1)
        out.append((key.strip(), yaml.safe_load(raw) if raw != "" else "")) 
    return out


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    for key, value in parse_overrides(list(overrides)):
        _set_dotted(data, key, value)
    try:
        return _build(TrainConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
