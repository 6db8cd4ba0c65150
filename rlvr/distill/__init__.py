"""Reasoning-trace distillation: a teacher's verified traces into a smaller student.

`rlvr distill CONFIG` (`rlvr.distill.pipeline`) runs three stages, each also alone: `generate` (K traces per
problem from the teacher, parquet shards with provenance, resumable: `rlvr.distill.generate`), `filter`
(composable, counted filters and a per-problem report: `rlvr.distill.filters`), `train` (the SFT trainer on
the kept traces, the student's held-out accuracy before and after through `rlvr.evaluate`).
`rlvr.distill.provenance` names the teacher's revision and the verifier's version; `rlvr.distill.demo` is
`rlvr demo distill`. On-policy distillation is a trainer (`algorithm: opd`, `rlvr.trainers.opd`); its
divergences are in `rlvr.losses.distill`. The trace schema and reader are `tasks.traces`.
This package root imports nothing heavy.
"""
