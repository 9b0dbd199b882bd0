"""Run the benchmark suite at 1 and 2 threads and write results/<machine>.json, .md, .png and BENCHMARKS.md.

Usage: .venv/bin/python -m tests.benchmarks.run [--threads 1 2] [-k EXPRESSION] [--max-time 0.5]
Each thread count runs in its own process (the thread pools of Numba, PyTorch and OpenBLAS are sized at
start-up), which first measures the machine's ceilings (NumPy float32 SGEMM, NumPy copy) and then runs
pytest-benchmark over tests/benchmarks. The previous results file of the machine, if any, is compared
against: the report's last section gives the spread of the nbprop/PyTorch ratios between the two runs.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks import report

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "tests" / "benchmarks"
RESULTS = BENCHMARKS / "results"
PUBLISHED = ROOT / "BENCHMARKS.md"
THREAD_VARIABLES = ("NBPROP_BENCH_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")
KEPT_STATS = ("min", "max", "mean", "median", "stddev", "iqr", "rounds", "iterations", "ops")


def measure_ceilings(repeats=7):
    """Best-of-`repeats` NumPy float32 SGEMM GFLOP/s (2048^3) and copy GB/s (64 MiB read + 64 MiB written)."""
    import numpy as np

    size = 2048
    generator = np.random.default_rng(0)
    left, right = (generator.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    product = np.empty_like(left)
    source = np.ones(1 << 24, dtype=np.float32)
    destination = np.empty_like(source)

    def best(function):
        function()
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            timings.append(time.perf_counter() - start)
        return min(timings)

    sgemm = 2 * size**3 / best(lambda: np.matmul(left, right, out=product)) / 1e9
    copy = 2 * source.nbytes / best(lambda: np.copyto(destination, source)) / 1e9
    return {"sgemm_gflops": sgemm, "copy_gbs": copy}


def machine():
    """The machine's description and its name: a slug of the CPU model and the core count."""
    import numba
    import numpy

    cpu = platform.processor() or platform.machine()
    memory = 0.0
    try:
        cpu_info = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"model name\s*:\s*(.+)", cpu_info).group(1).strip()
        memory = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 2**20
    except (OSError, AttributeError):
        pass
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    cores = os.cpu_count()
    cleaned = re.sub(r"\((R|TM|tm)\)|CPU|Processor|@.*$", " ", cpu)
    slug = re.sub(r"[^a-z0-9]+", "-", cleaned.lower()).strip("-")
    return {
        "name": f"{slug}-{cores}c", "cpu": cpu, "cores": cores, "memory_gb": memory,
        "os": platform.platform(), "python": platform.python_version(), "numba": numba.__version__,
        "numpy": numpy.__version__, "torch": torch_version,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="minutes"),
    }


def _trim(entry):
    """The parts of a pytest-benchmark entry the report reads."""
    kept = {key: entry.get(key) for key in ("name", "fullname", "group", "param", "params", "extra_info")}
    kept["stats"] = {key: entry["stats"][key] for key in KEPT_STATS}
    return kept


def run_threads(threads, arguments):
    """One thread count: ceilings, then the suite, in processes started with the thread variables set."""
    environment = {**os.environ, **{variable: str(threads) for variable in THREAD_VARIABLES}}
    load_at_start = os.getloadavg()[0]
    ceilings = json.loads(subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.run", "--measure-ceilings"],
        env=environment, cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout)
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "benchmarks.json"
        command = [
            sys.executable, "-m", "pytest", str(BENCHMARKS), "-q", "-p", "no:cacheprovider", "-rf",
            "--continue-on-collection-errors",
            "--benchmark-enable", "--benchmark-only", f"--benchmark-json={output}",
            f"--benchmark-max-time={arguments.max_time}", "--benchmark-warmup=on",
            "--benchmark-warmup-iterations=20", "--benchmark-columns=median,rounds", "--benchmark-sort=name",
        ]
        if arguments.k:
            command += ["-k", arguments.k]
        completed = subprocess.run(command, env=environment, cwd=ROOT, capture_output=True, text=True,
                                   check=False)
        print(completed.stdout[-3000:], completed.stderr[-2000:], sep="\n", flush=True)
        benchmarks = json.loads(output.read_text())["benchmarks"] if output.exists() else []
    failed = re.findall(r"^FAILED (\S+)", completed.stdout, flags=re.MULTILINE)
    return {"threads": threads, "ceilings": ceilings, "returncode": completed.returncode, "failed": failed,
            "load_average": [load_at_start, os.getloadavg()[0]],
            "benchmarks": [_trim(entry) for entry in benchmarks]}


def publish():
    """BENCHMARKS.md: a short preface, then every machine's latest report."""
    sections = [path.read_text() for path in sorted(RESULTS.glob("*.md"))]
    preface = (
        "# Benchmarks\n\nThe latest report of `python -m tests.benchmarks.run` on each machine measured "
        "(tests/benchmarks/results/). Medians of pytest-benchmark; nbprop beside PyTorch CPU and a "
        "hand-written NumPy baseline on the same float32 data; see tests/benchmarks/README.md for the "
        "conventions and how to add workloads.\n\n"
    )
    # Charts are linked from the repository root here, from results/ in the per-machine reports.
    body = "\n".join(re.sub(r"\]\(([^/)]+\.png)\)", r"](tests/benchmarks/results/\1)", section)
                     for section in sections)
    PUBLISHED.write_text(preface + body)


def write_report(results, output, previous, publish_all):
    """results/<machine>.md and .png beside the results file; BENCHMARKS.md too for files in results/."""
    chart_path = output.with_suffix(".png")
    report.chart(results, chart_path)
    output.with_suffix(".md").write_text(report.render(results, previous, chart_name=chart_path.name))
    if publish_all and output.parent.resolve() == RESULTS:
        publish()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("-k", help="pytest -k expression selecting workloads")
    parser.add_argument("--max-time", type=float, default=0.5, help="seconds per benchmark")
    parser.add_argument("--output", type=Path, help="results JSON (default results/<machine>.json)")
    parser.add_argument("--no-publish", action="store_true", help="do not rewrite BENCHMARKS.md")
    parser.add_argument("--render-only", action="store_true",
                        help="rebuild the report, chart and BENCHMARKS.md from the results file")
    parser.add_argument("--previous", type=Path, help="results file to give the spread against")
    parser.add_argument("--measure-ceilings", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.measure_ceilings:
        print(json.dumps(measure_ceilings()))
        return
    if arguments.render_only:
        output = arguments.output or RESULTS / f"{machine()['name']}.json"
        previous = json.loads(arguments.previous.read_text()) if arguments.previous else None
        write_report(json.loads(output.read_text()), output, previous, not arguments.no_publish)
        return
    start = time.perf_counter()
    results = {"machine": machine(), "load_average": {"start": list(os.getloadavg())}, "runs": []}
    for threads in arguments.threads:
        print(f"== {threads} thread(s)", flush=True)
        results["runs"].append(run_threads(threads, arguments))
    results["load_average"]["end"] = list(os.getloadavg())
    results["duration_s"] = time.perf_counter() - start
    output = arguments.output or RESULTS / f"{results['machine']['name']}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(output.read_text()) if output.exists() else None
    if arguments.previous:
        previous = json.loads(arguments.previous.read_text())
    output.write_text(json.dumps(results, indent=1) + "\n")
    write_report(results, output, previous, not arguments.no_publish)
    minutes = results["duration_s"] / 60
    print(f"wrote {output} and its .md and .png in {minutes:.1f} min")


if __name__ == "__main__":
    main()
