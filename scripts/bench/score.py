#!/usr/bin/env python3
"""Benchmark: `callbackd score --period 2026` on 10,000,000 answers over 2,000 windows, from the score tallies
kept with the answers, against scoring the same year from the answers themselves.

    .venv/bin/python scripts/bench/score.py [--answers N] [--windows W] [--keep DIR] [--rebuild]
    .venv/bin/python scripts/bench/score.py --database-url postgresql+psycopg://... [--answers N] [--rebuild]

The answers are written with plain sqlite3 inserts (or PostgreSQL's COPY into the empty database named), so the
tallies are then rebuilt from them (timed; a kept database, or a PostgreSQL one that holds answers already, is
reused, and rebuilt only with --rebuild). Prints the time of `score_period` from the answers (raw) and
from the tallies, in this process, and of the whole `callbackd score --period 2026 --json` command (start-up
included; target <= 1 s), the ratio, and checks that the figures are identical: the command's document, the
in-process ranking from the tallies and the one from the answers (per-question counts too), and a hand-written SQL
GROUP BY for the per-source means. Exits 1 when any figure differs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from callbackd.core.settings import load_settings
from callbackd.measure import scoring
from callbackd.store import tallies
from callbackd.store.db import Database
from callbackd.store.models import Window

QUESTIONS = ("attitude", "efficiency", "rules", "off_book", "integrity", "overall")
LEVELS = ("满意", "基本满意", "不满意")
REFERENCE = """
SELECT window_id, source, COUNT(*), AVG(score), SUM(n1), SUM(n2), SUM(n3)
FROM (
    SELECT window_id, source, contact_id,
           AVG(CASE level WHEN '满意' THEN 100.0 WHEN '基本满意' THEN 80.0 WHEN '不满意' THEN 0.0 END) AS score,
           SUM(level = '满意') AS n1, SUM(level = '基本满意') AS n2, SUM(level = '不满意') AS n3
    FROM answers
    WHERE contacted_at >= ? AND contacted_at < ? AND level IS NOT NULL
    GROUP BY contact_id, window_id, source
)
GROUP BY window_id, source
"""


def stamp(moment: datetime) -> str:
    # how SQLAlchemy stores a UTC datetime in SQLite
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def synthetic(answers: int, windows: int, seed: int = 7) -> Iterator[tuple[list[tuple], list[tuple]]]:
    """Batches of (contacts, answers) rows, as plain values: a year of contacts from the three sources."""
    rng = random.Random(seed)
    start = datetime(2025, 12, 31, 16, 0, tzinfo=UTC)  # 2026-01-01 00:00 in Shanghai
    seconds = 365 * 24 * 3600
    written = contact_id = 0
    batch_contacts: list[tuple] = []
    batch_answers: list[tuple] = []
    while written < answers:
        contact_id += 1
        source = rng.choices(("callback", "onsite", "evaluator"), (0.7, 0.2, 0.1))[0]
        window_id = rng.randrange(1, windows + 1)
        moment = start + timedelta(seconds=rng.randrange(seconds))
        batch_contacts.append((contact_id, source, source, window_id, None, moment, False, "", "", None, moment))
        keys = ("overall",) if source == "evaluator" else QUESTIONS
        for key in keys:
            if written >= answers:
                break
            level = rng.choices(LEVELS, (0.85, 0.11, 0.04))[0]
            batch_answers.append((contact_id, key, level, level, window_id, source, moment, moment))
            written += 1
        if len(batch_answers) >= 200_000:
            yield batch_contacts, batch_answers
            batch_contacts, batch_answers = [], []
    yield batch_contacts, batch_answers


CONTACT_COLUMNS = ("id, source, channel, window_id, callback_id, contacted_at, simulated, survey_version, suggestion, "
                   "external_key, created_at")
ANSWER_COLUMNS = "contact_id, question, level, raw, window_id, source, contacted_at, recorded_at"


def build(url: str, answers: int, windows: int) -> int:
    """Create the schema with callbackd, then fill it quickly with the driver itself (sqlite3 inserts, or
    PostgreSQL's COPY); returns the contacts made."""
    database = Database(url)
    database.ensure_schema()
    database.dispose()
    created = datetime(2026, 1, 1, tzinfo=UTC)
    contacts = 0
    if url.startswith("sqlite"):
        connection = sqlite3.connect(make_url(url).database or "")
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.executemany("INSERT INTO windows (id, name, created_at) VALUES (?, ?, ?)",
                               [(i, f"窗口{i:04d}", stamp(created)) for i in range(1, windows + 1)])
        for made, given in synthetic(answers, windows):
            connection.executemany(
                f"INSERT INTO contacts ({CONTACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*row[:5], stamp(row[5]), int(row[6]), *row[7:10], stamp(row[10])) for row in made])
            connection.executemany(
                f"INSERT INTO answers ({ANSWER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*row[:6], stamp(row[6]), stamp(row[7])) for row in given])
            contacts += len(made)
        connection.commit()
        connection.execute("ANALYZE")
        connection.close()
        return contacts
    import psycopg

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
        with cursor.copy("COPY windows (id, name, created_at) FROM STDIN") as copy:
            for i in range(1, windows + 1):
                copy.write_row((i, f"窗口{i:04d}", created))
        for made, given in synthetic(answers, windows):
            with cursor.copy(f"COPY contacts ({CONTACT_COLUMNS}) FROM STDIN") as copy:
                for row in made:
                    copy.write_row(row)
            with cursor.copy(f"COPY answers ({ANSWER_COLUMNS}) FROM STDIN") as copy:
                for row in given:
                    copy.write_row(row)
            contacts += len(made)
        for table in ("windows", "contacts", "answers"):  # the ids COPY gave: sequences go on from them
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT coalesce(max(id), 1) FROM {table}))")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    return contacts


def has_answers(url: str) -> bool:
    database = Database(url)
    database.ensure_schema()
    with database.session() as session:
        found = session.execute(text("SELECT 1 FROM answers LIMIT 1")).first() is not None
    database.dispose()
    return found


def reference(url: str) -> tuple[float, dict[tuple[int, str], tuple]]:
    connection = sqlite3.connect(make_url(url).database or "")
    began = time.perf_counter()
    rows = connection.execute(REFERENCE, (stamp(datetime(2025, 12, 31, 16, tzinfo=UTC)),
                                          stamp(datetime(2026, 12, 31, 16, tzinfo=UTC)))).fetchall()
    elapsed = time.perf_counter() - began
    connection.close()
    return elapsed, {(r[0], r[1]): r[2:] for r in rows}


def rebuild(url: str) -> float:
    """Rebuild the tallies from the answers under the configured rules; its time."""
    database = Database(url)
    database.ensure_schema()
    began = time.perf_counter()
    with database.engine.begin() as connection:
        tallies.rebuild(connection, tallies.TallyRules.of(load_settings()))
    elapsed = time.perf_counter() - began
    database.dispose()
    return elapsed


def in_process(url: str, raw: bool) -> tuple[float, float, scoring.Ranking]:
    """`score_period` for 2026 from the answers (`raw`) or the tallies, and its per-question counts (what an export
    adds): their times (the best of two runs, the first warming the page cache) and the ranking."""
    settings = load_settings()
    database = Database(url)
    database.ensure_schema()
    best, best_questions, ranking = float("inf"), float("inf"), None
    for _ in range(2):
        with database.session() as session:
            if not raw and tallies.scores(session, tallies.TallyRules.of(settings), date(2026, 1, 1),
                                          date(2026, 1, 2)) is None:
                sys.exit("the tallies do not follow the configured rules: run with --rebuild")
            began = time.perf_counter()
            ranking = scoring.score_period(session, settings, "2026", raw=raw)
            best = min(best, time.perf_counter() - began)
            names = {window_id: name for window_id, name in session.execute(select(Window.id, Window.name))}
            began = time.perf_counter()
            ranking.questions = scoring.by_question(session, ranking.period, names, raw=raw)
            best_questions = min(best_questions, time.perf_counter() - began)
    database.dispose()
    assert ranking is not None
    return best, best_questions, ranking


def callbackd_score(url: str, workdir: Path) -> tuple[float, float, dict]:
    """The command's wall time, its CPU time (user and system: what the machine's other load does not inflate),
    and its document."""
    command = [str(Path(sys.executable).parent / "callbackd"), "score", "--period", "2026", "--json"]
    env = {**os.environ, "CALLBACKD_DATABASE_URL": url}
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir, check=False)
    elapsed = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"callbackd score failed: {done.stderr.strip()}")
    cpu = after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime
    return elapsed, cpu, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=10_000_000)
    parser.add_argument("--windows", type=int, default=2_000)
    parser.add_argument("--keep", type=Path, help="keep the database in this folder")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the tallies of a kept database")
    parser.add_argument("--database-url", help="an empty PostgreSQL database to fill (or one filled before)")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="callbackd-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = args.database_url or f"sqlite:///{folder / 'score.db'}"
    sqlite = url.startswith("sqlite")
    try:
        fresh = not (folder / "score.db").exists() if sqlite else not has_answers(url)
        if fresh:
            began = time.perf_counter()
            contacts = build(url, args.answers, args.windows)
            print(f"built {args.answers:,} answers ({contacts:,} contacts) over {args.windows:,} windows "
                  f"in {time.perf_counter() - began:.1f} s")
        else:
            began = time.perf_counter()
            Database(url).ensure_schema()  # a database from before the tallies: migrated, built
            print(f"kept database {url}: schema current in {time.perf_counter() - began:.1f} s")
        if fresh or args.rebuild:
            print(f"tallies rebuilt from the answers in {rebuild(url):.1f} s")

        raw_time, raw_questions, raw = in_process(url, raw=True)
        ref_time, ref_rows = reference(url) if sqlite else (0.0, {})
        kept_time, kept_questions, kept = in_process(url, raw=False)
        runs = [callbackd_score(url, folder) for _ in range(3)]
        command_time, command_cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        document = runs[0][2]

        differing = []
        if kept.as_dict() != raw.as_dict():
            differing.append("in-process ranking: tallies vs answers")
        if kept.questions != raw.questions:
            differing.append("per-question counts: tallies vs answers")
        if document != json.loads(json.dumps(raw.as_dict(), ensure_ascii=False)):
            differing.append("`callbackd score --json` vs the ranking from the answers")
        by_name = {f"窗口{window_id:04d}": window_id for window_id in range(1, args.windows + 1)}
        mismatches = 0
        for window in document["windows"] if sqlite else ():
            for source, value in window["by_source"].items():
                expected = ref_rows.get((by_name[window["window"]], source))
                # the reference's mean is a float sum: compare it unrounded, so that a mean lying exactly on a
                # rounding tie (96.875, summed to 96.87499999999999) is not counted against the exact figure
                if (expected is None) != (value is None) or (
                    expected is not None and abs(expected[1] - value) > 0.005 + 1e-9
                ):
                    mismatches += 1
        if mismatches:
            differing.append(f"{mismatches} per-source means vs the hand-written GROUP BY")
        print(f"database: {make_url(url).get_backend_name()}")
        if sqlite:
            print(f"hand-written SQL GROUP BY (answers):        {ref_time:7.3f} s")
        print(f"score_period 2026 from the answers (raw):   {raw_time:7.3f} s in process; per-question counts "
              f"{raw_questions:.3f} s more")
        print(f"score_period 2026 from the tallies:         {kept_time:7.3f} s in process; per-question counts "
              f"{kept_questions:.3f} s more")
        print(f"callbackd score --period 2026 --json:       {command_time:7.3f} s (whole command, start-up included; "
              f"target <= 1 s), {command_cpu:.3f} s of CPU; best of 3")
        print(f"load average {' '.join(f'{n:.2f}' for n in os.getloadavg())} on {os.cpu_count()} CPUs")
        print(f"ratio raw / tallies: {raw_time / kept_time:.0f}x in process; "
              f"{len(document['windows'])} windows; figures "
              + ("identical" if not differing else "DIFFERING: " + "; ".join(differing)))
        if differing:
            sys.exit(1)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
