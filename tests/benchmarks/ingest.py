"""Sustained ingest: requests per second and p50/p99 latency of accepting webhooks.

spacehooks (durable: every 2xx follows a group-committed, fsynced write) against
huggingface_hub's WebhooksServer and a bare Starlette route, each under the same wrk load on
loopback, in one run. Bounded: `--duration` seconds per server after a short warm-up.

    python -m tests.benchmarks.ingest [--duration 10] [--connections 32,128]

Every server is measured at each connection count (wrk keeps that many requests in flight: a
closed loop, so at low counts durable acceptance is bound by the commit's latency, not CPU).

Needs wrk (`apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.common import BODY, SECRET, start, wait_first_2xx

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Webhook-Secret"] = "%s"
local template = [[%s]]
local n = 0
-- a distinct body per request, so spacehooks' duplicate suppression never short-cuts the work
request = function()
  n = n + 1
  local id = "bench-" .. n .. "-" .. math.random(1, 1e9)
  local body = string.gsub(template, "6390e855e30d9209411de93b", id)
  return wrk.format(nil, nil, nil, body)
end
"""


def _seconds(value: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:
        raise RuntimeError(f"unreadable wrk latency {value!r}")
    number, unit = match.groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def run_wrk(url: str, script: Path, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    if "Latency Distribution" not in out:
        raise RuntimeError(f"wrk gave no latency figures:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _seconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _seconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50_ms": p50 * 1000,
        "p99_ms": p99 * 1000,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "none",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="32,128", help="comma-separated counts")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(LUA % (SECRET, BODY.decode()))
    levels = [int(c) for c in args.connections.split(",")]
    results: dict[tuple[str, int], dict] = {}
    names = ("spacehooks", "huggingface_hub", "starlette")
    for name in names:
        server = start(name)
        try:
            wait_first_2xx(server)
            time.sleep(6)  # settled: spacehooks loads its UI in the background after start
            run_wrk(server.url, script, 2, levels[0])  # warm-up
            for level in levels:
                results[(name, level)] = run_wrk(server.url, script, args.duration, level)
        finally:
            server.stop()
    print(f"wrk -t2 -d{args.duration}s, loopback, distinct bodies, trivial async handler")
    print(f"{'server':<18}{'conns':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}  errors")
    for (name, level), r in results.items():
        print(
            f"{name:<18}{level:>6}{r['rps']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['non_2xx']:>9}  {r['socket_errors']}"
        )
    for level in levels:
        ours, hf = results[("spacehooks", level)], results[("huggingface_hub", level)]
        floor = results[("starlette", level)]
        print(
            f"c={level}: req/s spacehooks/huggingface_hub {ours['rps'] / hf['rps']:.2f}, "
            f"p99 spacehooks/huggingface_hub {ours['p99_ms'] / hf['p99_ms']:.2f}, "
            f"req/s spacehooks/starlette {ours['rps'] / floor['rps']:.2f}"
        )


if __name__ == "__main__":
    main()
