"""MetricsLogger JSONL, resume truncation, plotting and StepTimer."""

import json
import math
import sys

import pytest
import torch

from rlvr.metrics import MetricsLogger, StepTimer, plot_metrics, progress_bar, read_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_jsonl_lines_tensors_and_nan(tmp_path):
    with MetricsLogger(tmp_path, report_to=("jsonl",)) as log:
        log.log(1, {"loss": torch.tensor(0.5), "count": 3, "kl": float("nan")})
        log.log(2, {"loss": 0.25, "ok": torch.tensor([True])})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])  # strict JSON: NaN written as null
    assert first["step"] == 1 and first["loss"] == 0.5 and first["count"] == 3 and first["kl"] is None
    assert isinstance(first["time"], float)
    assert json.loads(lines[1])["ok"] == 1
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2]


def test_bad_metric_names_the_key(tmp_path):
    log = MetricsLogger(tmp_path, report_to=("jsonl",))
    with pytest.raises(ValueError, match="'logits'"):
        log.log(1, {"logits": torch.zeros(2, 3)})
    with pytest.raises(TypeError, match="'name'"):
        log.log(1, {"name": "abc"})
    log.close()
    with pytest.raises(ValueError, match="report_to"):
        MetricsLogger(tmp_path, report_to=("jsonl", "mlflow"))


def test_resume_drops_steps_after_checkpoint(tmp_path):
    log = MetricsLogger(tmp_path, report_to=("jsonl",))
    for step in range(1, 6):
        log.log(step, {"loss": float(step)})
    log.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "lo')  # killed mid-write
    # crash after step 5, last checkpoint at step 3: steps 4 and 5 are recomputed
    log = MetricsLogger(tmp_path, report_to=("jsonl",), resume_step=3)
    for step in (4, 5):
        log.log(step, {"loss": 10.0 * step})
    log.close()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["loss"]) for r in rows] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0)]


def test_corrupt_middle_line_is_an_error_with_position(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2"):
        read_metrics(path)


def test_non_main_process_writes_nothing(tmp_path):
    log = MetricsLogger(tmp_path / "run", is_main_process=False)
    log.log(1, {"loss": 1.0})
    log.close()
    assert not (tmp_path / "run").exists()


def test_plot_writes_png_and_skips_missing_keys(tmp_path, caplog):
    with MetricsLogger(tmp_path, report_to=("jsonl",)) as log:
        for step in range(30):
            log.log(step, {"reward/mean": math.sin(step / 5), "loss": 1.0 / (step + 1)})
    with caplog.at_level("INFO", logger="rlvr.metrics"):
        png = plot_metrics(tmp_path / "metrics.jsonl", tmp_path / "plots" / "curves.png",
                           keys=("reward/mean", "accuracy", "loss"), title="smoke")
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert "'accuracy'" in caplog.text  # skipped and said so
    # two subplots stacked -> the image is taller than one subplot's
    height_two = int.from_bytes(data[20:24], "big")  # IHDR height
    one = plot_metrics(tmp_path / "metrics.jsonl", tmp_path / "one.png", keys=("loss",)).read_bytes()
    assert height_two > int.from_bytes(one[20:24], "big")
    with pytest.raises(ValueError, match="available: \\['loss', 'reward/mean'\\]"):
        plot_metrics(tmp_path / "metrics.jsonl", tmp_path / "none.png", keys=("accuracy",))


def test_step_timer_accumulates_and_resets():
    timer = StepTimer()
    for _ in range(2):
        with timer("generate"):
            sum(range(1000))
    with pytest.raises(RuntimeError):
        with timer("update"):
            raise RuntimeError("boom")  # a failing section is still timed
    times = timer.pop()
    assert set(times) == {"time/generate", "time/update"}
    assert all(v >= 0.0 for v in times.values())
    assert timer.pop() == {}


def test_progress_bar_disabled_off_main():
    bar = progress_bar(10, is_main_process=False)
    assert bar.disable
    bar.close()
    bar = progress_bar(10, initial=4)
    bar.update(1)
    assert bar.n == 5
    bar.close()


def test_metrics_module_does_not_import_torch():
    import subprocess

    code = "import sys, rlvr.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tensorboard_resume_purges_steps_after_checkpoint(tmp_path):
    pytest.importorskip("tensorboard")  # optional backend: runs where it is installed
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLogger(tmp_path, report_to=("tensorboard",))
    for step in range(1, 6):
        log.log(step, {"loss": float(step)})
    log.close()
    log = MetricsLogger(tmp_path, report_to=("tensorboard",), resume_step=3)
    for step in (4, 5):
        log.log(step, {"loss": 10.0 * step})
    log.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0)]
    assert not (tmp_path / "metrics.jsonl").exists()  # jsonl not asked for
