#!/usr/bin/env python3
"""Benchmark: `callbackd score --period 2026` on 10,000,000 answers over 2,000 windows, against a hand-written
SQL GROUP BY computing the same per-window figures on the same database.

    .venv/bin/python scripts/bench/score.py [--answers N] [--windows W] [--keep DIR]

Prints both times and the ratio (target: within 1.5x), and checks that both give the same figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from callbackd.store.db import Database

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


def build(path: Path, answers: int, windows: int, seed: int = 7) -> int:
    """Create the schema with callbackd, then fill it quickly with the sqlite3 module."""
    database = Database(f"sqlite:///{path}")
    database.ensure_schema()
    database.dispose()
    rng = random.Random(seed)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    created = stamp(datetime(2026, 1, 1, tzinfo=UTC))
    connection.executemany("INSERT INTO windows (id, name, created_at) VALUES (?, ?, ?)",
                           [(i, f"窗口{i:04d}", created) for i in range(1, windows + 1)])
    start = datetime(2025, 12, 31, 16, 0, tzinfo=UTC)  # 2026-01-01 00:00 in Shanghai
    seconds = 365 * 24 * 3600
    written = contact_id = 0
    batch_contacts: list[tuple] = []
    batch_answers: list[tuple] = []
    while written < answers:
        contact_id += 1
        source = rng.choices(("callback", "onsite", "evaluator"), (0.7, 0.2, 0.1))[0]
        window_id = rng.randrange(1, windows + 1)
        moment = stamp(start + timedelta(seconds=rng.randrange(seconds)))
        batch_contacts.append((contact_id, source, source, window_id, None, moment, 0, "", "", None, moment))
        keys = ("overall",) if source == "evaluator" else QUESTIONS
        for key in keys:
            if written >= answers:
                break
            level = rng.choices(LEVELS, (0.85, 0.11, 0.04))[0]
            batch_answers.append((contact_id, key, level, level, window_id, source, moment, moment))
            written += 1
        if len(batch_answers) >= 200_000:
            _flush(connection, batch_contacts, batch_answers)
    _flush(connection, batch_contacts, batch_answers)
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()
    return contact_id


def _flush(connection: sqlite3.Connection, contacts: list[tuple], answers: list[tuple]) -> None:
    connection.executemany(
        "INSERT INTO contacts (id, source, channel, window_id, callback_id, contacted_at, simulated, "
        "survey_version, suggestion, external_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", contacts)
    connection.executemany(
        "INSERT INTO answers (contact_id, question, level, raw, window_id, source, contacted_at, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", answers)
    contacts.clear()
    answers.clear()


def reference(path: Path) -> tuple[float, dict[tuple[int, str], tuple]]:
    connection = sqlite3.connect(path)
    began = time.perf_counter()
    rows = connection.execute(REFERENCE, (stamp(datetime(2025, 12, 31, 16, tzinfo=UTC)),
                                          stamp(datetime(2026, 12, 31, 16, tzinfo=UTC)))).fetchall()
    elapsed = time.perf_counter() - began
    connection.close()
    return elapsed, {(r[0], r[1]): r[2:] for r in rows}


def callbackd_score(path: Path, workdir: Path) -> tuple[float, dict]:
    command = [str(Path(sys.executable).parent / "callbackd"), "score", "--period", "2026", "--json"]
    env = {**os.environ, "CALLBACKD_DATABASE_URL": f"sqlite:///{path}"}
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir, check=False)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"callbackd score failed: {done.stderr.strip()}")
    return elapsed, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=10_000_000)
    parser.add_argument("--windows", type=int, default=2_000)
    parser.add_argument("--keep", type=Path, help="keep the database in this folder")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="callbackd-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "score.db"
    try:
        if not path.exists():
            began = time.perf_counter()
            contacts = build(path, args.answers, args.windows)
            print(f"built {args.answers:,} answers ({contacts:,} contacts) over {args.windows:,} windows "
                  f"in {time.perf_counter() - began:.1f} s")
        # warm the page cache for both contenders alike
        reference(path)
        ref_time, ref_rows = reference(path)
        ours_time, ours = callbackd_score(path, folder)
        ours_again, _ = callbackd_score(path, folder)
        ours_time = min(ours_time, ours_again)

        by_name = {f"窗口{window_id:04d}": window_id for window_id in range(1, args.windows + 1)}
        mismatches = 0
        for window in ours["windows"]:
            for source, value in window["by_source"].items():
                expected = ref_rows.get((by_name[window["window"]], source))
                if (expected is None) != (value is None) or (
                    expected is not None and abs(round(expected[1], 2) - value) > 0.005
                ):
                    mismatches += 1
        print(f"reference SQL GROUP BY:       {ref_time:7.2f} s")
        print(f"callbackd score --period 2026: {ours_time:7.2f} s (whole command, start-up included)")
        print(f"ratio: {ours_time / ref_time:.2f}x (target <= 1.5x); "
              f"{len(ours['windows'])} windows, {mismatches} figures differing from the reference")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
