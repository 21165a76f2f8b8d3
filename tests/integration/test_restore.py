"""Backup and restore, as the README's production section tells an operator to do them: `pg_dump -Fc` of a live
database with a round opened and answers recorded, a fresh PostgreSQL server (initdb, another loopback port),
`createdb` and `pg_restore` into it; then `callbackd init` and `callbackd round verify` accept the restored
database and its scores equal the original's. Runs in the PostgreSQL pass of scripts/test.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from callbackd.core.settings import load_settings
from callbackd.store.db import Database
from callbackd.store.models import Answer, AuditEvent, Round
from tests.conftest import POSTGRES, case_row, phone_for, write_csv

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not POSTGRES, reason="the restore test needs PostgreSQL: it runs in the PostgreSQL pass of "
                                            "scripts/test (CALLBACKD_TEST_POSTGRES)"),
]

MONDAY = "2026-11-23T10:00:00+08:00"


def pg_bin() -> Path:
    """The newest PostgreSQL's binaries, as scripts/test finds them: the suite's server runs on these."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", str(p))])
    if not found:
        pytest.fail("PostgreSQL is missing: scripts/test installs it (or: apt-get install postgresql)")
    return found[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def libpq(url: str) -> str:
    """The SQLAlchemy URL as the PostgreSQL tools take it (postgresql://user@host:port/database)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def fresh_server() -> Iterator[tuple[Path, int]]:
    """A new PostgreSQL server on another loopback port, as a machine the backup is restored on: (bin, port)."""
    binaries = pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="callbackd-restore-"))
    prefix: list[str] = []
    if os.getuid() == 0:  # the server refuses to run as root
        shutil.chown(folder, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    subprocess.run([*prefix, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-o",
                    f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} -c fsync=off",
                    "start"], check=True, capture_output=True)
    try:
        yield binaries, port
    finally:
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def ok(run: Any) -> Any:
    assert run.code == 0, run.err
    return run


def scores(cli: Any) -> dict[str, Any]:
    return {period: ok(cli("score", "--period", period, "--json")).json() for period in ("2026-W48", "2026-11")}


def test_a_pg_dump_restored_into_a_fresh_server_verifies_and_scores_the_same(cli, workdir, monkeypatch,
                                                                              fresh_server):
    monkeypatch.setenv("CALLBACKD_NOW", MONDAY)
    rows = [case_row(f"R{w:02d}{i:03d}", f"第{w + 1:02d}号窗口", phone=phone_for(w * 100 + i),
                     accepted=f"2026-11-{2 + i % 18:02d} 09:00:00", resolved=f"2026-11-{2 + i % 18:02d} 11:00:00")
            for w in range(6) for i in range(25)]
    ok(cli("ledger", "import", write_csv(workdir / "ledger.csv", rows)))
    round_id = int(ok(cli("round", "open", "--week", "2026-W48", "--seed", "restore", "--json")).json()["round"])
    ok(cli("dispatch", "--once"))  # the simulator answers: answers, tallies, rectifications, audit entries
    source = load_settings().database_url
    database = Database(source)
    with database.session() as session:
        answers = session.scalar(select(func.count()).select_from(Answer))
        audit = session.scalar(select(func.count()).select_from(AuditEvent))
    database.dispose()
    assert answers and answers > 100
    before = scores(cli)
    assert any(window["contacts"] for window in before["2026-11"]["windows"])

    # the backup: a custom-format dump, readable by its owner only (it holds applicants' names and numbers)
    binaries, port = fresh_server
    dump = workdir / "callbackd.dump"
    subprocess.run([str(binaries / "pg_dump"), "--format=custom", f"--file={dump}", f"--dbname={libpq(source)}"],
                   check=True, capture_output=True, preexec_fn=lambda: os.umask(0o077))
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600

    # the restore, on the fresh server
    # with a password, as production URLs have (the test server trusts loopback and ignores it)
    target = f"postgresql+psycopg://postgres:restore-secret@127.0.0.1:{port}/callbackd"
    server = ["--host=127.0.0.1", f"--port={port}", "--username=postgres"]
    subprocess.run([str(binaries / "createdb"), *server, "callbackd"], check=True, capture_output=True)
    restored = subprocess.run([str(binaries / "pg_restore"), *server, "--dbname=callbackd", "--no-owner",
                               "--exit-on-error", str(dump)], capture_output=True, text=True)
    assert restored.returncode == 0, restored.stderr

    monkeypatch.setenv("CALLBACKD_DATABASE_URL", target)
    initialised = ok(cli("init")).out  # what an upgrade runs: the restored schema is current, nothing to do
    assert "already current" in initialised and "restore-secret" not in initialised
    verified = ok(cli("round", "verify", str(round_id), "--json")).json()
    assert verified == {"round": round_id, "ok": True, "problems": []}
    assert scores(cli) == before
    copy = Database(target)
    with copy.session() as session:
        assert session.scalar(select(func.count()).select_from(Answer)) == answers
        assert session.scalar(select(func.count()).select_from(AuditEvent)) >= audit  # init and verify may add
        # and verify reads what was restored: with another seed recorded, the same candidates draw otherwise
        session.execute(update(Round).where(Round.id == round_id).values(seed="not the recorded seed"))
    copy.dispose()
    tampered = cli("round", "verify", str(round_id))
    assert tampered.code == 1 and "does not verify" in tampered.err
