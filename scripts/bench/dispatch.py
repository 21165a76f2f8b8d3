#!/usr/bin/env python3
"""Benchmark: attempts placed a second end to end through Celery and Redis, with the simulator channel (every
applicant answers the whole survey) and no provider rate, for 1 and 2 worker processes; then the provider rate
shared by two workers through Redis, against its setting.

    .venv/bin/python scripts/bench/dispatch.py [--callbacks N] [--database sqlite|postgresql] [--rate R]
                                               [--pool solo|threads|both]

Starts its own redis-server (and, for --database postgresql, a throwaway PostgreSQL server, as root) on
loopback. Each run gets a fresh database with one open round of N callbacks; the clock runs from Monday
2026-11-23 10:00 (Asia/Shanghai). "End to end" runs from beat's first tick to the last callback's final state:
scheduling every callback's first attempt, claiming, the messages through Redis, placing and the whole simulated
survey. Beside it, the time beat's process took to start before that tick (Python and its imports, a one-off
that does not grow with the round) and the rate counting it too; and the rate from the first outcome to the last
(the steady state). Each worker process places one attempt at a time (`--pool solo`), or with --pool threads four
at once on threads; by default both are measured, one after the other (the limiter's run uses solo). Each run
has its own Redis databases, so nothing an earlier run left queued starts its work early.
Target: >= 500 attempts/s on a 2-core machine.

With --channel twilio the calls go through the real twilio library to the Twilio emulator of the integration tests
(tests/integration/twilio_emulator.py) on loopback, which answers each API request after 200 ms (--api-delay), as
a provider under load does, and connects every call half a second after creating it, driving its signed webhooks
against `callbackd serve`: status callbacks, the voice URL and six keypad answers. Two worker processes place on
threads, within the account's rate (--rate, default 30 calls/s). Reported: calls placed a second (first to last
call the provider created) against the rate, and whether every call's six answers were recorded once.
Target: >= 0.95 of the rate.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, select

from callbackd.app.synthetic import HEADER
from callbackd.store.db import Database
from callbackd.store.models import Answer, Attempt, Callback, Contact

ROOT = Path(__file__).resolve().parents[2]

BIN = Path(sys.executable).with_name("callbackd")
MONDAY = "2026-11-23T10:00:00+08:00"
# how each worker process places: one attempt at a time, or four at once on threads (while one waits on the
# database, another computes; on SQLite the writers of one process wait on SQLite's busy handler instead)
POOLS = {"solo": ("--pool", "solo"), "threads": ("--pool", "threads", "--concurrency", "4")}
FINAL = ("completed", "partial", "unreachable", "refused", "opted_out", "invalid")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is missing: apt-get install redis-server (scripts/test installs it)")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


@contextmanager
def postgres_server(folder: Path) -> Iterator[str]:
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins:
        sys.exit("PostgreSQL is missing: apt-get install postgresql (scripts/test installs it)")
    pg_bin = bins[-1]
    data = folder / "pg"
    data.mkdir()
    prefix: list[str] = []
    if os.getuid() == 0:  # the server refuses to run as root
        shutil.chown(data, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*prefix, str(pg_bin / "initdb"), "-D", str(data / "data"), "-A", "trust", "-U", "postgres",
                    "--no-sync"], check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={data} -c fsync=off"
    subprocess.run([*prefix, str(pg_bin / "pg_ctl"), "-D", str(data / "data"), "-l", str(data / "log"), "-w", "-o",
                    options, "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, str(pg_bin / "pg_ctl"), "-D", str(data / "data"), "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL)


def fresh_database(kind: str, server: str | None, folder: Path, name: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / name}.db"
    assert server is not None
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return f"{server}/{name}"


def write_ledger(path: Path, callbacks: int) -> None:
    windows = max(1, callbacks // 20)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for w in range(windows):
            for i in range(20):
                day = 2 + i % 18
                writer.writerow([f"B{w:05d}{i:02d}", f"窗口{w:05d}", "社保卡补办", "即办件", "张三",
                                 f"139{w * 100 + i:08d}", f"2026-11-{day:02d} 09:00:00",
                                 f"2026-11-{day:02d} 11:00:00", "已办结"])


def run(folder: Path, database_url: str, broker: str, workers: int, rate: float | None, ledger: Path,
        redis_db: int, pool: tuple[str, ...]) -> dict:
    """One timed run on its own Redis databases (`redis_db` for the broker, the next for the rate): messages an
    earlier run left in its queue (ticks sent just before its processes were killed) must not start this run's
    work before its clock does."""
    folder.mkdir()
    (folder / "config").mkdir()
    simulator = 'no_answer_rate = 0.0\nrefuse_rate = 0.0\nhang_up_rate = 0.0\n'
    if rate:
        simulator += f"per_second = {rate}\n"
    (folder / "config" / "callbackd.toml").write_text(f"""
database_url = "{database_url}"
[sampling]
per_window = 20
[workers]
broker_url = "{broker}/{redis_db}"
tick_seconds = 0.5
[dispatch]
rate_storage = "{broker}/{redis_db + 1}"
batch = 2000
[channels.simulator]
{simulator}""", encoding="utf-8")
    offset = (datetime.fromisoformat(MONDAY) - datetime.now(UTC)).total_seconds()
    env = {**os.environ, "CALLBACKD_CLOCK_OFFSET": str(offset)}
    for args in (["ledger", "import", str(ledger)], ["round", "open", "--week", "2026-W48", "--seed", "bench"]):
        subprocess.run([str(BIN), *args], cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL)
    processes = []
    try:
        for n in range(workers):
            log = (folder / f"worker{n}.log").open("wb")
            processes.append(subprocess.Popen([str(BIN), "worker", *pool, "-n", f"bench{n}@%h", "--loglevel",
                                               "WARNING"], cwd=folder, env=env, stdout=log, stderr=log,
                                              start_new_session=True))
        time.sleep(4)  # workers connect before the clock starts
        database = Database(database_url)
        with database.session() as session:
            total = session.scalar(select(func.count()).select_from(Callback))
        log = (folder / "beat.log").open("wb")
        started = time.perf_counter()
        started_at = datetime.now()  # beat's log stamps its lines with the machine's local time
        processes.append(subprocess.Popen([str(BIN), "beat", "--schedule", str(folder / "beat-state"), "--loglevel",
                                           "INFO"], cwd=folder, env=env, stdout=log, stderr=log,
                                          start_new_session=True))
        while True:
            with database.session() as session:
                final = session.scalar(select(func.count()).select_from(Callback).where(Callback.status.in_(FINAL)))
            if final == total:
                break
            if time.perf_counter() - started > 900:
                sys.exit(f"gave up after 900 s with {final} of {total} callbacks final; see {folder}")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        first_tick = (beat_first_tick(folder / "beat.log") - started_at).total_seconds()
        with database.session() as session:
            attempts = session.scalar(select(func.count()).select_from(Attempt))
            ended = sorted(session.scalars(select(Attempt.ended_at).where(Attempt.ended_at.is_not(None))))
        database.dispose()
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    placing = (ended[-1] - ended[0]).total_seconds() if len(ended) > 1 else 0.0
    return {"callbacks": total, "attempts": attempts, "elapsed": elapsed, "ended": ended, "placing": placing,
            "first_tick": first_tick}


# ---- Twilio: the real library against the emulator, webhooks through `callbackd serve` ---------------------------

ACCOUNT_SID = "AC" + "be4c" * 8
AUTH_TOKEN = "0123456789abcdef" * 2
FROM_NUMBER = "+8657112345678"
PUBLIC_BASE_URL = "https://callbacks.example.gov.cn"


def wait_for(url: str, seconds: float = 20.0) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} did not answer within {seconds:.0f} s")


def run_twilio(folder: Path, database_url: str, broker: str, rate: float, api_delay: float, ledger: Path) -> dict:
    """One run: 2 worker processes on threads place calls through the twilio library against the emulator; the
    emulator drives every call's webhooks against `callbackd serve`."""
    sys.path.insert(0, str(ROOT))
    from tests.integration.twilio_emulator import Person, TwilioEmulator

    folder.mkdir()
    (folder / "config").mkdir()
    (folder / "config" / "callbackd.toml").write_text(f"""
database_url = "{database_url}"
[sampling]
per_window = 20
[workers]
broker_url = "{broker}/0"
tick_seconds = 0.5
[dispatch]
rate_storage = "{broker}/1"
batch = 2000
[channels.twilio]
calls_per_second = {rate}
""", encoding="utf-8")
    port = free_port()
    emulator = TwilioEmulator(ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_BASE_URL, f"http://127.0.0.1:{port}",
                              sms_url=f"{PUBLIC_BASE_URL}/hooks/twilio/sms").start()
    emulator.api_delay = api_delay
    emulator.autoplay(Person(keys="111111"))
    offset = (datetime.fromisoformat(MONDAY) - datetime.now(UTC)).total_seconds()
    env = {**os.environ, "CALLBACKD_CLOCK_OFFSET": str(offset), "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "CALLBACKD_TWILIO_FROM": FROM_NUMBER,
           "CALLBACKD_TWILIO_PUBLIC_BASE_URL": PUBLIC_BASE_URL, "CALLBACKD_TWILIO_API_BASE_URL": emulator.url}
    for args in (["ledger", "import", str(ledger)],
                 ["round", "open", "--week", "2026-W48", "--seed", "bench", "--channel", "twilio-voice"]):
        subprocess.run([str(BIN), *args], cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL)
    processes = []

    def start(name: str, *args: str) -> None:
        log = (folder / f"{name}.log").open("wb")
        processes.append(subprocess.Popen([str(BIN), *args], cwd=folder, env=env, stdout=log, stderr=log,
                                          start_new_session=True))

    try:
        start("serve", "serve", "--port", str(port))
        wait_for(f"http://127.0.0.1:{port}/healthz")
        for n in range(2):
            start(f"worker{n}", "worker", "--pool", "threads", "--concurrency", "8", "-n", f"bench{n}@%h",
                  "--loglevel", "WARNING")
        time.sleep(4)  # workers connect before the clock starts
        database = Database(database_url)
        with database.session() as session:
            total = session.scalar(select(func.count()).select_from(Callback)) or 0
        started = time.perf_counter()
        start("beat", "beat", "--schedule", str(folder / "beat-state"), "--loglevel", "INFO")
        while True:
            with database.session() as session:
                final = session.scalar(select(func.count()).select_from(Callback).where(Callback.status.in_(FINAL)))
            if final == total:
                break
            if time.perf_counter() - started > 900:
                sys.exit(f"gave up after 900 s with {final} of {total} callbacks final; see {folder}")
            time.sleep(0.2)
        with database.session() as session:
            attempts = session.scalar(select(func.count()).select_from(Attempt))
            completed = session.scalar(select(func.count()).select_from(Callback)
                                       .where(Callback.status == "completed"))
            per_contact = session.execute(
                select(Contact.callback_id, func.count(Answer.id), func.count(func.distinct(Answer.question)))
                .join(Answer, Answer.contact_id == Contact.id).group_by(Contact.callback_id)
            ).all()
        database.dispose()
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        emulator.stop()
    created = sorted(call.created_at for call in emulator.calls)
    span = created[-1] - created[0] if len(created) > 1 else 0.0
    return {"callbacks": total, "attempts": attempts, "calls": len(created), "completed": completed,
            "placed_rate": (len(created) - 1) / span if span else 0.0,
            "answered_once": sum(1 for _, answers, questions in per_contact if answers == questions == 6),
            "contacts": len(per_contact), "failures": emulator.failures}


def main_twilio(args: argparse.Namespace, folder: Path) -> None:
    callbacks = args.callbacks if args.callbacks_given else int(args.rate * 40)  # about 40 s at the rate
    ledger = folder / "ledger.csv"
    write_ledger(ledger, callbacks)
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; database {args.database}; twilio-voice through the "
          f"twilio library to the emulator ({args.api_delay * 1000:.0f} ms an API request); account rate "
          f"{args.rate:g} calls/s; 2 worker processes on 8 threads each; webhooks through `callbackd serve`")
    with redis_server(folder) as broker:
        pg = postgres_server(folder) if args.database == "postgresql" else None
        server = pg.__enter__() if pg else None
        try:
            url = fresh_database(args.database, server, folder, "bench_twilio")
            result = run_twilio(folder / "run-twilio", url, broker, args.rate, args.api_delay, ledger)
        finally:
            if pg:
                pg.__exit__(None, None, None)
    placed = result["placed_rate"]
    print(f"{result['calls']} calls placed for {result['attempts']} attempts of {result['callbacks']} callbacks: "
          f"{placed:.1f} calls/s against the rate {args.rate:g}/s = {placed / args.rate:.2f} of it (target >= 0.95); "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"completed callbacks {result['completed']}; contacts with their six answers recorded once "
          f"{result['answered_once']} of {result['contacts']}; emulator failures {len(result['failures'])}"
          + (f" (first: {result['failures'][0]})" if result["failures"] else ""))


def beat_first_tick(log: Path) -> datetime:
    """When beat sent its first tick, from its log line `[2026-11-23 10:00:01,234: INFO/MainProcess] Scheduler:
    Sending due task tick (callbackd.tick)`."""
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "Sending due task tick" in line:
            return datetime.strptime(line[1:line.index(": ")], "%Y-%m-%d %H:%M:%S,%f")
    sys.exit(f"beat never sent a tick; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callbacks", type=int, default=None, help="default 4000 (twilio: 40 seconds at the rate)")
    parser.add_argument("--channel", choices=("simulator", "twilio"), default="simulator")
    parser.add_argument("--api-delay", type=float, default=0.2, help="twilio: seconds the emulator takes per request")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--rate", type=float, default=None,
                        help="provider rate a second (simulator: the limiter run, default 20; twilio: default 30)")
    parser.add_argument("--pool", choices=(*POOLS, "both"), default="both",
                        help="how each worker process places: solo (one at a time), threads (four at once), or both "
                             "measured one after the other")
    args = parser.parse_args()
    args.callbacks_given = args.callbacks is not None
    args.callbacks = args.callbacks or 4000
    args.rate = args.rate or (30.0 if args.channel == "twilio" else 20.0)
    if args.channel == "twilio":
        folder = Path(tempfile.mkdtemp(prefix="callbackd-bench-twilio-"))
        folder.chmod(0o755)  # the PostgreSQL server runs as its own user
        try:
            main_twilio(args, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    pools = list(POOLS) if args.pool == "both" else [args.pool]
    folder = Path(tempfile.mkdtemp(prefix="callbackd-bench-dispatch-"))
    folder.chmod(0o755)  # the PostgreSQL server runs as its own user
    ledger = folder / "ledger.csv"
    write_ledger(ledger, args.callbacks)
    print(f"{os.cpu_count()} cores; database {args.database}; simulator, every applicant answers all 6 questions")
    try:
        with redis_server(folder) as broker:
            pg = postgres_server(folder) if args.database == "postgresql" else None
            server = pg.__enter__() if pg else None
            try:
                runs = 0  # each run on its own Redis databases, the limiter's run on the last ones
                for name in pools:
                    for workers in (1, 2):
                        url = fresh_database(args.database, server, folder, f"bench_{name}_{workers}")
                        result = run(folder / f"run-{name}-{workers}", url, broker, workers, None, ledger,
                                     redis_db=2 * runs, pool=POOLS[name])
                        runs += 1
                        attempts, elapsed, first_tick = result["attempts"], result["elapsed"], result["first_tick"]
                        end_to_end = elapsed - first_tick
                        print(f"{workers} worker process(es), {' '.join(POOLS[name])}: {attempts} attempts in "
                              f"{end_to_end:.1f} s end to end = {attempts / end_to_end:.0f} attempts/s "
                              f"(target >= 500); beat took {first_tick:.1f} s to start before its first tick "
                              f"({attempts / elapsed:.0f}/s counting that); "
                              f"{attempts / max(result['placing'], 1e-9):.0f}/s first to last outcome")
                limited = min(args.callbacks, int(args.rate * 20))
                url = fresh_database(args.database, server, folder, "bench_rate")
                small = folder / "ledger-rate.csv"
                write_ledger(small, limited)
                result = run(folder / "run-rate", url, broker, 2, args.rate, small, redis_db=2 * runs,
                             pool=POOLS[pools[0]])
                ended = result["ended"]
                window = 10.0
                within = sum(1 for t in ended if (t - ended[0]).total_seconds() < window)
                achieved = within / window
                print(f"provider rate {args.rate:g}/s shared by 2 workers through Redis: achieved {achieved:.1f}/s "
                      f"over the first {window:.0f} s ({achieved / args.rate:.1%} of the setting)")
            finally:
                if pg:
                    pg.__exit__(None, None, None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
