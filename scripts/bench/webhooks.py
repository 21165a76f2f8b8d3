#!/usr/bin/env python3
"""Benchmark: the IVR answer webhook under load, one uvicorn worker on loopback, signed requests.

    .venv/bin/python scripts/bench/webhooks.py [--calls 3000] [--concurrency 16] [--seconds 8] [--in-process]
    .venv/bin/python scripts/bench/webhooks.py --during-import [--rows 1000000] [--rate 100]

Prepares `calls` answered calls (a ledger, a round on twilio-voice, attempts picked up through the core), starts
`callbackd serve` with one worker, then sends the keypad answers of every call (six each) as Twilio would: a
form POST signed with X-Twilio-Signature for the public URL, each recording a new answer (none is sent twice:
a repeat would be cheaper than a new answer, and is reported if the run outlasts the prepared answers).

The load comes from wrk with one thread, a C load generator that leaves the CPU to the server (installed with
apt-get when missing and run as root); without wrk, from an asyncio client in this process, which competes with
the server for the two cores and so understates it. Prints requests/s and p50/p99 latency against the target
(>= 1,000 requests/s, p99 <= 50 ms), the CPU the server and wrk used per request, and the load average: the
machine is shared, so read the figures with it.

`--in-process` skips HTTP: it calls the ASGI app directly, one request at a time, and prints the wall and CPU
time per request (what the application itself costs, free of the load generator and mostly of other load).

`--in-process --against REV|DIR` compares two versions of the code side by side: it runs the `--in-process`
measurement alternately on this source tree and on another one (a git revision, checked out for the run in a
temporary worktree under /tmp, or a folder holding a source tree), `--rounds` times each, in fresh processes, and
prints each run's CPU and wall time per request with the load average beside it, then the medians and their ratio.
For instance `--against HEAD` shows what the uncommitted changes cost a webhook.

`--during-import` measures webhooks while SQLite's writer is busy: with the server up, it starts `callbackd ledger
import` of a synthetic ledger of `--rows` new cases (one transaction, which holds the writer for as long as it
runs) and sends signed IVR answers at `--rate` a second from before the import starts until `--tail` seconds after
it ends, /healthz twice a second beside them. It prints p50/p99/max latency (target: p99 <= 1 s), then waits for
the server to apply what it kept in its inbox meanwhile and counts the answers recorded against those sent: every
one must be there, once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import UTC, date, datetime
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
    from callbackd.api.manager import load_plugins
    from callbackd.app import synthetic
    from callbackd.contact import dispatch
    from callbackd.contact.conversation import open_conversation
    from callbackd.core.settings import load_settings
    from callbackd.intake.ledger import import_ledger
    from callbackd.rounds.sampling import open_round
    from callbackd.store.db import Database

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
  repeats = 0
end
function request()
  if offset >= #requests then
    repeats = repeats + 1
  end
  local r = requests[offset %% #requests + 1]
  offset = offset + stride
  return wrk.format("POST", r[1], {["Content-Type"] = "application/x-www-form-urlencoded",
                    ["X-Twilio-Signature"] = r[3]}, r[2])
end
function done(summary, latency, requests)
  local repeated = 0
  for _, thread in ipairs(threads) do
    repeated = repeated + thread:get("repeats")
  end
  io.write(string.format("repeated deliveries: %%d\\n", repeated))
end
"""


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fire_wrk(base: str, requests: list[tuple[str, bytes, dict[str, str]]], concurrency: int, seconds: int,
             folder: Path) -> tuple[str, float]:
    """wrk's report, and the CPU seconds wrk itself used."""
    threads = 1  # one core at most for the load; the server (one worker) needs the other
    entries = ",".join(
        "{" + ",".join((lua_string(path), lua_string(body.decode()), lua_string(headers["X-Twilio-Signature"])))
        + "}" for path, body, headers in requests
    )
    script = folder / "answers.lua"
    script.write_text(WRK_SCRIPT % (entries, threads), encoding="utf-8")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s", "--latency",
                           "-s", str(script), base], capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done.stdout, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def ensure_wrk() -> bool:
    """True when wrk is there, installing it with apt-get when this runs as root."""
    if shutil.which("wrk"):
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing it (apt-get install -y wrk)", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        installed = subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True)
        if installed.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True)
    if shutil.which("wrk"):
        return True
    print("wrk is missing and could not be installed (apt-get install wrk): the load comes from an asyncio "
          "client in this process, which takes CPU from the server, so these figures understate it",
          file=sys.stderr)
    return False


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def milliseconds(text: str | None) -> str:
    """wrk's latency ("812.00us", "3.21ms", "1.02s") in milliseconds."""
    if not text:
        return "?"
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return f"{float(text[: -len(unit)]) * factor:.1f} ms"
    return text


def summarise_wrk(output: str, concurrency: int, server_cpu: float, wrk_cpu: float, available: int) -> None:
    lines = output.splitlines()
    rate = float(next(line for line in lines if line.startswith("Requests/sec")).split()[1])
    total = int(next(line for line in lines if "requests in" in line).split()[0])
    percentiles = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0].endswith("%"):
            percentiles[parts[0]] = parts[1]
    errors = [line.strip() for line in lines if "Non-2xx" in line or "Socket errors" in line]
    repeated = int(next((line.split(":")[1] for line in lines if line.startswith("repeated deliveries")), "0"))
    print(f"wrk (1 thread), {concurrency} connections, one uvicorn worker, {total:,} signed IVR answers")
    print(f"throughput: {rate:,.0f} requests/s (target >= 1,000)")
    print(f"latency: p50 {milliseconds(percentiles.get('50%'))}, p99 {milliseconds(percentiles.get('99%'))} "
          f"(target p99 <= 50 ms)" + (f"; {'; '.join(errors)}" if errors else "; no errors"))
    print(f"CPU per request: server {server_cpu / total * 1000:.2f} ms, wrk {wrk_cpu / total * 1000:.2f} ms")
    if repeated:
        print(f"note: {repeated:,} of the requests repeated an answer already sent (only {available:,} were "
              f"prepared): run with more --calls")


def in_process(requests: list[tuple[str, bytes, dict[str, str]]]) -> None:
    """Call the ASGI app directly, one request at a time: the application's own cost per request."""
    from callbackd.app.web import create_app

    app = create_app()

    async def call(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        route, _, query = path.partition("?")
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": route, "raw_path": route.encode(), "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"127.0.0.1")] + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status, content = 0, b""

        async def receive() -> dict[str, object]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            nonlocal status, content
            if message["type"] == "http.response.start":
                status = int(message["status"])  # type: ignore[call-overload]
            elif message["type"] == "http.response.body":
                content += bytes(message.get("body", b""))  # type: ignore[arg-type]

        await app(scope, receive, send)
        return status, content

    async def run() -> None:
        async with app.router.lifespan_context(app):
            for item in requests[:200]:  # warm up
                await call(*item)
            measured = requests[200:]
            failures = 0
            began, cpu = time.perf_counter(), time.process_time()
            for item in measured:
                status, content = await call(*item)
                failures += status != 200 or b"<Response>" not in content
            wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        print(f"in-process: {len(measured):,} signed IVR answers, one at a time, no HTTP")
        print(f"per request: {wall / len(measured) * 1000:.3f} ms wall, {cpu / len(measured) * 1000:.3f} ms CPU; "
              f"failures: {failures}")

    asyncio.run(run())


def compare(against: str, calls: int, rounds: int) -> None:
    """The `--in-process` measurement on this tree and on `against` (a git revision or a folder), alternately."""
    here = Path(__file__).resolve().parents[2]
    worktree = None
    other = Path(against)
    if not (other / "callbackd").is_dir():
        worktree = Path(tempfile.mkdtemp(prefix="callbackd-against-"))
        subprocess.run(["git", "-C", str(here), "worktree", "add", "--detach", str(worktree), against],
                       check=True, capture_output=True)
        other = worktree
    label = {"this tree": here, f"{against}": other}
    cpu: dict[str, list[float]] = {name: [] for name in label}
    try:
        for number in range(1, rounds + 1):
            for name, tree in reversed(label.items()):  # the other tree first in every round
                done = subprocess.run(
                    [sys.executable, __file__, "--in-process", "--calls", str(calls)], capture_output=True, text=True,
                    env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, check=False)
                found = [line for line in done.stdout.splitlines() if line.startswith("per request:")]
                if done.returncode != 0 or not found:
                    sys.exit(f"{name} ({tree}) failed: {done.stderr.strip()[-2000:]}")
                parts = found[0].split()
                wall, used = float(parts[2]), float(parts[5])
                cpu[name].append(used)
                print(f"round {number} {name:>12}: {used:.3f} ms CPU, {wall:.3f} ms wall per request; {load()}",
                      flush=True)
    finally:
        if worktree is not None:
            subprocess.run(["git", "-C", str(here), "worktree", "remove", "--force", str(worktree)],
                           check=False, capture_output=True)
            shutil.rmtree(worktree, ignore_errors=True)
    mine, theirs = (statistics.median(values) for values in cpu.values())
    print(f"median CPU per request: this tree {mine:.3f} ms, {against} {theirs:.3f} ms: "
          f"{(mine / theirs - 1) * 100:+.1f}%")


def start_server(env: dict[str, str], folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`callbackd serve` with one worker on a free loopback port, once /healthz answers; the process and its URL."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "callbackd"), "serve", "--port", str(port)], env=env, cwd=folder,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    server.terminate()
    sys.exit("callbackd serve did not start")


def percentile(latencies: list[float], share: float) -> float:
    ordered = sorted(latencies)
    return ordered[max(int(len(ordered) * share + 0.999999) - 1, 0)]


def during_import(folder: Path, env: dict[str, str], requests: list[tuple[str, bytes, dict[str, str]]],
                  options: argparse.Namespace) -> int:
    """The `--during-import` run (see the module); exit status 1 when an answer is missing or the target missed."""
    from callbackd.app.synthetic import ledger_rows, write_ledger_csv

    database = folder / "bench.db"
    ledger = folder / "import-ledger.csv"
    began = time.perf_counter()
    # another month's cases: all new, so the import takes SQLite's bulk-load path, the writer's longest hold
    write_ledger_csv(ledger, ledger_rows(date(2026, 10, 1), options.rows, windows=200, seed=1))
    print(f"ledger to import: {options.rows:,} new cases, {ledger.stat().st_size / 1e6:.0f} MB "
          f"(written in {time.perf_counter() - began:.1f} s)")
    server, base = start_server(env, folder)
    try:
        asyncio.run(fire(base, requests[:200], 8))  # warm up, applied at once
        before = recorded_answers(database)
        print(load(), "(before)")
        sent, answered, health, failures, took = asyncio.run(
            paced_during_import(base, requests[200:], env, folder, options))
        print(load(), "(at the end of the import)")
        waited = time.perf_counter()
        while kept(database) and time.perf_counter() - waited < 600:
            time.sleep(0.2)
        applied = recorded_answers(database) - before
        drained = time.perf_counter() - waited
    finally:
        server.terminate()
        server.wait(timeout=30)
    everything = [latency for latency, _ in answered]
    during = [latency for latency, busy in answered if busy]
    print(f"import: {options.rows:,} rows in {took:.1f} s")
    print(f"{len(everything):,} signed IVR answers at {options.rate:g}/s, {len(during):,} of them while the import "
          f"wrote; failures (not 200 TwiML): {failures}")
    for name, values in (("all", everything), ("during the import", during)):
        if values:
            print(f"latency ({name}): p50 {statistics.median(values) * 1000:.1f} ms, "
                  f"p99 {percentile(values, 0.99) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms (target p99 <= 1 s)")
    if health:
        print(f"/healthz: {len(health)} probes, p50 {statistics.median(health) * 1000:.1f} ms, "
              f"max {max(health) * 1000:.1f} ms")
    still = kept(database)
    print(f"applied afterwards: {applied:,} answers recorded of {sent:,} sent; the inbox emptied in {drained:.1f} s "
          f"after the import" + (f"; {still} still kept" if still else ""))
    print(load(), "(after)")
    missed = applied != sent or failures or not everything or percentile(everything, 0.99) > 1.0
    print("verdict: " + ("MISSED" if missed else "met (p99 <= 1 s, every answer applied once)"))
    return 1 if missed else 0


async def paced_during_import(base: str, requests: list[tuple[str, bytes, dict[str, str]]], env: dict[str, str],
                              folder: Path, options: argparse.Namespace
                              ) -> tuple[int, list[tuple[float, bool]], list[float], int, float]:
    """Send `requests` at `options.rate` a second from a second before the import starts until `options.tail`
    seconds after it ends: (sent, [(latency, while the import ran)], /healthz latencies, failures, import time)."""
    answered: list[tuple[float, bool]] = []
    health: list[float] = []
    failures = 0
    importing = False
    connections = max(options.concurrency, 64)  # open loop: requests keep coming while answers are slow
    limits = httpx.Limits(max_connections=connections + 1, max_keepalive_connections=connections + 1)
    gate = asyncio.Semaphore(connections)

    async def send(client: httpx.AsyncClient, path: str, body: bytes, headers: dict[str, str]) -> None:
        nonlocal failures
        busy = importing
        began = time.perf_counter()  # from when it is due: time spent waiting for a connection counts
        async with gate:
            try:
                response = await client.post(base + path, content=body, headers=headers)
                ok = response.status_code == 200 and b"<Response>" in response.content
            except httpx.HTTPError:
                ok = False
            answered.append((time.perf_counter() - began, busy or importing))
            failures += not ok

    async def probe(client: httpx.AsyncClient) -> None:
        while True:
            began = time.perf_counter()
            await client.get(base + "/healthz")
            health.append(time.perf_counter() - began)
            await asyncio.sleep(0.5)

    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        probing = asyncio.create_task(probe(client))
        tasks: list[asyncio.Task[None]] = []
        started = time.perf_counter()
        importer: asyncio.subprocess.Process | None = None
        import_began = import_took = 0.0
        ended_at: float | None = None
        for number, (path, body, headers) in enumerate(requests):
            now = time.perf_counter()
            if importer is None and now - started >= 1.0:
                importer = await asyncio.create_subprocess_exec(
                    str(Path(sys.executable).parent / "callbackd"), "ledger", "import", "import-ledger.csv", "--json",
                    cwd=folder, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                import_began, importing = time.perf_counter(), True
            if importer is not None and ended_at is None and importer.returncode is not None:
                ended_at, importing = time.perf_counter(), False
                import_took = ended_at - import_began
            if ended_at is not None and now - ended_at >= options.tail:
                break
            await asyncio.sleep(max(0.0, started + number / options.rate - now))
            tasks.append(asyncio.create_task(send(client, path, body, headers)))
        else:
            print("note: the prepared answers ran out before the import ended: run with more --calls")
        await asyncio.gather(*tasks)
        probing.cancel()
        if importer is not None:
            out, err = await importer.communicate()
            if importer.returncode != 0:
                print(f"callbackd ledger import failed (exit {importer.returncode}): {err.decode()[-500:]}")
            else:
                report = json.loads(out)
                print(f"import report: imported {report['imported']:,}, errors {len(report['errors'])}")
            if ended_at is None:
                import_took = time.perf_counter() - import_began
    return len(tasks), answered, health, failures, import_took


def recorded_answers(database: Path) -> int:
    with closing(sqlite3.connect(database, timeout=60)) as connection:
        return int(connection.execute("SELECT count(*) FROM answers").fetchone()[0])


def kept(database: Path) -> int:
    """How many deliveries the server's inbox (beside the database) holds still."""
    inbox = Path(f"{database}-inbox")
    if not inbox.exists():
        return 0
    with closing(sqlite3.connect(inbox, timeout=60)) as connection:
        return int(connection.execute("SELECT count(*) FROM deliveries").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--in-process", action="store_true", help="call the ASGI app directly, without HTTP")
    parser.add_argument("--against", metavar="REV|DIR",
                        help="with --in-process: compare with the code of a git revision or another source tree")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tree (--against)")
    parser.add_argument("--during-import", action="store_true",
                        help="webhooks while `callbackd ledger import` writes --rows new cases")
    parser.add_argument("--rows", type=int, default=1_000_000, help="cases the import writes (--during-import)")
    parser.add_argument("--rate", type=float, default=100.0, help="webhooks a second (--during-import)")
    parser.add_argument("--tail", type=float, default=3.0,
                        help="seconds of webhooks after the import ends (--during-import)")
    args = parser.parse_args()
    if args.against:
        if not args.in_process:
            parser.error("--against compares --in-process runs: give --in-process too")
        compare(args.against, args.calls, args.rounds)
        return

    folder = Path(tempfile.mkdtemp(prefix="callbackd-webhooks-"))
    env = {**os.environ, "CALLBACKD_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}", "CALLBACKD_NOW": NOW,
           "TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "CALLBACKD_TWILIO_PUBLIC_BASE_URL": PUBLIC,
           "CALLBACKD_TWILIO_FROM": "+861012345678"}
    os.environ.update(env)
    server = None
    try:
        ids = prepare(folder, args.calls)
        requests = signed_requests(ids)
        if args.during_import:
            status = during_import(folder, env, requests, args)
            if status:
                sys.exit(status)
            return
        print(load(), "(before)")
        if args.in_process:
            os.chdir(folder)
            in_process(requests)
            print(load(), "(after)")
            return
        have_wrk = ensure_wrk()
        server, base = start_server(env, folder)
        asyncio.run(fire(base, requests[: min(200, len(requests))], args.concurrency))  # warm up
        measured = requests[200:]
        server_cpu = cpu_seconds(server.pid)
        if have_wrk:
            output, wrk_cpu = fire_wrk(base, measured, args.concurrency, args.seconds, folder)
            summarise_wrk(output, args.concurrency, cpu_seconds(server.pid) - server_cpu, wrk_cpu, len(measured))
        else:
            elapsed, latencies, failures = asyncio.run(fire(base, measured, args.concurrency))
            server_cpu = cpu_seconds(server.pid) - server_cpu
            count = len(latencies)
            latencies.sort()
            p50 = statistics.median(latencies) * 1000
            p99 = latencies[int(count * 0.99) - 1] * 1000
            print(f"{count} signed IVR answers, {args.concurrency} concurrent (asyncio client), one uvicorn worker")
            print(f"throughput: {count / elapsed:,.0f} requests/s (target >= 1,000)")
            print(f"latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 <= 50 ms); failures: {failures}")
            print(f"CPU per request: server {server_cpu / count * 1000:.2f} ms")
        print(load(), "(after)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
