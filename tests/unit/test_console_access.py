"""The console's doors: signing in and out, sessions that end, the lockout, CSRF, headers, and what each role may open
(every role against the dashboard, rankings, downloads and window pages; a window head against another window)."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from callbackd.store.accounts import set_password
from callbackd.store.models import AuditEvent, User, Window
from tests.unit.conftest import PASSWORD, ConsoleClient

KEY = "a test key that is long enough to sign sessions"
ROLES = ("sup", "op", "win", "lead", "adm")
# path -> the accounts that may open it (the others get 403)
PAGES = {
    "/": set(ROLES),
    "/rankings/2026-11": {"sup", "lead", "win"},
    "/rankings/2026-11/download?format=csv": {"sup", "lead"},
}


def events(database, action):
    with database.session() as session:
        return list(session.execute(select(AuditEvent.actor, AuditEvent.subject).where(AuditEvent.action == action)))


def test_a_page_sends_the_signed_out_browser_to_the_login_form_and_back(console):
    client = console(None)
    response = client.get("/rankings/2026-11")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Frankings%2F2026-11"
    form = client.get("/login?next=/rankings/2026-11")
    assert 'name="username"' in form.text and 'name="password"' in form.text
    signed = client.post("/login", {"username": "sup", "password": PASSWORD, "next": "/rankings/2026-11"})
    assert signed.status_code == 303 and signed.headers["location"] == "/rankings/2026-11"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert client.get("/rankings/2026-11").status_code == 200


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_signing_in_never_sends_the_browser_to_another_site(console, target):
    client = console(None)
    client.get("/login")
    signed = client.post("/login", {"username": "sup", "password": PASSWORD, "next": target})
    assert signed.status_code == 303 and signed.headers["location"] == "/"


def test_a_wrong_password_is_refused_and_audited_without_the_password(console, database):
    client = console(None)
    client.get("/login")
    refused = client.post("/login", {"username": "sup", "password": "not the password"})
    assert refused.status_code == 401 and "用户名或密码错误" in refused.text
    assert "set-cookie" not in refused.headers or "callbackd_session=." in refused.headers.get("set-cookie", "")
    assert client.get("/").status_code == 303  # still signed out
    failed = events(database, "login.failed")
    assert failed == [("console:sup", "sup")]
    with database.session() as session:
        assert not any("not the password" in str(e.detail) for e in session.scalars(select(AuditEvent)))


def test_five_wrong_passwords_lock_the_name_for_fifteen_minutes(console, database):
    client = console(None)
    client.get("/login")
    for _ in range(5):
        assert client.post("/login", {"username": "lead", "password": "wrong password"}).status_code == 401
    locked = client.post("/login", {"username": "lead", "password": PASSWORD})
    assert locked.status_code == 429 and "锁定" in locked.text
    assert client.get("/").status_code == 303
    assert console("sup").get("/").status_code == 200  # another name is not locked
    # fifteen minutes on, the name signs in again
    with database.session() as session:
        for event in session.scalars(select(AuditEvent).where(AuditEvent.subject == "lead")):
            event.at = event.at.replace(year=event.at.year - 1)
    assert client.post("/login", {"username": "lead", "password": PASSWORD}).status_code == 303


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(console, database):
    client = console("sup")
    assert client.post("/logout", csrf=False).status_code == 403
    assert client.post("/logout", {"csrf_token": "forged"}, csrf=False).status_code == 403
    assert client.get("/").status_code == 200  # still signed in
    assert events(database, "logout") == []
    login = console(None)
    login.get("/login")
    assert login.post("/login", {"username": "sup", "password": PASSWORD, "csrf_token": "x"},
                      csrf=False).status_code == 403


def test_signing_out_ends_the_session_and_is_audited(console, database):
    client = console("win")
    assert client.post("/logout").status_code == 303
    assert client.get("/").status_code == 303
    assert events(database, "logout") == [("console:win", "win")]
    assert events(database, "login")[-1] == ("console:win", "win")


def forged_cookie(data, *, signed_ago=0.0):
    serializer = URLSafeTimedSerializer(KEY, salt="callbackd.console.session")
    signer = serializer.make_signer()
    signer.get_timestamp = lambda: int(time.time() - signed_ago)  # itsdangerous's clock, not callbackd's
    return signer.sign(serializer.dump_payload(data)).decode()


def session_data(client: ConsoleClient):
    serializer = URLSafeTimedSerializer(KEY, salt="callbackd.console.session")
    return serializer.loads(client.http.cookies["callbackd_session"])


def test_a_session_ends_after_thirty_idle_minutes_or_twelve_hours(console):
    client = console("sup")
    data = session_data(client)
    client.http.cookies.set("callbackd_session", forged_cookie(data, signed_ago=29 * 60))
    assert client.get("/").status_code == 200
    client.http.cookies.set("callbackd_session", forged_cookie(data, signed_ago=31 * 60))
    assert client.get("/").status_code == 303
    client.http.cookies.set("callbackd_session", forged_cookie({**data, "i": time.time() - 12 * 3600 - 5}))
    assert client.get("/").status_code == 303
    client.http.cookies.set("callbackd_session", forged_cookie({**data, "i": time.time() - 11 * 3600}))
    assert client.get("/").status_code == 200


def test_a_session_signed_with_another_key_is_nobody(console):
    client = console("sup")
    data = session_data(client)
    other = URLSafeTimedSerializer("another key entirely, also long", salt="callbackd.console.session")
    client.http.cookies.set("callbackd_session", other.dumps(data))
    assert client.get("/").status_code == 303


def test_disabling_an_account_or_changing_its_password_ends_its_sessions(console, database):
    disabled, changed = console("lead"), console("op")
    with database.session() as session:
        session.scalar(select(User).where(User.name == "lead")).disabled = True
        set_password(session, "op", "another password 2026", datetime.now(UTC))
    assert disabled.get("/").status_code == 303
    assert changed.get("/").status_code == 303


def test_every_console_response_carries_the_security_headers(console):
    client = console("sup")
    for path in ("/", "/login", "/static/console.css", "/no-such-page"):
        response = client.get(path)
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/").headers["cache-control"] == "no-store"
    assert client.get("/no-such-page").status_code == 404


@pytest.mark.parametrize("name", ROLES)
def test_each_role_opens_only_its_pages(console, name):
    client = console(name)
    for path, allowed in PAGES.items():
        status = client.get(path).status_code
        assert status == (200 if name in allowed else 403), (name, path, status)


@pytest.mark.parametrize("name", ROLES)
def test_each_role_sees_only_its_menu(console, name):
    page = client_page = console(name).get("/").text
    menu = re.search(r'<nav aria-label="主菜单">(.*?)</nav>', page, re.S).group(1)
    links = set(re.findall(r'href="([^"]+)"', menu))
    expected = {
        "sup": {"/", "/rankings", "/rounds", "/operator", "/rectifications", "/imports", "/publications", "/audit",
                "/plans", "/reviews"},
        "op": {"/", "/operator", "/reviews"},
        "win": {"/", "/rankings", "/rectifications"},
        "lead": {"/", "/rankings", "/publications"},
        "adm": {"/", "/audit", "/plans"},
    }[name]
    assert links == expected, client_page[:200]


def test_a_window_head_sees_their_window_and_no_other(console, database):
    with database.session() as session:
        ids = {name: window_id for name, window_id in session.execute(select(Window.name, Window.id))}
    head = console("win")
    assert head.get(f"/windows/{ids['社保窗口']}").status_code == 200
    assert head.get(f"/windows/{ids['医保窗口']}").status_code == 404
    assert head.get("/windows/999999").status_code == 404  # the same answer for one that does not exist
    assert head.get("/windows/abc").status_code == 400
    assert console("sup").get(f"/windows/{ids['医保窗口']}").status_code == 200
    assert console("lead").get(f"/windows/{ids['医保窗口']}").status_code == 200
    assert console("op").get(f"/windows/{ids['医保窗口']}").status_code == 403
    assert console("adm").get(f"/windows/{ids['医保窗口']}").status_code == 403


def test_a_bad_period_or_download_format_is_a_clear_4xx(console):
    client = console("sup")
    bad = client.get("/rankings/2026-13")
    assert bad.status_code == 404 and "2026-W48" in bad.text
    assert client.get("/rankings/2026-11/download?format=exe").status_code == 404
    assert client.get("/rankings/2026-w48").headers["location"] == "/rankings/2026-W48"


def cells(row_html):
    found = re.findall(r"<td[^>]*>(.*?)</td>", row_html, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in found]


def test_the_ranking_page_shows_exactly_what_score_computes(cli, workdir, monkeypatch):
    """The demo's month on the page: every window's rank, score, grade, contacts and status as `score --json`."""
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    assert cli("demo", "--out", "d").code == 0
    monkeypatch.setenv("CALLBACKD_DATABASE_URL", f"sqlite:///{workdir / 'd' / 'callbackd.db'}")
    monkeypatch.setenv("CALLBACKD_SECRET_KEY", KEY)
    scored = cli("score", "--period", "2026-10", "--json").json()
    from callbackd.app.web import create_app
    from callbackd.core.settings import load_settings
    from callbackd.store.accounts import NewUser, add_user
    from callbackd.store.db import Database

    settings = load_settings()
    database = Database(settings.database_url)
    first, second = scored["windows"][0]["window"], scored["windows"][1]["window"]
    with database.session() as session:
        add_user(session, NewUser("sup", "supervisor", (), PASSWORD), datetime.now(UTC))
        add_user(session, NewUser("win", "window", (second,), PASSWORD), datetime.now(UTC))
    database.dispose()
    client = ConsoleClient(create_app(settings))
    assert client.sign_in("sup").status_code == 303
    page = client.get("/rankings/2026-10").text
    table = page.split("<h2>排名")[1].split("</table>")[0]
    rows = [cells(r) for r in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)]
    assert len(rows) == len(scored["windows"]) == 12
    for row, window in zip(rows, scored["windows"], strict=True):
        assert row[0] == (str(window["rank"]) if window["rank"] is not None else "—")
        assert row[1] == window["window"]
        assert row[2] == f"{window['score']:.2f}"
        assert row[3] == (window["grade"] or "—")
        assert row[4] == str(window["contacts"])
    assert "本期含模拟数据" in page
    csv_file = client.get("/rankings/2026-10/download?format=csv")
    assert csv_file.status_code == 200 and "attachment" in csv_file.headers["content-disposition"]
    assert scored["windows"][0]["window"] in csv_file.content.decode("utf-8-sig")
    dashboard = client.get("/")
    assert dashboard.status_code == 200 and "<svg" in dashboard.text

    head = ConsoleClient(create_app(settings))
    assert head.sign_in("win").status_code == 303
    own = head.get("/rankings/2026-10").text
    assert second in own and first not in own  # their own row only, with its rank as computed for all
    assert head.get("/rankings/2026-10/download?format=csv").status_code == 403
    assert first not in head.get("/").text


def test_the_shared_figures_follow_a_new_answer(cli, workdir, monkeypatch):
    """The ranking every viewer shares is computed again once an answer is recorded (not after a delay)."""
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    assert cli("demo", "--out", "d").code == 0
    monkeypatch.setenv("CALLBACKD_DATABASE_URL", f"sqlite:///{workdir / 'd' / 'callbackd.db'}")
    monkeypatch.setenv("CALLBACKD_SECRET_KEY", KEY)
    from callbackd.app.web import create_app
    from callbackd.core.settings import load_settings
    from callbackd.store.accounts import NewUser, add_user
    from callbackd.store.db import Database

    settings = load_settings()
    database = Database(settings.database_url)
    with database.session() as session:
        add_user(session, NewUser("sup", "supervisor", (), PASSWORD), datetime.now(UTC))
    client = ConsoleClient(create_app(settings))
    client.sign_in("sup")
    before = client.get("/rankings/2026-10").text
    window = cli("score", "--period", "2026-10", "--json").json()["windows"][-1]
    form = workdir / "form.csv"
    form.write_text("窗口,日期,服务态度,办事效率,按章办事,体外循环,廉洁自律,总体评价,意见建议\n"
                    + f"{window['window']},2026-10-20," + ",".join(["不满意"] * 6) + ",\n", encoding="utf-8")
    assert cli("results", "import", form, "--source", "onsite").code == 0
    after = client.get("/rankings/2026-10").text
    rescored = cli("score", "--period", "2026-10", "--json").json()["windows"]
    changed = next(w for w in rescored if w["window"] == window["window"])
    assert changed["contacts"] == window["contacts"] + 1
    assert before != after and f"{changed['score']:.2f}" in after
    database.dispose()


def test_guesses_sent_all_at_once_are_counted_in_turn(console):
    """Twenty wrong passwords in parallel: five are checked, the rest refused as locked."""
    import threading

    clients = [console(None) for _ in range(20)]
    for client in clients:
        client.get("/login")
    statuses: list[int] = []
    start = threading.Barrier(len(clients))

    def guess(client: ConsoleClient) -> None:
        start.wait()
        statuses.append(client.post("/login", {"username": "lead", "password": "a wrong guess"}).status_code)

    threads = [threading.Thread(target=guess, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [401] * 5 + [429] * 15


def test_a_form_over_the_size_limit_is_refused_before_it_is_read(console, database):
    client = console("sup")
    big = client.post("/logout", {"filler": "x" * 70_000})
    assert big.status_code == 413
    assert client.get("/").status_code == 200  # not signed out
    login = console(None)
    login.get("/login")
    assert login.post("/login", {"username": "sup", "password": "p" * 70_000}).status_code == 413
    files = login.http.post("/login", data={"csrf_token": login.token, "username": "sup"},
                            files={"password": ("p.txt", b"zhimakaimen2026")})
    assert files.status_code == 400
    assert events(database, "login.failed") == []
