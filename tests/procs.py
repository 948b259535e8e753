"""Real server processes on loopback for the tests: started, waited for, stopped by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.pg import free_port

ROOT = Path(__file__).resolve().parents[1]


class ServerProcess:
    def __init__(
        self, args: list[str], env: dict[str, str], log: Path, port: int, cwd: Path = ROOT
    ) -> None:
        self.port = port
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.proc = subprocess.Popen(
            args,
            env=full_env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60, path: str = "/healthz") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}:\n{self.output[-3000:]}"
                )
            try:
                if requests.get(self.url + path, timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.output[-3000:]}")

    def wait_for_output(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{text!r} never appeared in:\n{self.output[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.proc.returncode


def spacehooks(
    *cli_args: str, env: dict[str, str], log: Path, port: int | None = None
) -> ServerProcess:
    port = port or free_port()
    args = [sys.executable, "-m", "server.cli", *cli_args, "--port", str(port)]
    return ServerProcess(args, env, log, port)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy, and return that; fail after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
