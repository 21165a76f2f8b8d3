#!/usr/bin/env python3
"""Benchmark: the IVR answer webhook under load, one uvicorn worker on loopback, signed requests.

    .venv/bin/python scripts/bench/webhooks.py [--calls 2000] [--concurrency 16] [--seconds 8]

Prepares `calls` answered calls (a ledger, a round on twilio-voice, attempts picked up through the core), starts
`callbackd serve` with one worker, then sends the keypad answers of every call (six each) as Twilio would: a
form POST signed with X-Twilio-Signature for the public URL, each recording a new answer. The load comes from
wrk (apt-get install wrk), a C load generator that leaves the CPU to the server; without wrk, from an asyncio
client in this process (which competes with the server for the two cores). Prints requests/s and p50/p99
latency against the target (>= 1,000 requests/s, p99 <= 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

PUBLIC = "https://callbacks.example.gov.cn"
TOKEN = "bench-token-0123456789abcdef"
SID = "AC" + "0" * 32
NOW = "2026-11-23T10:00:00+08:00"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(folder: Path, calls: int) -> list[int]:
    """A database with `calls` voice attempts already answered; returns their ids."""
    from callbackd import dispatch, synthetic
    from callbackd.config import load_settings
    from callbackd.conversation import open_conversation
    from callbackd.db import Database
    from callbackd.ledger import import_ledger
    from callbackd.plugins import load_plugins
    from callbackd.sampling import open_round

    settings = load_settings()
    database = Database(settings.database_url)
    database.ensure_schema()
    windows = max(calls // 20, 1)
    ledger = synthetic.write_ledger_csv(folder / "ledger.csv",
                                        synthetic.ledger_rows(datetime(2026, 11, 1).date(), calls * 3, windows, 5,
                                                              special_share=0.0, unresolved_share=0.0))
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    with database.session() as session:
        import_ledger(session, settings, ledger)
    with database.session() as session:
        open_round(session, settings, "2026-W48", seed="bench", now=now, channels=["twilio-voice"])
    plugins = load_plugins()
    with database.session() as session:
        dispatch.schedule_new(session, settings, plugins, now)
        ids = dispatch.due_attempts(session, now)[:calls]
    with database.session() as session:
        for attempt_id in ids:
            dispatch.claim(session, attempt_id, now)
            open_conversation(session, settings, plugins, attempt_id, now).pick_up()
    database.dispose()
    return ids


def signed_requests(ids: list[int]) -> list[tuple[str, bytes, dict[str, str]]]:
    validator = RequestValidator(TOKEN)
    questions = ("attitude", "efficiency", "rules", "off_book", "integrity", "overall")
    out = []
    for number, key in enumerate(questions):  # question by question, so each request is the call's next one
        for attempt_id in ids:
            path = f"/hooks/twilio/voice/{attempt_id}/answer?q={key}&try=0"
            params = {"CallSid": f"CA{attempt_id:032d}", "Digits": str(1 + (attempt_id + number) % 3),
                      "AccountSid": SID}
            signature = validator.compute_signature(PUBLIC + path, params)
            out.append((path, urlencode(params).encode(), {
                "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}))
    return out


async def fire(base: str, requests: list[tuple[str, bytes, dict[str, str]]], concurrency: int) -> tuple[
        float, list[float], int]:
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[tuple[str, bytes, dict[str, str]]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while not queue.empty():
            path, body, headers = queue.get_nowait()
            began = time.perf_counter()
            response = await client.post(base + path, content=body, headers=headers)
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200 or b"<Response>" not in response.content:
                failures += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - began, latencies, failures


WRK_SCRIPT = """
local requests = {%s}
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  offset = id
  stride = %d
end
function request()
  local r = requests[offset %% #requests + 1]
  offset = offset + stride
  return wrk.format("POST", r[1], {["Content-Type"] = "application/x-www-form-urlencoded",
                    ["X-Twilio-Signature"] = r[3]}, r[2])
end
"""


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fire_wrk(base: str, requests: list[tuple[str, bytes, dict[str, str]]], concurrency: int, seconds: int,
             folder: Path) -> str:
    threads = 2
    entries = ",".join(
        "{" + ",".join((lua_string(path), lua_string(body.decode()), lua_string(headers["X-Twilio-Signature"])))
        + "}" for path, body, headers in requests
    )
    script = folder / "answers.lua"
    script.write_text(WRK_SCRIPT % (entries, threads), encoding="utf-8")
    done = subprocess.run(["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s", "--latency",
                           "-s", str(script), base], capture_output=True, text=True, check=True)
    return done.stdout


def summarise_wrk(output: str, concurrency: int) -> None:
    rate = next(line for line in output.splitlines() if line.startswith("Requests/sec")).split()[1]
    percentiles = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].endswith("%"):
            percentiles[parts[0]] = parts[1]
    errors = [line.strip() for line in output.splitlines() if "Non-2xx" in line or "Socket errors" in line]
    print(f"wrk, {concurrency} connections, one uvicorn worker, signed IVR answers")
    print(f"throughput: {float(rate):,.0f} requests/s (target >= 1,000)")
    print(f"latency: p50 {percentiles.get('50%')}, p99 {percentiles.get('99%')} (target p99 <= 50 ms)"
          + (f"; {'; '.join(errors)}" if errors else "; no errors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="callbackd-webhooks-"))
    env = {**os.environ, "CALLBACKD_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}", "CALLBACKD_NOW": NOW,
           "TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "CALLBACKD_TWILIO_PUBLIC_BASE_URL": PUBLIC,
           "CALLBACKD_TWILIO_FROM": "+861012345678"}
    os.environ.update(env)
    server = None
    try:
        ids = prepare(folder, args.calls)
        requests = signed_requests(ids)
        port = free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "callbackd"), "serve", "--port", str(port)], env=env, cwd=folder,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            sys.exit("callbackd serve did not start")
        asyncio.run(fire(base, requests[: min(200, len(requests))], args.concurrency))  # warm up
        if shutil.which("wrk"):
            summarise_wrk(fire_wrk(base, requests[200:], args.concurrency, args.seconds, folder), args.concurrency)
            return
        elapsed, latencies, failures = asyncio.run(fire(base, requests[200:], args.concurrency))
        count = len(latencies)
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(count * 0.99) - 1] * 1000
        print(f"{count} signed IVR answers, {args.concurrency} concurrent, one uvicorn worker")
        print(f"throughput: {count / elapsed:,.0f} requests/s (target >= 1,000)")
        print(f"latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 <= 50 ms); failures: {failures}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
