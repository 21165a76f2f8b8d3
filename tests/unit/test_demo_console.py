"""The demo ends by saying how to open the console on its data: the command that serves its database, and a sign-in
for every role that works on that database (and nowhere else)."""

from __future__ import annotations

import re
import shlex

from callbackd.app.demo import DEMO_ACCOUNTS
from callbackd.store.accounts import check_password, list_users
from callbackd.store.db import Database
from tests.unit.conftest import ConsoleClient

NOW = "2026-11-23T10:00:00+08:00"


def test_the_demo_prints_the_console_command_and_a_sign_in_for_every_role(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    run = cli("demo", "--out", "d")
    assert run.code == 0, run.err
    line = next(line for line in run.out.splitlines() if line.startswith("the console on the demo's data: "))
    words = shlex.split(line.split(": ", 1)[1])
    env = dict(word.split("=", 1) for word in words if "=" in word and word.startswith("CALLBACKD_"))
    assert words[-1] == "serve" and words[-2].endswith("callbackd")
    assert env["CALLBACKD_DATABASE_URL"] == f"sqlite:///{(workdir / 'd' / 'callbackd.db').resolve()}"
    assert len(env["CALLBACKD_SECRET_KEY"]) >= 32
    shown = {m.group(1): m.group(2) for m in re.finditer(r"│ (\w+)\s+│.*│ ([\w-]{16}) │", run.out)}
    assert set(shown) == set(DEMO_ACCOUNTS)

    database = Database(env["CALLBACKD_DATABASE_URL"])
    try:
        with database.session() as session:
            roles = {u["name"]: (u["role"], u["windows"]) for u in list_users(session)}
            for name, password in shown.items():
                assert check_password(session, name, password) is not None, name
                assert check_password(session, name, password + "x") is None, name
    finally:
        database.dispose()
    assert {name: role for name, (role, _) in roles.items()} == DEMO_ACCOUNTS
    assert len(roles["window"][1]) == 1 and roles["window"][1][0] in run.out
    assert len(set(shown.values())) == len(shown)  # a password of its own for each

    # the printed line serves the demo's data: the supervisor signs in and sees the month's ranking
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from callbackd.app.web import create_app

    client = ConsoleClient(create_app())
    assert client.sign_in("supervisor", shown["supervisor"]).status_code == 303
    page = client.get("/rankings/2026-10")
    assert page.status_code == 200 and roles["window"][1][0] in page.text


def test_the_demo_json_names_the_console_command_and_accounts(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    run = cli("demo", "--out", "d", "--json")
    assert run.code == 0, run.err
    console = run.json()["console"]
    assert "CALLBACKD_DATABASE_URL=sqlite:///" in console["command"] and console["command"].endswith(" serve")
    accounts = {a["name"]: a for a in console["accounts"]}
    assert {name: a["role"] for name, a in accounts.items()} == DEMO_ACCOUNTS
    database = Database(f"sqlite:///{workdir / 'd' / 'callbackd.db'}")
    try:
        with database.session() as session:
            for account in accounts.values():
                assert check_password(session, account["name"], account["password"]) is not None
    finally:
        database.dispose()
