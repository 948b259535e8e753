"""Cold start: process start -> first 2xx webhook answer, and resident memory.

spacehooks (`spacehooks serve`, Gradio UI on, loaded lazily) against huggingface_hub's
`WebhooksServer` (`app.launch()`), each started the same way as a fresh Python process, in one run.

    python -m tests.benchmarks.cold_start [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from tests.benchmarks.common import start, wait_first_2xx


def measure(name: str, runs: int) -> dict[str, float]:
    starts, rss_first, rss_settled = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        server = start(name)
        try:
            wait_first_2xx(server)
            starts.append(time.perf_counter() - t0)
            rss_first.append(server.rss_mib())
            time.sleep(6)  # let spacehooks finish loading its UI in the background
            rss_settled.append(server.rss_mib())
        finally:
            server.stop()
    return {
        "cold_start_s": statistics.median(starts),
        "rss_at_first_2xx_mib": statistics.median(rss_first),
        "rss_settled_mib": statistics.median(rss_settled),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = {name: measure(name, args.runs) for name in ("spacehooks", "huggingface_hub")}
    ours, theirs = results["spacehooks"], results["huggingface_hub"]
    print(f"{'server':<18}{'cold start (s)':>16}{'RSS at 1st 2xx':>16}{'RSS settled':>13}")
    for name, r in results.items():
        print(
            f"{name:<18}{r['cold_start_s']:>16.3f}{r['rss_at_first_2xx_mib']:>12.0f} MiB"
            f"{r['rss_settled_mib']:>9.0f} MiB"
        )
    for label, key in (
        ("cold start", "cold_start_s"),
        ("RSS at first 2xx", "rss_at_first_2xx_mib"),
        ("RSS settled", "rss_settled_mib"),
    ):
        print(f"ratio {label} spacehooks/huggingface_hub: {ours[key] / theirs[key]:.2f}")


if __name__ == "__main__":
    main()
