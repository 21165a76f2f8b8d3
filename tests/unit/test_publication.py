"""Publishing a period freezes it; the annual workbook states everything needed to recompute the ranking; no
window-facing output identifies an informant; category policies and role shares; the audit trail and its export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from openpyxl import load_workbook
from openpyxl.chart import LineChart

from callbackd.app.synthetic import FORM_HEADER
from tests.conftest import case_row, phone_for, write_csv

NOW = "2026-11-27T10:00:00+08:00"
SIX_GOOD = ["满意"] * 6


def forms(workdir: Path, name: str, rows: list[tuple[str, str, list[str]]]) -> Path:
    return write_csv(workdir / name, [[w, day, *levels, ""] for w, day, levels in rows], header=FORM_HEADER)


def setup_windows(cli, workdir: Path, monkeypatch) -> None:
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    rows = [case_row("P1", "社保窗口"), case_row("P2", "税务窗口", phone=phone_for(2))]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    week = [("社保窗口", "2026-11-24", SIX_GOOD)] * 5 + [("税务窗口", "2026-11-24", ["基本满意"] * 6)] * 5
    assert cli("results", "import", forms(workdir, "f1.csv", week), "--source", "onsite").code == 0


def test_a_published_period_does_not_move_until_republished_with_a_reason(cli, workdir, monkeypatch):
    setup_windows(cli, workdir, monkeypatch)
    published = cli("publish", "--period", "2026-W48", "--json")
    assert published.code == 0, published.err
    assert published.json()["publication"] == 1 and published.json()["republish_of"] is None
    before = cli("score", "--period", "2026-W48", "--json").json()
    assert before["published"]["publication"] == 1
    assert [(w["window"], w["rank"], w["score"]) for w in before["windows"]] == [("社保窗口", 1, 100.0),
                                                                                 ("税务窗口", 2, 80.0)]

    # a late import: five poor forms for 社保窗口 in the published week
    late = [("社保窗口", "2026-11-25", ["不满意"] * 6)] * 15
    assert cli("results", "import", forms(workdir, "f2.csv", late), "--source", "onsite").code == 0
    after = cli("score", "--period", "2026-W48", "--json").json()
    assert after["windows"] == before["windows"]
    live = cli("score", "--period", "2026-W48", "--live", "--json").json()
    assert "published" not in live and live["windows"][0]["window"] == "税务窗口"
    cli("export", "--period", "2026-W48", "--format", "json", "--out", "w48.json")
    exported = json.loads((workdir / "w48.json").read_text(encoding="utf-8"))
    assert exported["windows"] == before["windows"] and exported["published"]["publication"] == 1

    again = cli("publish", "--period", "2026-W48")
    assert again.code == 1 and "--republish --reason" in again.err and again.err.count("\n") == 1
    no_reason = cli("publish", "--period", "2026-W48", "--republish")
    assert no_reason.code == 1 and "--reason" in no_reason.err
    fresh = cli("publish", "--period", "2026-W49", "--republish", "--reason", "x")
    assert fresh.code == 1 and "has not been published" in fresh.err

    republished = cli("publish", "--period", "2026-W48", "--republish", "--reason", "补录15份现场意见表", "--json")
    assert republished.code == 0, republished.err
    assert republished.json()["republish_of"] == 1 and republished.json()["changed"] == ["税务窗口", "社保窗口"]
    moved = cli("score", "--period", "2026-W48", "--json").json()
    assert moved["published"]["publication"] == 2 and moved["published"]["reason"] == "补录15份现场意见表"
    assert moved["windows"] == live["windows"]
    trail = cli("audit", "list", "--json").json()
    steps = [(e["action"], e["subject"]) for e in trail if e["action"] in ("publish", "republish")]
    assert steps == [("publish", "period 2026-W48"), ("republish", "period 2026-W48")]
    assert trail[-1]["detail"]["reason"] == "补录15份现场意见表"


def test_the_annual_workbook_lets_anyone_recompute_the_ranking(cli, workdir, monkeypatch):
    setup_windows(cli, workdir, monkeypatch)
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-27T12:00:00+08:00")
    assert cli("round", "open", "--week", "2026-W48", "--seed", "年度种子").code == 0
    october = [("社保窗口", "2026-10-20", SIX_GOOD)] * 10 + [("税务窗口", "2026-10-20", ["不满意"] * 6)] * 10
    assert cli("results", "import", forms(workdir, "f0.csv", october), "--source", "onsite").code == 0
    run = cli("export", "--period", "2026", "--format", "xlsx", "--out", "年度.xlsx")
    assert run.code == 0, run.err
    book = load_workbook(workdir / "年度.xlsx")
    assert book.sheetnames == ["排名", "分项", "月度得分", "指标", "整改汇总", "超期件", "计分方法"]

    monthly = book["月度得分"]
    header = [c.value for c in monthly[2]]
    assert header == ["窗口", *(f"{m}月" for m in range(1, 13))]
    rows = {r[0]: r[1:] for r in monthly.iter_rows(min_row=3, values_only=True) if r[0]}
    # October 100 and 0 (the not-yet-published months are scored as the data stands), November 100 and 80
    assert rows["社保窗口"][9:11] == (100.0, 100.0) and rows["税务窗口"][9:11] == (0.0, 80.0)
    assert rows["社保窗口"][0] is None
    (chart,) = monthly._charts
    assert isinstance(chart, LineChart) and len(chart.series) == 2

    indicators = [[c.value for c in row] for row in book["指标"].iter_rows(min_row=2)]
    assert indicators[0][:4] == ["窗口", "抽取回访", "已完成回访", "回访率"] and "回访整改满意率" in indicators[0]
    rectifications = list(book["整改汇总"].iter_rows(min_row=2, values_only=True))
    assert rectifications[0][:2] == ("窗口", "新开整改")
    assert ("税务窗口", 10) in {(r[0], r[1]) for r in rectifications[1:]}  # ten 不满意 forms in October

    methods = "\n".join(str(c) for row in book["计分方法"].iter_rows(values_only=True) for c in row if c)
    assert "来源权重" in methods and "回访 0.6" in methods and "满意 100" in methods
    assert "年度种子" in methods and "2026-W48" in methods  # every round's seed, to redraw it
    assert "整改按时率" in methods and "回访率" in methods
    samples = [r for r in book["计分方法"].iter_rows(values_only=True) if r[0] in ("社保窗口", "税务窗口")]
    assert {(r[0], r[1]) for r in samples} >= {("社保窗口", 15), ("税务窗口", 15)}


def test_no_window_facing_output_identifies_an_informant(cli, workdir, monkeypatch):
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text(
        "[channels.simulator]\nno_answer_rate = 0.0\nrefuse_rate = 0.0\nhang_up_rate = 0.0\nsuggestion_rate = 1.0\n"
        'profiles = { "社保窗口" = [0.0, 0.0, 1.0] }\n', encoding="utf-8")
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    rows = [case_row("JB-0001", "社保窗口", case_type="举报", matter="举报工作人员索要好处", applicant="赵密告",
                     phone=phone_for(7))]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--seed", "s").code == 0
    assert cli("dispatch", "--once").code == 0
    secrets = ("赵密告", phone_for(7), phone_for(7)[-4:], "JB-0001", "索要好处")
    outputs = [cli("rectifications", "list", "--json").out, cli("rectifications", "list").out,
               cli("indicators", "--period", "2026-W48", "--json").out, cli("score", "--period", "2026-11").out]
    for fmt in ("xlsx", "csv", "html", "json"):
        assert cli("export", "--period", "2026-11", "--format", fmt, "--out", f"out.{fmt}").code == 0
    book = load_workbook(workdir / "out.xlsx")
    outputs.append("\n".join(str(c) for sheet in book for row in sheet.iter_rows(values_only=True) for c in row))
    outputs += [(workdir / f"out.{fmt}").read_text(encoding="utf-8-sig") for fmt in ("csv", "html", "json")]
    assert json.loads(outputs[0])[0]["case_type"] == "举报"  # the rectification is there, its informant is not
    for output in outputs:
        for secret in secrets:
            assert secret not in output


def test_category_policies_report_deadlines_reasons_and_role_shares(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    rows = [case_row(f"R{i}", "物业服务中心", case_type="报修", matter="楼道灯不亮报修", phone=phone_for(10 + i),
                     resolved="2026-11-20 10:00:00") for i in range(5)]
    rows.append(case_row("T1", "物业服务中心", case_type="投诉", matter="服务态度投诉", phone=phone_for(20),
                         resolved="2026-11-20 10:00:00"))
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--seed", "s", "--channel", "operator").code == 0
    assert cli("dispatch", "--once").code == 0
    header = ["办件编号", "回访时间", "回访人角色",
              "服务态度", "办事效率", "按章办事", "体外循环", "廉洁自律", "总体评价"]
    results = [[f"R{i}", "2026-11-23 11:00", role, *SIX_GOOD]
               for i, role in enumerate(["经理", "主管", "维修组长", "维修组长"])]
    results.append(["T1", "2026-11-23 11:30", "", *SIX_GOOD])
    results.append(["R4", "2026-11-23 11:40", "保安", *SIX_GOOD])
    report = cli("results", "import", write_csv(workdir / "r.csv", results, header=header), "--source", "operator",
                 "--json").json()
    assert report["imported"] == 5 and len(report["errors"]) == 1 and "保安" in report["errors"][0]["reason"]

    document = cli("policies", "report", "--period", "2026-11", "--json").json()
    categories = {c["category"]: c for c in document["categories"]}
    # the complaint: due three working days after Friday 20 November (Wednesday 25), made on Monday 23
    assert (categories["投诉"]["selected"], categories["投诉"]["made_on_time"]) == (1, 1)
    assert categories["投诉"]["working_days"] is True
    # repairs of other kinds are due within 7 days (27 November): four made in time, R4 still open
    other = categories["报修-其他"]
    assert (other["selected"], other["made"], other["made_on_time"], other["open"]) == (5, 4, 4, 1)
    roles = {r["role"]: r for r in document["roles"]["overall"]["roles"]}
    assert {k: (v["callbacks"], v["share"], v["met"]) for k, v in roles.items()} == {
        "经理": (1, 0.25, True), "主管": (1, 0.25, False), "维修组长": (2, 0.5, False)}
    text = cli("policies", "report", "--period", "2026-11")
    assert text.code == 0 and "维修组长" in text.out and "3个工作日" in text.out


def test_the_audit_trail_records_and_exports_every_listed_action(cli, workdir, monkeypatch):
    setup_windows(cli, workdir, monkeypatch)
    assert cli("round", "open", "--week", "2026-W48", "--seed", "s").code == 0
    assert cli("round", "verify", "1").code == 0
    assert cli("cases", "list", "--reveal", "--json").code == 0
    assert cli("export", "--period", "2026-W48", "--format", "csv", "--out", "r.csv").code == 0
    assert cli("publish", "--period", "2026-W48").code == 0
    actions = {e["action"] for e in cli("audit", "list", "--json").json()}
    assert {"ledger.import", "results.import", "round.open", "round.verify", "phone.reveal", "export",
            "publish"} <= actions
    reveals = cli("audit", "list", "--action", "phone.reveal", "--json").json()
    assert len(reveals) == 1 and reveals[0]["subject"] == "cases list"

    run = cli("audit", "export", "--out", "audit.csv")
    assert run.code == 0, run.err
    raw = (workdir / "audit.csv").read_bytes()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows[0] == ["序号", "时间", "操作人", "操作", "对象", "详情", "演练", "演练时钟"]
    assert "phone.reveal" in {r[3] for r in rows[1:]}
    assert cli("audit", "export", "--out", "audit.json").code == 0
    assert cli("audit", "list", "--action", "audit.export", "--json").json()[0]["detail"]["events"] == len(rows) - 1
    bad = cli("audit", "export", "--out", "audit.txt")
    assert bad.code == 1 and ".csv or .json" in bad.err
    since = cli("audit", "list", "--since", "yesterday")
    assert since.code == 1 and "2026-11-01" in since.err


def test_scheduled_reports_of_a_published_period_read_the_publication(cli, workdir, monkeypatch):
    from callbackd.app import tasks

    setup_windows(cli, workdir, monkeypatch)
    assert cli("publish", "--period", "2026-W48").code == 0
    late = [("社保窗口", "2026-11-25", ["不满意"] * 6)] * 15
    assert cli("results", "import", forms(workdir, "f2.csv", late), "--source", "onsite").code == 0
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-30T08:00:00+08:00")
    tasks.scores()
    weekly = json.loads((workdir / "var" / "reports" / "回访排名-2026-W48.json").read_text(encoding="utf-8"))
    assert weekly["published"]["publication"] == 1
    assert [(w["window"], w["score"]) for w in weekly["windows"]] == [("社保窗口", 100.0), ("税务窗口", 80.0)]
    monthly = json.loads((workdir / "var" / "reports" / "回访排名-2026-11.json").read_text(encoding="utf-8"))
    social = next(w for w in monthly["windows"] if w["window"] == "社保窗口")
    assert "published" not in monthly and social["score"] == 25.0  # the month is not published: as it stands


# ---- what a publication freezes, and what stays live ------------------------------------------------------


def published(session, settings, period: str, at: str, by: str) -> None:
    from datetime import datetime

    from callbackd.measure import publication
    from callbackd.store import audit

    with audit.acting_as(by):
        publication.publish(session, settings, period, datetime.fromisoformat(at))


def test_publishing_a_week_freezes_it_while_its_month_quarter_and_year_stay_live(session, settings):
    from callbackd.measure.publication import containing, standing

    published(session, settings, "2026-W48", "2026-11-30T09:30:00+08:00", "sup")
    week = standing(session, settings, "2026-W48")
    assert week.frozen and week.publication["publication"] == 1
    assert week.note == ("2026年第48周排名已于2026-11-30 09:30由console:sup公示并冻结，"
                         "此后补录的数据不再改变公示结果。")
    around = containing(session, settings, "2026-W48")
    assert [(s.period.text, s.frozen) for s in around] == [("2026-11", False), ("2026-Q4", False), ("2026", False)]
    assert around[0].note == ("2026年11月排名随回访结果实时更新，尚未公示；"
                              "其中2026年第48周已于2026-11-30 09:30由console:sup公示并冻结。")
    assert [p["period"] for s in around for p in s.parts] == ["2026-W48"] * 3
    assert standing(session, settings, "2026-12").note == "2026年12月排名随回访结果实时更新，尚未公示。"
    assert standing(session, settings, "2026-12").as_dict()["state"] == "live"


def test_publishing_a_month_freezes_it_and_names_it_in_the_live_year(session, settings):
    from callbackd.measure.publication import containing, standing

    published(session, settings, "2026-W48", "2026-11-30T09:30:00+08:00", "sup")
    published(session, settings, "2026-11", "2026-12-01T10:00:00+08:00", "lead")
    month = standing(session, settings, "2026-11")
    assert month.frozen and month.parts == [] and "2026-12-01 10:00由console:lead公示并冻结" in month.note
    assert month.as_dict()["state"] == "frozen"
    year = standing(session, settings, "2026")
    assert not year.frozen
    # the month first, then the week that falls within it
    assert [p["period"] for p in year.parts] == ["2026-11", "2026-W48"]
    assert year.note == ("2026年排名随回访结果实时更新，尚未公示；其中2026年11月已于2026-12-01 10:00由console:lead"
                         "公示并冻结、2026年第48周已于2026-11-30 09:30由console:sup公示并冻结。")
    assert [s.period.text for s in containing(session, settings, "2026-11")] == ["2026-Q4", "2026"]


def test_a_week_straddling_two_months_and_years_names_both_and_many_parts_are_counted(session, settings):
    from callbackd.measure.publication import containing, standing

    # 2026-W53 runs from Monday 28 December 2026 to Sunday 3 January 2027
    assert [s.period.text for s in containing(session, settings, "2026-W53")] == [
        "2026-12", "2027-01", "2026-Q4", "2027-Q1", "2026", "2027"]
    for week in range(45, 50):
        published(session, settings, f"2026-W{week}", f"2026-12-0{week - 44}T09:00:00+08:00", "sup")
    quarter = standing(session, settings, "2026-Q4")
    assert quarter.note == ("2026年第4季度排名随回访结果实时更新，尚未公示；"
                            "其中2026年第45周、2026年第46周、2026年第47周等5个期间已公示并冻结"
                            "（最近为2026年第49周，2026-12-05 09:00由console:sup公示）。")
    assert standing(session, settings, "2026-10").parts == []  # week 45 begins on 2 November


def test_the_publish_command_says_what_it_froze_and_what_stays_live(cli, workdir, monkeypatch):
    setup_windows(cli, workdir, monkeypatch)
    run = cli("publish", "--period", "2026-W48", "--json")
    assert run.code == 0, run.err
    document = run.json()
    assert document["standing"]["state"] == "frozen" and document["standing"]["publication"]["publication"] == 1
    assert "2026年第48周排名已于2026-11-27 10:00由" in document["standing"]["note"]
    assert [(s["period"], s["state"]) for s in document["containing"]] == [
        ("2026-11", "live"), ("2026-Q4", "live"), ("2026", "live")]
    assert document["containing"][0]["published_parts"][0]["period"] == "2026-W48"
    assert document["containing"][0]["note"].startswith("2026年11月排名随回访结果实时更新，尚未公示；其中2026年第48周")
    text = cli("publish", "--period", "2026-11")
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[1].startswith("2026年11月排名已于2026-11-27 10:00由") and "公示并冻结" in lines[1]
    assert [line.split("；")[0] for line in lines[2:]] == ["2026年第4季度排名随回访结果实时更新，尚未公示",
                                                        "2026年排名随回访结果实时更新，尚未公示"]
    assert "其中2026年11月已于" in lines[2] and "、2026年第48周已于" in lines[2]


def test_exports_of_a_live_month_name_its_published_week_and_of_the_week_say_it_is_frozen(cli, workdir, monkeypatch):
    from openpyxl import load_workbook

    setup_windows(cli, workdir, monkeypatch)
    assert cli("publish", "--period", "2026-W48").code == 0
    for period in ("2026-11", "2026-W48"):
        for fmt in ("json", "html", "xlsx"):
            assert cli("export", "--period", period, "--format", fmt, "--out", f"{period}.{fmt}").code == 0
    month = json.loads((workdir / "2026-11.json").read_text(encoding="utf-8"))["standing"]
    assert month["state"] == "live" and "其中2026年第48周已于2026-11-27 10:00由" in month["note"]
    week = json.loads((workdir / "2026-W48.json").read_text(encoding="utf-8"))["standing"]
    assert week["state"] == "frozen"
    assert month["note"] in (workdir / "2026-11.html").read_text(encoding="utf-8")
    assert week["note"] in (workdir / "2026-W48.html").read_text(encoding="utf-8")
    assert month["note"] in load_workbook(workdir / "2026-11.xlsx")["排名"]["A2"].value
    assert week["note"] in load_workbook(workdir / "2026-W48.xlsx")["排名"]["A2"].value
