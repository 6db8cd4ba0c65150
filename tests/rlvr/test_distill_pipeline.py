"""`rlvr distill`: generation killed with SIGKILL resumes without writing a trace twice; the filter stage runs on
traces made elsewhere with the real math verifier and reports problems without a verified trace; bad input
(missing field, resuming another generation, a student without a chat template) is a clear error."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from rlvr.config import load_config
from rlvr.distill.pipeline import check_config, run
from tasks.traces import read_traces

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "smoke_distill.yaml"


def _generate_cmd(run_dir: Path, n: int) -> list[str]:
    return [sys.executable, "-m", "rlvr.cli", "distill", str(CONFIG), f"run_dir={run_dir}", f"task.args.num_samples={n}",
            "distill.shard_size=1", "generation.num_generations=2", "--stage", "generate"]


@pytest.mark.slow
def test_generate_killed_with_sigkill_resumes_and_writes_each_trace_once(tmp_path):
    run_dir, n = tmp_path / "run", 8
    traces = run_dir / "traces"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_generate_cmd(run_dir, n), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (traces / "shard-00002.parquet").exists():
        assert proc.poll() is None, "generation ended before its third shard"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in traces.glob("shard-*.parquet")}
    assert 3 <= len(before) < n, "the kill came too late to test a resume"

    out = subprocess.run(_generate_cmd(run_dir, n), env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    for name, stamp in before.items():  # what was written before the kill was not written again
        f = traces / name
        assert (f.stat().st_ino, f.stat().st_mtime_ns) == stamp, name
    rows = [r for _, r in read_traces(str(traces))]
    ids = [r["id"] for r in rows]
    assert len(ids) == n * 2 and len(set(ids)) == n * 2
    assert not list(traces.glob(".tmp-*"))
    r = rows[0]  # provenance
    assert r["teacher"] == "tiny-qwen2" and r["teacher_revision"].startswith("sha256:")
    assert r["sampling"]["temperature"] == 1.0 and r["sampling"]["seed"] == 0 and r["backend"] == "hf"
    assert r["finish_reason"] in ("stop", "length") and r["num_tokens"] > 0 and r["task"] == "arithmetic"
    assert json.loads(r["task_args"])["num_samples"] == n
    # resuming into the folder with other sampling is refused, naming what differs
    cfg = load_config(CONFIG, [f"run_dir={run_dir}", f"task.args.num_samples={n + 1}", "distill.shard_size=1",
                               "generation.num_generations=2", "generation.temperature=0.5"])
    with pytest.raises(ValueError, match=r"another generation \(.*temperature"):
        run(cfg, ["generate"])


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _trace(sid: str, a: int, b: int, answer: str, finish: str = "stop") -> dict:
    return {"sample_id": sid, "prompt": [{"role": "user", "content": f"What is {a}+{b}?"}], "reference": str(a + b),
            "completion": f"{a}+{b}={answer}. The answer is \\boxed{{{answer}}}", "finish_reason": finish,
            "num_tokens": 12}


def test_filter_stage_on_traces_made_elsewhere_reports_problems_without_a_verified_trace(tmp_path):
    rows = [_trace("q1", 2, 3, "5"), _trace("q1", 2, 3, "6"), _trace("q1", 2, 3, "5"),
            _trace("q2", 4, 4, "9"), _trace("q2", 4, 4, "7"),  # the teacher never solves q2
            _trace("q3", 1, 6, "7", finish="length")]  # q3's only right trace was cut off
    data = _write_jsonl(tmp_path / "elsewhere.jsonl", rows)
    cfg = load_config(CONFIG, [f"run_dir={tmp_path / 'run'}", f"distill.traces={data}", "verifier.name=math",
                               "verifier.args={}", "distill.filters=[complete,verified,dedup]"])
    summary = run(cfg, ["filter"])
    assert summary["filter"]["rows_in"] == 6 and summary["filter"]["rows_kept"] == 1
    report = json.loads((tmp_path / "run" / "filtered" / "filter_report.json").read_text())
    lost = {p["sample_id"]: p for p in report["prompts_without_trace"]}
    assert set(lost) == {"q2", "q3"}
    assert lost["q2"]["removed_by"] == "verified" and lost["q2"]["wrong"] == 2
    assert lost["q3"]["removed_by"] == "complete" and lost["q3"]["truncated"] == 1
    kept = pq.read_table(tmp_path / "run" / "filtered" / "kept.parquet").to_pylist()
    assert [r["completion"] for r in kept] == [rows[0]["completion"]]
    assert kept[0]["verifier"]["name"] == "math" and kept[0]["verifier"]["version"].startswith("verifiers@")
    # a trace without the gold answer cannot be verified: the error names the file, row and field
    del rows[3]["reference"]
    _write_jsonl(data, rows)
    with pytest.raises(ValueError, match=r"elsewhere\.jsonl, line 4: missing field 'reference'"):
        run(cfg, ["filter"])


def test_a_student_tokenizer_without_chat_template_is_refused_before_any_stage(tmp_path):
    from rlvr.tiny_models import resolve_model_path

    student = tmp_path / "plain-student"
    shutil.copytree(resolve_model_path("tiny-qwen2-small"), student)
    tc = json.loads((student / "tokenizer_config.json").read_text())
    tc.pop("chat_template", None)
    (student / "tokenizer_config.json").write_text(json.dumps(tc))
    for f in student.glob("chat_template.*"):
        f.unlink()
    cfg = load_config(CONFIG, [f"run_dir={tmp_path / 'run'}", f"model.name_or_path={student}"])
    with pytest.raises(ValueError, match=r"plain-student.*no chat template"):
        check_config(cfg, ["generate", "filter", "train"])
    assert not (tmp_path / "run").exists()
