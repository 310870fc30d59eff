"""Figures from samples, and the report: Markdown, JSON and a PNG chart."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from bench.load import PhaseResult, Sample

SEED = {  # the seed's claim: synchronous vs asynchronous checkout
    "avg_response_s": (8.5, 1.2),
    "concurrent_users": (15, 200),
    "error_rate_pct": (12.0, 2.0),
}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summarize(result: PhaseResult, final_seconds: list[float], completed: int) -> dict[str, Any]:
    """One row: response times (ms), errors, rates, submit-to-final (ms).

    Response times and rates come from the steady run, after the ramp (the shoppers
    still arriving), as Locust's ``--reset-stats`` measures; the ramp's p99 is kept
    beside them. Errors count the whole run, ramp included.
    """
    steady = [s for s in result.samples if s.at >= result.ramp]
    ramp = [s.latency * 1000 for s in result.samples if s.at < result.ramp]
    latencies = [s.latency * 1000 for s in steady]
    errors = sum(not s.ok for s in result.samples)
    n = len(result.samples)
    return {
        "phase": result.name,
        "requests": n,
        "errors": errors,
        "error_rate_pct": 100 * errors / n if n else 0.0,
        "avg_ms": statistics.fmean(latencies) if latencies else float("nan"),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=float("nan")),
        "ramp_s": result.ramp,
        "ramp_requests": len(ramp),
        "ramp_p99_ms": percentile(ramp, 99),
        "checkouts_per_s": len(steady) / result.duration if result.duration else 0.0,
        "http_requests_per_s": (n + result.other_requests) / (result.ramp + result.duration),
        "final_p50_ms": percentile([f * 1000 for f in final_seconds], 50),
        "final_p95_ms": percentile([f * 1000 for f in final_seconds], 95),
        "orders_completed_per_s": completed / result.duration if result.duration else 0.0,
        "follow_timeouts": result.follow_timeouts,
        "error_kinds": dict(Counter(_kind(s) for s in result.samples if not s.ok)),
    }


def _kind(sample: Sample) -> str:
    return f"HTTP {sample.status}" if sample.status else sample.reason or "no answer"


def max_users_under(rows: list[dict[str, Any]], mode: str, p99_ms: float = 1000) -> int:
    """The largest user count whose run (and every smaller one) kept p99 < 1 s, 0 errors."""
    best = 0
    for row in sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["users"]):
        if row["p99_ms"] < p99_ms and row["errors"] == 0:
            best = row["users"]
        else:
            break
    return best


def capacity(steps: list[dict[str, Any]], p99_ms: float) -> float:
    """Highest arrival rate whose p99 stayed under ``p99_ms`` with no errors."""
    ok = [s["rate"] for s in steps if s["p99_ms"] < p99_ms and s["errors"] == 0]
    return max(ok, default=0.0)


def _fmt(value: Any, digits: int = 0) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.{digits}f}"
    return str(value)


def markdown(data: dict[str, Any]) -> str:
    users = data["users"]
    lines = [
        f"# Benchmark {data['started']} ({data['profile']} profile)",
        "",
        f"Machine: {data['machine']}. Server: {data['server']}.",
        "",
    ]
    if data.get("system"):
        from bench.system import lines as system_lines

        lines += [*system_lines(data["system"]), ""]
    lines += [
        "# Where the time goes (the parts, measured apart)",
        "",
        f"Simulated latencies: {data['latencies']}, scaled by SIM_TIME_FACTOR="
        f"{data['time_factor']:g}; think time {data['think_s']:g} s; async shoppers follow "
        f"their checkout {_following(data)}; {_window(data)}; "
        "submit→final times come from the database (created_at → finished_at).",
        "",
        "## Sync vs async, closed model (shoppers check out, follow, think, repeat)",
        "",
        "| mode | users | checkouts | err % | avg ms | p50 | p95 | p99 | ramp p99 | checkouts/s "
        "| HTTP req/s | submit→final p50 ms | p95 | orders/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in users:
        lines.append(
            f"| {r['mode']} | {r['users']} | {r['requests']} | {_fmt(r['error_rate_pct'], 1)} | "
            f"{_fmt(r['avg_ms'], 1)} | {_fmt(r['p50_ms'], 1)} | {_fmt(r['p95_ms'], 1)} | "
            f"{_fmt(r['p99_ms'], 1)} | {_fmt(r.get('ramp_p99_ms', float('nan')), 1)} | "
            f"{_fmt(r['checkouts_per_s'], 1)} | "
            f"{_fmt(r['http_requests_per_s'], 1)} | {_fmt(r['final_p50_ms'])} | "
            f"{_fmt(r['final_p95_ms'])} | {_fmt(r['orders_completed_per_s'], 1)} |"
        )
    kinds = [
        f"{r['mode']} {r['users']}: "
        + ", ".join(f"{n} {kind}" for kind, n in sorted(r["error_kinds"].items()))
        for r in users
        if r.get("error_kinds")
    ]
    if kinds:
        lines += ["", "Errors by kind (HTTP status, or why no answer came): " + "; ".join(kinds)]
    seed, ours = SEED, data["versus_seed"]
    lines += [
        "",
        "## The seed's claim beside ours",
        "",
        "| figure | seed sync | seed async | ours sync | ours async |",
        "|---|---|---|---|---|",
        f"| avg response at {ours['at_users']} users | {seed['avg_response_s'][0]} s | "
        f"{seed['avg_response_s'][1]} s | {_fmt(ours['sync_avg_ms'], 1)} ms | "
        f"{_fmt(ours['async_avg_ms'], 1)} ms |",
        f"| max concurrent users (p99 < 1 s, 0 errors) | {seed['concurrent_users'][0]} | "
        f"{seed['concurrent_users'][1]} | {ours['sync_max_users']} "
        f"| {ours['async_max_users']} |",
        f"| error rate at the largest run ({ours['largest_users']} users) | "
        f"{seed['error_rate_pct'][0]} % | {seed['error_rate_pct'][1]} % | "
        f"{_fmt(ours['sync_error_pct'], 1)} % | {_fmt(ours['async_error_pct'], 1)} % |",
        f"| sync/async avg response ratio | 7x | | {_fmt(ours['ratio'], 0)}x | |",
        "",
        '("max users" is bounded by the largest run of the sweep; a mode that passes every '
        "run reports the largest count.)",
    ]
    lines += _where(users)
    micro = data.get("micro")
    if micro:
        lines += ["", "## Micro-benchmarks (ratios measured in this run)", ""]
        lines += [f"- {line}" for line in micro["lines"]]
        if micro.get("cpu_ms_per_order"):
            lines += ["", "| process (phase) | CPU ms per order |", "|---|---|"]
            for name, value in micro["cpu_ms_per_order"].items():
                lines.append(f"| {name} | {_fmt(value, 2)} |")
        lines += ["", "Open-model capacity steps (p99 from the scheduled send time):", ""]
        lines += [
            "| endpoint | rate/s | sent | errors | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|",
        ]
        for step in micro.get("capacity_steps", []):
            lines.append(
                f"| {step['endpoint']} | {step['rate']:g} | {step['requests']} | {step['errors']} "
                f"| {_fmt(step['p50_ms'], 1)} | {_fmt(step['p99_ms'], 1)} |"
            )
    lines += ["", "## Goals", ""]
    for goal in data["goals"]:
        lines.append(
            f"- {'MET' if goal['met'] else 'NOT MET'}: {goal['goal']} — {goal['measured']}"
        )
    lines += ["", "## Audit (every value must be 0)", ""]
    for key, value in data["audit"].items():
        lines.append(f"- {key}: {value}")
    return "\n".join(lines) + "\n"


def _where(rows: list[dict[str, Any]]) -> list[str]:
    """Where the time went (bench.where): queue waits per job type, cores per process."""
    timed = [r for r in rows if r.get("job_times")]
    if not timed:
        return []
    lines = [
        "",
        "## Where the time went",
        "",
        "Per job type (first attempts of the run's checkouts): the wait between the job "
        "being written and a consumer claiming it, then the run (simulated work included).",
        "",
        "| mode | users | job type | jobs | wait p50 ms | wait p95 ms | run p50 ms | run p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in timed:
        for kind, t in r["job_times"].items():
            lines.append(
                f"| {r['mode']} | {r['users']} | {kind} | {t['jobs']:.0f} | "
                f"{t['wait_p50_ms']:,.0f} | {t['wait_p95_ms']:,.0f} | "
                f"{t['run_p50_ms']:,.0f} | {t['run_p95_ms']:,.0f} |"
            )
    metered = [r for r in timed if r.get("cores")]
    if metered:
        names = list(metered[0]["cores"])
        lines += [
            "",
            "Cores used while the shoppers ran (2 = the whole machine; the load generator, "
            "Redis and other processes not counted):",
            "",
            "| mode | users | " + " | ".join(names) + " | total |",
            "|---|---|" + "---|" * (len(names) + 1),
        ]
        for r in metered:
            cores = r["cores"]
            cells = " | ".join(f"{cores.get(n, 0.0):.2f}" for n in names)
            lines.append(f"| {r['mode']} | {r['users']} | {cells} | {sum(cores.values()):.2f} |")
    return lines


def chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for mode, colour in (("sync", "tab:red"), ("async", "tab:blue")):
        rows = sorted((r for r in data["users"] if r["mode"] == mode), key=lambda r: r["users"])
        xs = [r["users"] for r in rows]
        axes[0].plot(xs, [r["avg_ms"] for r in rows], "o-", color=colour, label=f"{mode} avg")
        axes[0].plot(xs, [r["p99_ms"] for r in rows], "s--", color=colour, label=f"{mode} p99")
        axes[1].plot(xs, [r["final_p95_ms"] for r in rows], "o-", color=colour, label=mode)
    axes[0].set(title="checkout response time", xlabel="concurrent users", ylabel="ms")
    axes[0].set_yscale("log")
    axes[1].set(title="submit → final status, p95", xlabel="concurrent users", ylabel="ms")
    steps = (data.get("micro") or {}).get("capacity_steps", [])
    for endpoint, colour in (
        ("checkout", "tab:blue"),
        ("bare LPUSH", "tab:gray"),
        ("INSERT + LPUSH", "tab:green"),
    ):
        pts = [s for s in steps if s["endpoint"] == endpoint]
        axes[2].plot(
            [s["rate"] for s in pts], [s["p99_ms"] for s in pts], "o-", color=colour, label=endpoint
        )
    axes[2].axhline(100, color="k", lw=0.5, ls=":")
    axes[2].set(title="open model: p99 vs arrival rate", xlabel="requests/s", ylabel="p99 ms")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(data: dict[str, Any], directory: Path, stem: str) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "md": directory / f"{stem}.md",
        "json": directory / f"{stem}.json",
        "png": directory / f"{stem}.png",
    }
    paths["json"].write_text(json.dumps(data, indent=2, default=str) + "\n")
    chart(data, paths["png"])
    data_md = markdown(data) + f"\n![chart]({paths['png'].name})\n"
    paths["md"].write_text(data_md)
    return paths


def _following(data: dict[str, Any]) -> str:
    if data.get("follow", "poll") == "stream":
        return "on its progress stream (SSE), as the shop's checkout page does"
    return f"by polling its status every {data['poll_s']:g} s (as the 202's Retry-After says)"


def _window(data: dict[str, Any]) -> str:
    ramp = data.get("ramp_s", 0)
    if not ramp:
        return f"{data['phase_s']:g} s per run"
    return (
        f"per run, the shoppers arrive over {ramp:g} s (the ramp), then {data['phase_s']:g} s "
        "are measured: response times and rates come from that steady part (as Locust's "
        "--reset-stats), the ramp's own p99 is the 'ramp p99' column, and errors count "
        "the whole run"
    )
