"""Shared fixtures: every test runs in its own folder with its own database (SQLite, or PostgreSQL) and a clean
environment."""

from __future__ import annotations

import csv
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from callbackd.app.cli import main
from callbackd.app.synthetic import HEADER
from callbackd.core.settings import Settings, load_settings
from callbackd.store.db import Database

# `scripts/test` runs the suite twice: on SQLite, then with CALLBACKD_TEST_POSTGRES naming a loopback PostgreSQL
# server, where every test gets a database of its own.
POSTGRES = os.environ.get("CALLBACKD_TEST_POSTGRES", "")


@pytest.fixture(scope="session")
def migrated_template() -> Iterator[str | None]:
    """On PostgreSQL, a database migrated to the head once for the session: each test's database is a copy of it
    (CREATE DATABASE ... TEMPLATE), so the migrations run once rather than once a test. None on SQLite."""
    if not POSTGRES:
        yield None
        return
    name = f"t_template_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    template = Database(make_url(POSTGRES).set(database=name).render_as_string(False))
    template.ensure_schema()
    template.dispose()  # a template must have no connection when it is copied
    try:
        yield name
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(autouse=True)
def workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, migrated_template: str | None,
) -> Iterator[Path]:
    """Run in a fresh folder with a fresh database, with no CALLBACKD_* setting inherited from the caller. On
    PostgreSQL the database starts migrated (a copy of `migrated_template`), except for a test marked
    `empty_database`, which gets one without even a schema (what `callbackd init` creates from nothing). A test
    module marked `no_database` (pure logic, documents, plugins speaking HTTP) gets none: creating and dropping a
    PostgreSQL database it never opens costs the PostgreSQL pass a quarter of a second a test."""
    for name in list(os.environ):
        if name.startswith("CALLBACKD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    if not POSTGRES or request.node.get_closest_marker("no_database"):
        yield tmp_path
        return
    name = f"t_{uuid.uuid4().hex[:16]}"
    copied = "" if request.node.get_closest_marker("empty_database") else f' TEMPLATE "{migrated_template}"'
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"{copied}')
    monkeypatch.setenv("CALLBACKD_DATABASE_URL", make_url(POSTGRES).set(database=name).render_as_string(False))
    try:
        yield tmp_path
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `callbackd ARGS...` in this process and return its exit code and output."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = Database(settings.database_url)
    db.ensure_schema()
    yield db
    db.dispose()


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    with database.session() as s:
        yield s


def case_row(
    case_id: str,
    window: str = "社保窗口",
    *,
    matter: str = "社保卡补办",
    case_type: str = "即办件",
    applicant: str = "张三",
    phone: str = "13800138000",
    accepted: str = "2026-11-03 09:05:00",
    resolved: str = "2026-11-03 10:00:00",
    status: str = "已办结",
) -> list[str]:
    """One ledger row under the standard header."""
    return [case_id, window, matter, case_type, applicant, phone, accepted, resolved, status]


def write_csv(path: Path, rows: list[list[Any]], *, encoding: str = "utf-8", header: list[str] | None = None) -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header or HEADER)
        writer.writerows(rows)
    return path


def phone_for(n: int) -> str:
    """A distinct valid mobile number per n."""
    return f"139{n:08d}"
