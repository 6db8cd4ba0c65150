"""Training metrics: one JSONL file per run, mirrored to TensorBoard and Weights & Biases when available.

What it does:
- `MetricsLogger` appends `{"step", "time", **metrics}` lines to `run_dir/metrics.jsonl` (flushed every line, so a
  crash loses nothing already logged), and mirrors them to TensorBoard (`run_dir/tensorboard`, if the `tensorboard`
  package is installed) and wandb (if installed and `WANDB_API_KEY` or `WANDB_MODE` is set; never prompts a login).
  On resume it drops lines past the checkpoint step so each step appears once.
- `read_metrics` / `plot_metrics` read the JSONL back and draw one PNG (matplotlib Agg, no display needed).
- `StepTimer` measures named sections of a step; `progress_bar` is tqdm set up for training logs.

What it does not do: aggregate across processes (trainers reduce with `accelerator.gather`/`reduce` and log on the
main process), or time GPU work exactly (CUDA is asynchronous; a section ends when Python leaves it).
This module imports no torch; tensors are converted through `.item()`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import math
import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


@functools.cache
def _say_skipped(reason: str) -> None:
    """Log why a backend is off, once per process (trainers may build several loggers)."""
    logger.info(reason)


def _to_number(key: str, value) -> float | int | None:
    """A JSON-able number for one metric; NaN/inf become None (JSON null)."""
    if hasattr(value, "item"):  # torch / numpy scalar or one-element tensor
        if getattr(value, "numel", lambda: 1)() != 1:
            raise ValueError(f"metric {key!r}: expected a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    raise TypeError(f"metric {key!r}: expected a number or scalar tensor, got {type(value).__name__}")


class MetricsLogger:
    """Log scalar metrics per step to JSONL (+ TensorBoard, wandb). Non-main processes write nothing."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        config: dict | None = None,
        report_to: tuple[str, ...] = ("jsonl", "tensorboard", "wandb"),
        resume_step: int | None = None,
        is_main_process: bool = True,
    ) -> None:
        unknown = set(report_to) - {"jsonl", "tensorboard", "wandb"}
        if unknown:
            raise ValueError(f"MetricsLogger: unknown report_to {sorted(unknown)}; expected jsonl, tensorboard, wandb")
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / METRICS_FILE
        self.active = is_main_process
        self._file = None
        self._tb = None
        self._wandb_run = None
        if not self.active:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if "jsonl" in report_to:
            self._file = self._open_jsonl(resume_step)
        if "tensorboard" in report_to:
            self._tb = self._open_tensorboard(resume_step)
        if "wandb" in report_to:
            self._wandb_run = self._open_wandb(config, resume_step)

    def _open_jsonl(self, resume_step: int | None):
        if resume_step is None:
            if self.path.exists() and self.path.stat().st_size > 0:
                logger.warning("%s exists and this is not a resume: starting it afresh", self.path)
            return self.path.open("w", buffering=1)
        # Lines after the checkpoint were computed by the crashed run and will be logged again.
        kept = [row for row in read_metrics(self.path) if row["step"] <= resume_step] if self.path.exists() else []
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))
        os.replace(tmp, self.path)
        return self.path.open("a", buffering=1)

    def _open_tensorboard(self, resume_step: int | None):
        if importlib.util.find_spec("tensorboard") is None:
            _say_skipped("tensorboard is not installed: not logging to TensorBoard")
            return None
        from torch.utils.tensorboard import SummaryWriter

        # purge_step hides events past the checkpoint that the crashed run wrote.
        purge = None if resume_step is None else resume_step + 1
        return SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=purge)

    def _open_wandb(self, config: dict | None, resume_step: int | None):
        if importlib.util.find_spec("wandb") is None:
            _say_skipped("wandb is not installed: not logging to wandb")
            return None
        if not (os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE")):
            _say_skipped("neither WANDB_API_KEY nor WANDB_MODE is set: not logging to wandb")
            return None
        import wandb

        # Keep the run id in the run dir so a resumed run continues the same wandb run.
        id_file = self.run_dir / "wandb_run_id.txt"
        run_id = id_file.read_text().strip() if resume_step is not None and id_file.exists() else secrets.token_hex(4)
        id_file.write_text(run_id + "\n")
        return wandb.init(project=os.environ.get("WANDB_PROJECT", "rlvr"), id=run_id, resume="allow",
                          dir=str(self.run_dir), config=config, name=self.run_dir.name)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record `metrics` at `step`. Tensors become floats; NaN/inf are kept as JSON null."""
        if not self.active:
            return
        values = {key: _to_number(key, value) for key, value in metrics.items()}
        if self._file is not None:
            row = {"step": int(step), "time": time.time(), **values}
            self._file.write(json.dumps(row) + "\n")
        finite = {k: v for k, v in values.items() if v is not None}
        if self._tb is not None:
            for key, value in finite.items():
                self._tb.add_scalar(key, value, global_step=step)
        if self._wandb_run is not None:
            self._wandb_run.log(finite, step=step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(path: str | Path) -> list[dict]:
    """All rows of a metrics JSONL file. A cut-off last line (a crash mid-write) is skipped; other bad lines raise."""
    path = Path(path)
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                logger.warning("%s:%d: skipping a cut-off last line", path, number)
                continue
            raise ValueError(f"{path}:{number}: not valid JSON ({err})") from err
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise ValueError(f"{path}:{number}: expected an object with an integer 'step', got {line[:80]!r}")
        rows.append(row)
    return rows


def _smooth(values: list[float], weight: float) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight**i))
    return out


def plot_metrics(
    jsonl_path: str | Path,
    png_path: str | Path,
    keys: tuple[str, ...] = ("reward/mean", "accuracy"),
    title: str | None = None,
) -> Path:
    """PNG with one subplot per key present (x = step): raw values plus a smoothed line. Missing keys are skipped."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = read_metrics(jsonl_path)
    series = {}
    for key in keys:
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if points:
            series[key] = points
        else:
            logger.info("%s: no values for %r, not plotted", jsonl_path, key)
    if not series:
        available = sorted({k for r in rows for k in r} - {"step", "time"})
        raise ValueError(f"{jsonl_path}: none of {list(keys)} has values; available: {available}")

    # Figure + Agg canvas directly: no pyplot global state, no display needed.
    fig = Figure(figsize=(6, 2.6 * len(series)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(series), 1, squeeze=False)[:, 0]
    for ax, (key, points) in zip(axes, series.items()):
        steps, values = zip(*points)
        ax.plot(steps, values, color="tab:blue", alpha=0.3, linewidth=1, label="raw")
        weight = 0.0 if len(values) < 5 else min(0.9, 1 - 5 / len(values))  # ~len/5 points of memory, at most 10
        ax.plot(steps, _smooth(list(values), weight), color="tab:blue", linewidth=2, label="smoothed")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    axes[0].legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    return png_path


class StepTimer:
    """Wall time of named sections: `with timer("generate"): ...`; `timer.pop()` -> {"time/generate": s}.

    A section entered several times before `pop` accumulates.
    """

    def __init__(self) -> None:
        self._totals: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._totals[name] = self._totals.get(name, 0.0) + time.perf_counter() - start

    def pop(self) -> dict[str, float]:
        out = {f"time/{name}": seconds for name, seconds in self._totals.items()}
        self._totals = {}
        return out


def progress_bar(total: int, *, desc: str = "train", initial: int = 0, is_main_process: bool = True) -> tqdm:
    """tqdm for a training loop: off on non-main processes; in a non-TTY log (CI, nohup) one line per 30 s."""
    interactive = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, disable=not is_main_process, dynamic_ncols=interactive,
                mininterval=0.5 if interactive else 30.0, ascii=not interactive)
