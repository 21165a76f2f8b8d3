"""`callbackd users`: console accounts with roles, argon2 hashes, passwords only on standard input, every change
audited, accounts disabled and never deleted."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from callbackd.core.settings import load_settings
from callbackd.store import accounts
from callbackd.store.db import Database
from callbackd.store.models import User
from tests.conftest import case_row, write_csv

GOOD = "correct horse battery"


@pytest.fixture
def stdin(monkeypatch):
    """Feed a command's standard input."""

    def feed(text: str) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(text))

    return feed


def stored(name: str) -> User | None:
    database = Database(load_settings().database_url)
    with database.session() as s:
        user = s.scalar(select(User).where(User.name == name))
        if user is not None:
            s.expunge(user)
    database.dispose()
    return user


def check(name: str, password: str) -> bool:
    database = Database(load_settings().database_url)
    with database.session() as s:
        found = accounts.check_password(s, name, password) is not None
    database.dispose()
    return found


def test_an_account_is_created_with_an_argon2_hash_and_signs_in_with_its_password_only(cli, workdir, stdin):
    stdin(GOOD + "\n")
    run = cli("users", "add", "zhang", "--role", "supervisor", "--password-stdin")
    assert run.code == 0, run.err
    user = stored("zhang")
    assert user is not None and user.role == "supervisor" and not user.disabled
    assert user.password_hash.startswith("$argon2id$") and GOOD not in user.password_hash
    assert check("zhang", GOOD)
    assert not check("zhang", GOOD + "!")
    assert not check("nobody", GOOD)


def test_a_window_head_answers_for_named_windows_that_exist(cli, workdir, stdin):
    assert cli("ledger", "import", write_csv(workdir / "l.csv", [case_row("A1", "社保窗口")])).code == 0
    stdin(GOOD)
    missing = cli("users", "add", "li", "--role", "window", "--window", "不动产窗口", "--password-stdin")
    assert missing.code == 1 and "不动产窗口" in missing.err and stored("li") is None
    stdin(GOOD)
    without = cli("users", "add", "li", "--role", "window", "--password-stdin")
    assert without.code == 1 and "--window" in without.err
    stdin(GOOD)
    assert cli("users", "add", "li", "--role", "window", "--window", "社保窗口", "--password-stdin").code == 0
    (listed,) = cli("users", "list", "--json").json()
    assert listed["name"] == "li" and listed["role"] == "window" and listed["windows"] == ["社保窗口"]
    assert "password_hash" not in listed and GOOD not in cli("users", "list").out


@pytest.mark.parametrize(("args", "password", "message"), [
    (["--role", "boss"], GOOD, "unknown role"),
    (["--role", "leader"], "short", "at least 10"),
    (["--role", "leader"], "wang-is-my-password", "account's name"),
    (["--role", "leader", "--window", "社保窗口"], GOOD, "only a window head"),
])
def test_a_bad_account_is_refused_in_one_line_and_nothing_is_written(cli, workdir, stdin, args, password, message):
    stdin(password)
    run = cli("users", "add", "wang", *args, "--password-stdin")
    assert run.code == 1 and message in run.err and len(run.err.strip().splitlines()) == 1
    assert stored("wang") is None


def test_a_password_is_never_an_argument_and_a_name_is_taken_once(cli, workdir, stdin):
    run = cli("users", "add", "zhao", "--role", "leader")
    assert run.code == 1 and "--password-stdin" in run.err
    stdin(GOOD)
    assert cli("users", "add", "zhao", "--role", "leader", "--password-stdin").code == 0
    stdin(GOOD)
    again = cli("users", "add", "zhao", "--role", "admin", "--password-stdin")
    assert again.code == 1 and "exists" in again.err and stored("zhao").role == "leader"


def test_a_disabled_account_cannot_sign_in_until_its_password_is_reset(cli, workdir, stdin):
    stdin(GOOD)
    assert cli("users", "add", "qian", "--role", "operator", "--password-stdin").code == 0
    assert cli("users", "disable", "qian").code == 0
    assert stored("qian").disabled and not check("qian", GOOD)
    assert "停用" in cli("users", "list").out
    stdin("another long password\n")
    assert cli("users", "password", "qian", "--password-stdin").code == 0
    assert check("qian", "another long password") and not check("qian", GOOD)
    unknown = cli("users", "disable", "sun")
    assert unknown.code == 1 and "no account named 'sun'" in unknown.err


def test_every_change_to_an_account_is_audited_without_its_password(cli, workdir, stdin):
    stdin(GOOD)
    cli("users", "add", "zhou", "--role", "leader", "--password-stdin")
    cli("users", "disable", "zhou")
    stdin("a different password")
    cli("users", "password", "zhou", "--password-stdin")
    trail = cli("audit", "list", "--json").json()
    changes = sorted((e["action"], e["subject"]) for e in trail if e["action"].startswith("user."))
    assert changes == [("user.add", "zhou"), ("user.disable", "zhou"), ("user.password", "zhou")]
    assert GOOD not in str(trail) and "a different password" not in str(trail)
