#!/usr/bin/env python3
"""Benchmark: the console's heaviest pages for 50 signed-in users at once, one uvicorn worker, ten million answers.

    .venv/bin/python scripts/bench/console.py [--answers N] [--windows W] [--keep DIR] [--connections 50]
                                              [--seconds 20] [--threads 2] [--path /rankings/2026 --path /]

Builds the database with `scripts/bench/score.py`'s builder (10,000,000 answers over 2,000 windows by default, their
score tallies rebuilt when the builder did not make them; `--keep DIR` keeps it as DIR/score.db, the file score.py
keeps too, and reuses it), adds a supervisor account, starts `callbackd serve` with one worker on loopback, signs in
once through /login with httpx and loads each page with wrk (`-t2 -c50 --latency`, the session cookie on every
request) for `--seconds`, after one request that warms it (its time is printed: the first computation of a year's
ranking). Prints p50/p95/p99 latency and requests/s per page against the target (p95 <= 300 ms), with the load
average beside them: the machine is shared, so read the figures with it. A page that answers anything but 200 is
reported, and the script exits 1.

wrk is installed with apt-get when missing and this runs as root. `--answers 200000 --windows 200` is a quick run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import score as score_bench  # noqa: E402 - scripts/bench/score.py, beside this file: its builder

from callbackd.core.settings import load_settings  # noqa: E402
from callbackd.store import tallies  # noqa: E402
from callbackd.store.accounts import NewUser, add_user, set_password  # noqa: E402
from callbackd.store.db import Database  # noqa: E402
from callbackd.store.models import User  # noqa: E402

USER = "bench-supervisor"
PASSWORD = "console-bench-2026"
SECRET_KEY = "console benchmark signing key, long enough"
# the built answers cover 2026 (Shanghai time): the dashboard's month and week are then full ones
NOW = "2026-12-28T10:00:00+08:00"
TARGET_P95_MS = 300.0
STARTUP_SECONDS = 60.0
# wrk's `done` hook: its latency percentiles are microseconds; the default report has no p95
REPORT = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT p50=%d p95=%d p99=%d max=%d requests=%d duration=%d " ..
    "connect=%d read=%d write=%d status=%d timeout=%d\\n",
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, summary.requests,
    summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def ensure_wrk() -> str:
    """wrk's path, installing it from the system's packages when this runs as root; exits when it cannot."""
    found = shutil.which("wrk")
    if found is None and os.geteuid() == 0:
        print("wrk is missing: installing it (apt-get install -y wrk)", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True).returncode:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True)
        found = shutil.which("wrk")
    if found is None:
        sys.exit("wrk is missing: install it (sudo apt-get install wrk) and run again")
    return found


def prepare(path: Path, answers: int, windows: int) -> None:
    """The answers (built once, kept when --keep names a folder), their tallies, and the benchmark's account."""
    if not path.exists():
        began = time.perf_counter()
        contacts = score_bench.build(path, answers, windows)
        print(f"built {answers:,} answers ({contacts:,} contacts) over {windows:,} windows "
              f"in {time.perf_counter() - began:.1f} s")
    database = Database(f"sqlite:///{path}")
    database.ensure_schema()
    settings = load_settings()
    rules = tallies.TallyRules.of(settings)
    try:
        with database.session() as session:
            current = tallies.rules_in_force(session) == rules
        if not current:  # a builder that leaves the tallies to be made, or a database from before them
            began = time.perf_counter()
            with database.engine.begin() as connection:
                tallies.rebuild(connection, rules)
            print(f"tallies rebuilt from the answers in {time.perf_counter() - began:.1f} s")
        with database.session() as session:
            now = datetime.now(UTC)
            if session.query(User).filter_by(name=USER).first() is None:
                add_user(session, NewUser(USER, "supervisor", (), PASSWORD), now)
            else:
                set_password(session, USER, PASSWORD, now)
    finally:
        database.dispose()


def start_server(env: dict[str, str], folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (folder / "serve.log").open("wb")
    server = subprocess.Popen([str(Path(sys.executable).with_name("callbackd")), "serve", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if server.poll() is not None:
            sys.exit(f"callbackd serve exited {server.returncode}: see {folder / 'serve.log'}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2, trust_env=False).status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            sys.exit(f"callbackd serve did not answer /healthz in {STARTUP_SECONDS:.0f} s")
        time.sleep(0.1)


def session_cookie(base: str) -> str:
    """Sign in through /login as a browser would (the form's CSRF token, then the POST); the Cookie header."""
    with httpx.Client(base_url=base, trust_env=False, timeout=60, follow_redirects=False) as client:
        form = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        if token is None:
            sys.exit("/login shows no CSRF token")
        signed = client.post("/login", data={"csrf_token": token.group(1), "username": USER, "password": PASSWORD})
        if signed.status_code != 303:
            sys.exit(f"signing in failed: HTTP {signed.status_code}")
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def warm(base: str, path: str, cookie: str) -> float:
    """One request, timed: the first computation of the page's figures. Exits unless it is a 200 page."""
    began = time.perf_counter()
    response = httpx.get(f"{base}{path}", headers={"Cookie": cookie}, trust_env=False, timeout=300)
    elapsed = time.perf_counter() - began
    if response.status_code != 200:
        sys.exit(f"{path}: HTTP {response.status_code} (expected 200) with the signed-in session")
    return elapsed


def run_wrk(wrk: str, url: str, cookie: str, threads: int, connections: int, seconds: int, script: Path
            ) -> dict[str, int]:
    done = subprocess.run([wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
                           "-H", f"Cookie: {cookie}", "-s", str(script), url], capture_output=True, text=True,
                          check=False)
    found = re.search(r"^RESULT (.*)$", done.stdout, re.M)
    if done.returncode != 0 or found is None:
        sys.exit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return {key: int(value) for key, value in (pair.split("=") for pair in found.group(1).split())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=10_000_000)
    parser.add_argument("--windows", type=int, default=2_000)
    parser.add_argument("--keep", type=Path, help="keep the database in this folder (as score.db) and reuse it")
    parser.add_argument("--connections", type=int, default=50, help="concurrent signed-in users (wrk -c)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    parser.add_argument("--seconds", type=int, default=20, help="load per page (wrk -d)")
    parser.add_argument("--path", action="append", dest="paths", help="a page to load (default /rankings/2026 and /)")
    args = parser.parse_args()
    paths = args.paths or ["/rankings/2026", "/"]
    wrk = ensure_wrk()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="callbackd-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "score.db"
    server = None
    try:
        prepare(path, args.answers, args.windows)
        # the settings this process used for the tallies (same working folder, same CALLBACKD_* variables)
        env = {**os.environ, "CALLBACKD_DATABASE_URL": f"sqlite:///{path}", "CALLBACKD_SECRET_KEY": SECRET_KEY,
               "CALLBACKD_NOW": NOW}
        server, base = start_server(env, folder)
        cookie = session_cookie(base)
        script = folder / "report.lua"
        script.write_text(REPORT, encoding="utf-8")
        print(f"one uvicorn worker; wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, one signed-in "
              f"session; {args.answers:,} answers over {args.windows:,} windows (kept database: {path})")
        failed = False
        for page in paths:
            first = warm(base, page, cookie)
            before = load()
            result = run_wrk(wrk, f"{base}{page}", cookie, args.threads, args.connections, args.seconds, script)
            rate = result["requests"] / (result["duration"] / 1e6)
            p50, p95, p99 = (result[key] / 1000 for key in ("p50", "p95", "p99"))
            errors = {key: result[key] for key in ("connect", "read", "write", "status", "timeout") if result[key]}
            verdict = "met" if p95 <= TARGET_P95_MS else "NOT met"
            print(f"{page:<16} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p99 {p99:7.1f} ms  {rate:8.1f} requests/s  "
                  f"(first request {first * 1000:.0f} ms; p95 <= {TARGET_P95_MS:.0f} ms {verdict})")
            print(f"{'':<16} {result['requests']:,} requests; {before} before, {load()} after"
                  + (f"; ERRORS {errors}" if errors else ""))
            failed = failed or bool(errors)
        if failed:
            sys.exit(1)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
