"""The benchmark report builder on a synthetic results file: pairing, ratios, rates, missing partners."""

import pytest
from benchmarks import report  # tests/ is on sys.path under pytest's rootdir-based import


def _entry(name, group, median, extra_info=None, param=None, file="test_bench_matmul.py"):
    full = f"{name}[{param}]" if param else name
    return {
        "name": full, "fullname": f"tests/benchmarks/{file}::{full}", "group": group, "param": param,
        "extra_info": extra_info or {}, "stats": {"median": median, "mean": median, "rounds": 5},
    }


def _results(benchmarks, threads=1, date="2026-01-01T00:00+00:00", benchmarks_two=None):
    ceilings = {"sgemm_gflops": 100.0, "copy_gbs": 20.0}
    runs = [{"threads": threads, "ceilings": ceilings, "benchmarks": benchmarks}]
    if benchmarks_two is not None:
        runs.append({"threads": 2, "ceilings": {"sgemm_gflops": 200.0, "copy_gbs": 25.0},
                     "benchmarks": benchmarks_two})
    machine = {"name": "test-cpu-2c", "cpu": "Test CPU", "cores": 2, "memory_gb": 8.0, "os": "Linux",
               "python": "3.11", "numba": "0.68", "numpy": "2.4", "torch": "2.13", "date": date}
    return {"machine": machine, "load_average": {"start": [1.5, 1, 1], "end": [0.2, 1, 1]}, "runs": runs}


MATMUL = "matmul 1000x1000 @ 1000x1000"
FLOPS = {"flops": 2e9}
SAMPLE = [
    _entry("test_matmul_nbprop", MATMUL, 0.04, FLOPS),
    _entry("test_matmul_torch", MATMUL, 0.02, FLOPS),
    _entry("test_matmul_numpy", MATMUL, 0.025, FLOPS),
    _entry("test_copy_nbprop", "copy 1e6", 0.001, {"bytes": 8e6}, file="test_bench_elementwise.py"),
    _entry("test_lonely_nbprop", "only nbprop", 0.5),
    _entry("test_micrograd", "scalar MLP", 2.0, file="test_bench_value.py"),
    _entry("test_compiled_replay", "scalar MLP", 0.01, file="test_bench_value.py"),
]


def _by_group(workloads):
    return {workload.label: workload for workload in workloads}


def test_pairs_entries_by_group_and_suffix():
    workloads = _by_group(report.workloads(SAMPLE))
    assert set(workloads[MATMUL].entries) == {"nbprop", "torch", "numpy"}
    assert workloads[MATMUL].family == "matmul" and workloads["copy 1e6"].family == "elementwise"
    assert set(workloads["scalar MLP"].others) == {"micrograd", "compiled_replay"}
    assert workloads["scalar MLP"].entries == {}


def test_ratio_is_nbprop_over_torch():
    workloads = _by_group(report.workloads(SAMPLE))
    assert workloads[MATMUL].ratio == pytest.approx(2.0)
    assert workloads["only nbprop"].ratio is None


def test_missing_partners_are_named():
    workloads = _by_group(report.workloads(SAMPLE))
    assert workloads["only nbprop"].missing == ["torch"]
    assert workloads[MATMUL].missing == []
    assert workloads["scalar MLP"].missing == []


def test_achieved_rate_against_the_ceiling():
    workloads = _by_group(report.workloads(SAMPLE))
    ceilings = {"sgemm_gflops": 100.0, "copy_gbs": 20.0}
    assert workloads[MATMUL].achieved("nbprop", ceilings) == "50 GFLOP/s (50%)"
    assert workloads[MATMUL].achieved("torch", ceilings) == "100 GFLOP/s (100%)"
    assert workloads["copy 1e6"].achieved("nbprop", ceilings) == "8 GB/s (40%)"
    assert workloads["copy 1e6"].achieved("torch", ceilings) == ""
    assert workloads["only nbprop"].achieved("nbprop", ceilings) == ""


def test_declared_amount_is_shared_with_partners():
    entries = [_entry("test_add_nbprop", "add", 0.002, {"flops": 1e6}),
               _entry("test_add_torch", "add", 0.001)]
    (workload,) = report.workloads(entries)
    assert workload.achieved("torch", {}) == "1 GFLOP/s"


def test_both_declared_rates_are_given():
    entries = [_entry("test_add_nbprop", "add", 0.001, {"flops": 1e6, "bytes": 1.2e7})]
    (workload,) = report.workloads(entries)
    achieved = workload.achieved("nbprop", {"sgemm_gflops": 100.0, "copy_gbs": 20.0})
    assert achieved == "1 GFLOP/s (1%), 12 GB/s (60%)"


def test_implementation_declared_in_extra_info_wins():
    entries = [_entry("test_eager", "step", 0.3, {"implementation": "nbprop"}),
               _entry("test_step_torch", "step", 0.1)]
    (workload,) = report.workloads(entries)
    assert workload.ratio == pytest.approx(3.0)


def test_params_split_a_group_and_appear_in_the_label():
    entries = [
        _entry("test_add_nbprop", "add", 2.0, param="small"),
        _entry("test_add_torch", "add", 1.0, param="small"),
        _entry("test_add_nbprop", "add", 1.0, param="large"),
        _entry("test_add_torch", "add", 4.0, param="large"),
        _entry("test_mul_nbprop", "mul", 1.0, param="only"),
        _entry("test_mul_torch", "mul", 1.0, param="only"),
    ]
    workloads = _by_group(report.workloads(entries))
    assert workloads["add [small]"].ratio == pytest.approx(2.0)
    assert workloads["add [large]"].ratio == pytest.approx(0.25)
    assert "mul" in workloads


def test_markdown_has_the_rows_ratios_ceilings_and_load():
    markdown = report.render(_results(SAMPLE, benchmarks_two=SAMPLE[:2]), chart_name="chart.png")
    assert "## Test CPU, 2 cores (test-cpu-2c)" in markdown
    assert "Load average (1, 5, 15 min) at the start 1.50" in markdown
    assert "| 1 | 100.0 GFLOP/s | 20.0 GB/s | — |" in markdown
    row = f"| {MATMUL} | 1 | 40 ms | 20 ms | 25 ms | 2.00 | 50 GFLOP/s (50%) | 100 GFLOP/s (100%) |"
    assert row in markdown
    assert f"| {MATMUL} | 2 | 40 ms | 20 ms | — | 2.00 | 50 GFLOP/s (25%) | 100 GFLOP/s (50%) |" in markdown
    assert "| only nbprop | 1 | 500 ms | — | — | — (no PyTorch) |" in markdown
    assert "| scalar MLP | 1 | compiled_replay | 10 ms | 200.0x |" in markdown
    assert "### matmul" in markdown and "### elementwise" in markdown
    assert "![nbprop/PyTorch per workload](chart.png)" in markdown
    assert "geometric mean of nbprop/PyTorch 2.00 over 1 workloads; nbprop faster on 0" in markdown


def test_spread_against_a_previous_run():
    before = _results([_entry("test_matmul_nbprop", MATMUL, 0.04),
                       _entry("test_matmul_torch", MATMUL, 0.025)])
    now = _results(SAMPLE, date="2026-01-02T00:00+00:00")
    ((label, threads, ratio, old, spread),) = report.compare(now, before)
    assert (label, threads) == (MATMUL, 1)
    assert ratio == pytest.approx(2.0) and old == pytest.approx(1.6) and spread == pytest.approx(0.25)
    markdown = report.render(now, before)
    assert "### Reproducibility" in markdown and f"| {MATMUL} | 1 | 2.00 | 1.60 | 25% |" in markdown


def test_time_formatting():
    assert [report.format_time(value) for value in (2.5, 0.0125, 3.2e-6, 4e-8, None)] == [
        "2.5 s", "12.5 ms", "3.2 µs", "40 ns", "—"
    ]


def test_chart_writes_a_png(tmp_path):
    path = tmp_path / "chart.png"
    report.chart(_results(SAMPLE, benchmarks_two=SAMPLE), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
