"""Shared by the benchmarks: the three servers, started the same way, and their process info."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.pg import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "bench-secret"
BODY = (ROOT / "server" / "samples" / "repo-content-main-and-tag.json").read_bytes()


@dataclass
class Started:
    name: str
    proc: subprocess.Popen
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/hub"

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def start(name: str, ui: bool = True) -> Started:
    """Start one server the way its users do; returns at once (measure readiness yourself)."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    env = {
        **os.environ,
        "WEBHOOK_SECRET": SECRET,
        "HF_HUB_DISABLE_EXPERIMENTAL_WARNING": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "SPACEHOOKS_DB": str(workdir / "inbox.db"),
        "SPACEHOOKS_LOG_LEVEL": "WARNING",
        # The production configuration: with a token, spacehooks starts no sandbox Hub.
        "HF_TOKEN": "hf_benchmark_unused",
        "PYTHONPATH": str(ROOT),
    }
    apps = ROOT / "tests" / "benchmarks" / "apps"
    if name == "spacehooks":
        args = [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--port",
            str(port),
            "--handlers",
            "tests.benchmarks.apps.spacehooks_app",
            *([] if ui else ["--no-ui"]),
        ]
    elif name == "huggingface_hub":
        args = [sys.executable, str(apps / "hf_app.py"), str(port)]
    elif name == "starlette":
        args = [sys.executable, str(apps / "starlette_app.py"), str(port)]
    else:
        raise ValueError(name)
    proc = subprocess.Popen(
        args,
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return Started(name, proc, port, workdir)


def wait_first_2xx(server: Started, timeout: float = 120) -> float:
    """Seconds from now until the webhook first answers 2xx (polling every 5 ms)."""
    import http.client

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request(
                "POST",
                "/webhooks/hub",
                body=BODY,
                headers={"x-webhook-secret": SECRET, "content-type": "application/json"},
            )
            status = conn.getresponse().status
            conn.close()
            if 200 <= status < 300:
                return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{server.name} never answered 2xx")
