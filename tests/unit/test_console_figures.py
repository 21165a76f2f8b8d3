"""The console's shared figures keep only what a request can still be shown: a figure of an older version of the
data, or older than `MAX_AGE`, is dropped when a new one is kept (a province's ranking is megabytes)."""

from __future__ import annotations

import threading

import pytest

from callbackd.app.web.console import figures
from callbackd.app.web.console.figures import Figures

pytestmark = pytest.mark.no_database


def test_a_figure_is_computed_once_per_version() -> None:
    kept = Figures()
    calls: list[str] = []
    value = kept.get("ranking", (1, 1), lambda: calls.append("a") or "a", figures.MAX_AGE)[0]
    again = kept.get("ranking", (1, 1), lambda: calls.append("b") or "b", figures.MAX_AGE)[0]
    moved = kept.get("ranking", (2, 1), lambda: calls.append("c") or "c", figures.MAX_AGE)[0]
    assert (value, again, moved, calls) == ("a", "a", "c", ["a", "c"])


def test_figures_of_an_older_version_are_dropped_when_a_newer_one_is_kept() -> None:
    kept = Figures()
    for period in ("2026-09", "2026-10", "2026-11"):
        kept.get(("ranking", period), (5, 3), lambda: bytearray(1000), figures.MAX_AGE)
    kept.get(("ranking", "2026-11"), (6, 3), lambda: bytearray(1000), figures.MAX_AGE)  # an answer recorded since
    assert list(kept.kept) == [("ranking", "2026-11")]
    assert kept.kept[("ranking", "2026-11")].version == (6, 3)
    assert set(kept._locks) == {("ranking", "2026-11")}


def test_a_request_reading_an_older_version_drops_nothing_newer() -> None:
    kept = Figures()
    kept.get("new", (7, 2), lambda: "new", figures.MAX_AGE)
    kept.get("late", (6, 2), lambda: "late", figures.MAX_AGE)  # a slow request that began before the answer
    assert set(kept.kept) == {"new", "late"}
    kept.get("newer", (7, 3), lambda: "newer", figures.MAX_AGE)
    assert set(kept.kept) == {"newer"}


def test_figures_older_than_max_age_are_dropped() -> None:
    kept = Figures()
    kept.get("old", (1, 1), lambda: "old", figures.MAX_AGE)
    kept.get("recent", (1, 1), lambda: "recent", figures.MAX_AGE)
    kept.kept["old"].at -= figures.MAX_AGE + 1  # computed more than a minute ago: never shown again
    kept.get("another", (1, 1), lambda: "another", figures.MAX_AGE)
    assert set(kept.kept) == {"recent", "another"}


def test_a_figure_being_computed_keeps_its_lock() -> None:
    kept = Figures()
    kept.get("busy", (1, 1), lambda: "stale", figures.MAX_AGE)
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "busy"

    worker = threading.Thread(target=kept.get, args=("busy", (1, 2), slow, figures.MAX_AGE))
    worker.start()
    started.wait(5)
    lock = kept._locks["busy"]
    kept.get("other", (1, 2), lambda: "other", figures.MAX_AGE)  # drops the stale "busy" figure, not its lock
    assert "busy" not in kept.kept and kept._locks["busy"] is lock
    release.set()
    worker.join(5)
    assert kept.kept["busy"].value == "busy"


def test_at_most_kept_figures() -> None:
    kept = Figures()
    for number in range(figures.KEPT + 10):
        kept.get(("ranking page", number), (1, 1), lambda: "page", figures.MAX_AGE)
    assert len(kept.kept) == figures.KEPT and ("ranking page", 0) not in kept.kept


def test_the_figure_being_replaced_is_not_held_while_its_successor_is_computed() -> None:
    kept = Figures()
    kept.get("ranking", (1, 1), lambda: "old", figures.MAX_AGE)
    kept.get("other", (1, 1), lambda: "other", figures.MAX_AGE)
    held: list[set[str]] = []

    def compute() -> str:
        held.append(set(kept.kept))
        return "new"

    assert kept.get("ranking", (2, 1), compute, figures.MAX_AGE)[0] == "new"
    assert held == [set()]  # neither the old ranking nor the other figure of the older version
    live = kept.get("live", (2, 1), lambda: "live", figures.LIVE_AGE)
    kept.kept["live"].at -= figures.LIVE_AGE + 1  # a live figure gone stale at the same version
    assert kept.get("live", (2, 1), compute, figures.LIVE_AGE)[0] == "new"
    assert held[-1] == {"ranking"} and live[0] == "live"
