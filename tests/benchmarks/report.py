"""The benchmark report: pytest-benchmark entries paired into workloads, rendered as Markdown and a bar chart.

Pure functions of the results the runner writes (see tests/benchmarks/README.md for the conventions):
`workloads` pairs a run's entries, `render` gives the Markdown, `compare` the spread of the ratios between
two runs, `chart` (the only user of matplotlib, imported there) the PNG.
"""

import math
import re
from dataclasses import dataclass, field

IMPLEMENTATIONS = ("nbprop", "torch", "numpy")
COLUMN_TITLES = {"nbprop": "nbprop", "torch": "PyTorch", "numpy": "NumPy"}


@dataclass
class Workload:
    """One workload at one thread count: its implementations' entries, keyed by implementation."""

    family: str
    group: str
    param: str
    threads: int
    show_param: bool = False  # the group holds several params: the label names this one
    entries: dict = field(default_factory=dict)  # "nbprop" / "torch" / "numpy" -> entry
    others: dict = field(default_factory=dict)  # any other implementation name -> entry

    @property
    def label(self):
        return f"{self.group} [{self.param}]" if self.show_param else self.group

    def median(self, implementation):
        entry = self.entries.get(implementation)
        return entry["stats"]["median"] if entry else None

    @property
    def ratio(self):
        """nbprop's median over PyTorch's: below 1 nbprop is faster; None without both."""
        nbprop, torch = self.median("nbprop"), self.median("torch")
        return nbprop / torch if nbprop and torch else None

    @property
    def missing(self):
        """The partners a workload with an nbprop or PyTorch entry lacks (NumPy is optional)."""
        present = [name for name in ("nbprop", "torch") if name in self.entries]
        return [name for name in ("nbprop", "torch") if name not in self.entries] if present else []

    def declared(self, key):
        """The workload's declared flops or bytes: each entry's own, else any partner's."""
        for entry in [*self.entries.values(), *self.others.values()]:
            if entry.get("extra_info", {}).get(key):
                return entry["extra_info"][key]
        return None

    def achieved(self, implementation, ceilings):
        """'12.3 GFLOP/s (45%)' against the run's ceilings, for each of the declared flops and bytes."""
        median = self.median(implementation)
        if not median:
            return ""
        rates = []
        for key, unit, ceiling_key in (("flops", "GFLOP/s", "sgemm_gflops"), ("bytes", "GB/s", "copy_gbs")):
            amount = self.declared(key)
            if amount:
                rate = amount / median / 1e9
                ceiling = (ceilings or {}).get(ceiling_key)
                share = f" ({100 * rate / ceiling:.0f}%)" if ceiling else ""
                rates.append(f"{rate:.3g} {unit}{share}")
        return ", ".join(rates)


def implementation_of(entry):
    """extra_info["implementation"] if set, else the suffix of the test's name: test_add_nbprop -> nbprop."""
    declared = entry.get("extra_info", {}).get("implementation")
    if declared:
        return declared
    base = entry["name"].split("[")[0]
    suffix = base.rsplit("_", 1)[-1]
    return suffix if suffix in IMPLEMENTATIONS else base.removeprefix("test_")


def family_of(entry):
    """The file a benchmark lives in: tests/benchmarks/test_bench_matmul.py::... -> matmul."""
    match = re.search(r"test_bench_(\w+)\.py", entry.get("fullname", ""))
    return match.group(1) if match else "other"


def workloads(benchmarks, threads=1):
    """Pair one run's pytest-benchmark entries into workloads by (group, param id), in first-seen order."""
    paired = {}
    for entry in benchmarks:
        key = (entry.get("group") or entry["name"].split("[")[0], entry.get("param") or "")
        if key not in paired:
            paired[key] = Workload(family_of(entry), key[0], key[1], threads)
        implementation = implementation_of(entry)
        target = paired[key].entries if implementation in IMPLEMENTATIONS else paired[key].others
        target[implementation] = entry
    params = {}
    for group, param in paired:
        params.setdefault(group, set()).add(param)
    for (group, _), workload in paired.items():
        workload.show_param = len(params[group]) > 1
    return list(paired.values())


def all_workloads(results):
    return [workload for run in results["runs"] for workload in workloads(run["benchmarks"], run["threads"])]


def format_time(seconds):
    if seconds is None:
        return "—"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_ratio(ratio):
    return "—" if ratio is None else f"{ratio:.2f}"


def geometric_mean(values):
    values = [value for value in values if value]
    return math.exp(sum(math.log(value) for value in values) / len(values)) if values else None


def compare(results, previous):
    """Per (workload, threads) present in both: (label, threads, ratio now, ratio before, spread)."""
    before = {(workload.label, workload.threads): workload.ratio for workload in all_workloads(previous)}
    rows = []
    for workload in all_workloads(results):
        old = before.get((workload.label, workload.threads))
        if workload.ratio and old:
            spread = max(workload.ratio, old) / min(workload.ratio, old) - 1
            rows.append((workload.label, workload.threads, workload.ratio, old, spread))
    return rows


def _numbers(values):
    return ", ".join(f"{value:.2f}" for value in values)


def _header(results):
    machine = results["machine"]
    lines = [
        f"## {machine['cpu']}, {machine['cores']} cores ({machine['name']})",
        "",
        f"Measured {machine['date']} on {machine['os']}, {machine['memory_gb']:.0f} GB memory; Python "
        f"{machine['python']}, numba {machine['numba']}, numpy {machine['numpy']}, torch {machine['torch']}.",
    ]
    load = results.get("load_average")
    if load:
        lines.append(
            f"Load average (1, 5, 15 min) at the start {_numbers(load['start'])}, at the end "
            f"{_numbers(load['end'])}: other processes shared the machine."
            if max(load["start"][0], load["end"][0]) > 0.5 else
            f"Load average at the start {load['start'][0]:.2f}, at the end {load['end'][0]:.2f}."
        )
    if results.get("duration_s"):
        lines.append(f"The run took {results['duration_s'] / 60:.1f} minutes.")
    lines += ["", "| threads | SGEMM ceiling (NumPy float32) | copy ceiling (NumPy, 64 MiB) | load average "
              "(1 min) at the start, end |", "|---|---|---|---|"]
    for run in results["runs"]:
        ceilings = run.get("ceilings", {})
        load = _numbers(run["load_average"]) if run.get("load_average") else "—"
        lines.append(f"| {run['threads']} | {ceilings.get('sgemm_gflops', 0):.1f} GFLOP/s "
                     f"| {ceilings.get('copy_gbs', 0):.1f} GB/s | {load} |")
    return lines


def _summary(results):
    lines = ["", "nbprop/PyTorch is nbprop's median time over PyTorch's: below 1 nbprop is faster. "
             "Achieved rates are the declared work over the median, with their share of the ceiling of the "
             "same thread count; working sets that fit in cache can pass the copy ceiling, which is measured "
             "out of cache.", ""]
    for run in results["runs"]:
        ratios = [workload.ratio for workload in workloads(run["benchmarks"], run["threads"])]
        ratios = [ratio for ratio in ratios if ratio]
        if ratios:
            faster = sum(ratio < 1 for ratio in ratios)
            lines.append(f"- {run['threads']} thread(s): geometric mean of nbprop/PyTorch "
                         f"{geometric_mean(ratios):.2f} over {len(ratios)} workloads; "
                         f"nbprop faster on {faster}.")
        if run.get("returncode"):
            lines.append(f"- {run['threads']} thread(s): pytest exited {run['returncode']}; "
                         f"failed: {', '.join(run.get('failed', [])) or 'see the log'}.")
    return lines


def _family_tables(results):
    by_family = {}
    for workload in all_workloads(results):
        if workload.entries:
            by_family.setdefault(workload.family, {}).setdefault(workload.label, []).append(workload)
    ceilings = {run["threads"]: run.get("ceilings") for run in results["runs"]}
    lines = []
    for family, labelled in by_family.items():
        lines += ["", f"### {family}", "",
                  "| workload | threads | nbprop | PyTorch | NumPy | nbprop/PyTorch | nbprop achieved "
                  "| PyTorch achieved |", "|---|---|---|---|---|---|---|---|"]
        for label, runs in labelled.items():
            for workload in runs:
                times = " | ".join(format_time(workload.median(name)) for name in IMPLEMENTATIONS)
                ratio = format_ratio(workload.ratio)
                if workload.missing:
                    ratio += f" (no {', '.join(COLUMN_TITLES[name] for name in workload.missing)})"
                achieved = " | ".join(workload.achieved(name, ceilings[workload.threads])
                                      for name in ("nbprop", "torch"))
                lines.append(f"| {label} | {workload.threads} | {times} | {ratio} | {achieved} |")
    return lines


def _other_table(results):
    rows = []
    for workload in all_workloads(results):
        if not workload.others:
            continue
        entries = {**workload.entries, **workload.others}
        slowest = max(entry["stats"]["median"] for entry in entries.values())
        for name, entry in entries.items():
            median = entry["stats"]["median"]
            rows.append(f"| {workload.label} | {workload.threads} | {name} | {format_time(median)} "
                        f"| {slowest / median:.1f}x |")
    if not rows:
        return []
    return ["", "### Other comparisons", "", "Entries whose implementation is not nbprop, PyTorch or NumPy.",
            "", "| workload | threads | entry | median | speed-up over the group's slowest |",
            "|---|---|---|---|---|", *rows]


def _spread_table(results, previous):
    rows = compare(results, previous)
    if not rows:
        return []
    spreads = sorted(row[4] for row in rows)
    lines = ["", "### Reproducibility", "",
             f"Ratios against the previous run ({previous['machine']['date']}) of {len(rows)} workload x "
             f"thread pairs: median spread {100 * spreads[len(spreads) // 2]:.1f}%, 90th percentile "
             f"{100 * spreads[int(0.9 * (len(spreads) - 1))]:.1f}%, largest {100 * spreads[-1]:.1f}%. "
             "Spread = larger ratio / smaller ratio - 1. Pairs above 15%:", ""]
    large = [row for row in rows if row[4] > 0.15]
    lines += ["| workload | threads | ratio now | ratio before | spread |", "|---|---|---|---|---|"]
    lines += [f"| {label} | {threads} | {now:.2f} | {old:.2f} | {100 * spread:.0f}% |"
              for label, threads, now, old, spread in large] or ["| (none) | | | | |"]
    return lines


def render(results, previous=None, chart_name=None):
    """The Markdown report of one results file, with the spread against a previous one when given."""
    lines = _header(results) + _summary(results)
    if chart_name:
        lines += ["", f"![nbprop/PyTorch per workload]({chart_name})"]
    lines += _family_tables(results) + _other_table(results)
    if previous:
        lines += _spread_table(results, previous)
    return "\n".join(lines) + "\n"


def chart(results, path):
    """A horizontal bar chart of nbprop/PyTorch per workload and thread count, on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    ratios = {}
    for workload in all_workloads(results):
        if workload.ratio:
            ratios.setdefault(workload.label, {})[workload.threads] = workload.ratio
    thread_counts = sorted({run["threads"] for run in results["runs"]})
    labels = list(ratios)
    height = 0.8 / max(len(thread_counts), 1)
    figure, axes = pyplot.subplots(figsize=(11, 0.3 * len(labels) * max(len(thread_counts), 1) + 1.2))
    for index, threads in enumerate(thread_counts):
        positions = [row + index * height for row in range(len(labels))]
        values = [ratios[label].get(threads, math.nan) for label in labels]
        axes.barh(positions, values, height=height, label=f"{threads} thread(s)")
    axes.set_yticks([row + height * (len(thread_counts) - 1) / 2 for row in range(len(labels))])
    axes.set_yticklabels([label if len(label) < 70 else label[:67] + "..." for label in labels], fontsize=7)
    axes.set_ylim(len(labels) - height / 2, -height / 2 - 0.2)  # top to bottom, in the report's order
    axes.set_xscale("log")
    axes.axvline(1, color="black", linewidth=0.8)
    axes.set_xlabel("nbprop median / PyTorch median (log scale; below 1: nbprop faster)")
    axes.set_title(f"nbprop / PyTorch, {results['machine']['cpu']}, {results['machine']['cores']} cores")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100, bbox_inches="tight")
    pyplot.close(figure)
