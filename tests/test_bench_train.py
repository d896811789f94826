"""The training benchmark's arithmetic (GPU-days from step times) and its CPU run."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import REPO
from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.train.schedule import optimizer_steps, plan_stages
from pipeline.train.settings import train_settings


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train", REPO / "benchmarks" / "bench_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stage_steps(config: dict) -> dict[tuple[str, int], int]:
    steps = {}
    for name in config["variants"]:
        settings = train_settings(copy.deepcopy(config), name)
        for plan in plan_stages(settings["entry"], config["train"]):
            samples = (2975 if not settings["entry"]["prior"] else 808)
            steps[(name, plan.index)] = optimizer_steps(plan, settings["entry"], config["train"], samples)
    return steps


def test_gpu_days_scale_untimed_second_stages_by_the_timed_ones(bench):
    """Every first stage at 1 s and v01's second at 3 s: the other CRNs' second stages count 3 s,
    image variants count all 2975 gtFine frames an epoch, and the scaled stages are named."""
    config = load_config([DEFAULT_CONFIG])
    steps = _stage_steps(config)
    records = [{"variant": name, "stage": 0, "fast_all": 1.0} for name in config["variants"]]
    records.append({"variant": "v01", "stage": 1, "fast_all": 3.0})
    days, estimated = bench.gpu_days(records, config, "fast_all")
    expected = sum(steps[key] * (1.0 if key[1] == 0 else 3.0) for key in steps) / 86400
    assert days == pytest.approx(expected)
    second_stages = sorted(f"{name}/stage1 scaled" for name, stage in steps if stage == 1 and name != "v01")
    assert sorted(estimated) == second_stages and second_stages


def test_gpu_days_name_what_was_not_timed(bench):
    config = load_config([DEFAULT_CONFIG])
    days, estimated = bench.gpu_days([{"variant": "v11", "stage": 0, "fast": 0.05}], config, "fast")
    assert days == pytest.approx(_stage_steps(config)[("v11", 0)] * 0.05 / 86400)
    assert "v03/stage0 left out" in estimated and not any(item.startswith("v11") for item in estimated)


def test_the_cpu_run_times_the_modes_asked_for(tmp_path):
    """On the CPU: one record a configuration, only the modes asked for, a positive step time; the
    table's ratio to v02, timed as the baseline though not asked for (and not written to --json)."""
    out = tmp_path / "train.jsonl"
    result = subprocess.run([sys.executable, "benchmarks/bench_train.py", "--variants", "v10", "--repeats", "1",
                             "--modes", "fp32", "--json", str(out)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["variant"] == "v10" and record["size"] == "64x128"
    assert set(record) & set(("fp32", "fast", "fast_all")) == {"fp32"} and record["fp32"] > 0
    table = result.stdout[result.stdout.index("\nvariant net"):].splitlines()
    assert table[1].endswith("fp32 x v02")
    rows = {line.split()[0]: line.split() for line in table[2:] if line.strip()}
    assert rows.keys() == {"v02", "v10"} and rows["v02"][-1] == "1.00"
    # The ratio is printed to 2 decimals, v02's time to 4: half a unit of the first, plus the second's.
    assert float(rows["v10"][-1]) == pytest.approx(record["fp32"] / float(rows["v02"][-2]), abs=0.006)
