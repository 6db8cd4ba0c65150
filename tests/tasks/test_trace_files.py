"""tasks.traces: the trace schema's reader names the file, row and field of bad input; the `traces` task turns
rows into SFT examples; a folder written by `rlvr distill` reads with `datasets` too."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks import get_task as build_task
from tasks.traces import FILTER_NEEDS, read_traces

PROMPT = [{"role": "user", "content": "2+3="}]


def row(sid, completion, **extra):
    return {"sample_id": sid, "prompt": PROMPT, "completion": completion, "reference": "5", **extra}


def test_missing_field_names_file_row_and_field(tmp_path):
    f = tmp_path / "t.parquet"
    rows = [row("a", "5"), {"sample_id": "b", "prompt": PROMPT, "reference": "5"}]
    pq.write_table(pa.Table.from_pylist([{**r, "completion": r.get("completion")} for r in rows]), f)
    with pytest.raises(ValueError, match=r"t\.parquet, row 2.*'completion'"):
        read_traces(str(f))
    j = tmp_path / "t.jsonl"
    j.write_text(json.dumps(row("a", "5")) + "\n" + json.dumps({"prompt": "x", "completion": "y"}) + "\n")
    with pytest.raises(ValueError, match=r"t\.jsonl, line 2.*'sample_id'"):
        read_traces(str(j))
    # a filter's own fields are required only when that filter runs, and checked for type
    j.write_text(json.dumps(row("a", "5", finish_reason="eos")) + "\n")
    assert len(read_traces(str(j))) == 1
    with pytest.raises(ValueError, match=r"line 1.*'finish_reason'.*'stop', 'length'"):
        read_traces(str(j), FILTER_NEEDS["complete"])
    with pytest.raises(ValueError, match=r"line 1.*'num_tokens'"):
        read_traces(str(j), FILTER_NEEDS["length"])
    j.write_text(json.dumps(row("a", "5") | {"prompt": [{"role": "user"}]}) + "\n")
    with pytest.raises(ValueError, match=r"line 1.*'prompt'"):
        read_traces(str(j))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty holds no \*\.parquet"):
        read_traces(str(tmp_path / "empty"))


def test_traces_task_is_sft_on_the_completion_and_folders_read_with_datasets(tmp_path):
    d = tmp_path / "traces"
    d.mkdir()
    pq.write_table(pa.Table.from_pylist([row("a", "so 5", id="a/0"), row("a", "five: 5", id="a/1")]), d / "shard-00000.parquet")
    pq.write_table(pa.Table.from_pylist([row("b", "5")]), d / "shard-00001.parquet")
    (d / ".generate.json").write_text("{}")  # the manifest `rlvr distill` writes beside the shards
    task = build_task("traces", path=str(d))
    assert [s.id for s in task] == ["a/0", "a/1", "b/#2"]
    assert [task.sft_text(s) for s in task] == ["so 5", "five: 5", "5"]
    assert task[2].meta["sample_id"] == "b" and task[2].prompt == PROMPT
    from datasets import load_dataset

    ds = load_dataset("parquet", data_dir=str(d), split="train")
    assert sorted(ds["completion"]) == ["5", "five: 5", "so 5"]
    pq.write_table(pa.Table.from_pylist([row("b", "5", id="a/0")]), d / "shard-00001.parquet")
    with pytest.raises(ValueError, match=r"shard-00001\.parquet, row 1: trace id 'a/0' is also at .*shard-00000"):
        build_task("traces", path=str(d))
