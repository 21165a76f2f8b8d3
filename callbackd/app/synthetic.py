"""Synthetic ledgers for the demo, the benchmarks and the tests: realistic windows, matters and applicants,
deterministic from a seed. Every number is in a reserved-looking mobile range and no real person's."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

HEADER = ["办件编号", "窗口", "事项名称", "办件类型", "申请人", "联系电话", "受理时间", "办结时间", "状态"]

WINDOWS = [
    ("社保窗口", ["养老保险关系转移", "社保卡补办", "失业金申领", "医保异地备案"]),
    ("公积金窗口", ["住房公积金提取", "公积金贷款申请", "缴存证明打印"]),
    ("不动产登记窗口", ["不动产首次登记", "抵押登记", "产权证补办"]),
    ("市场监管窗口", ["个体工商户登记", "食品经营许可", "企业变更登记"]),
    ("税务窗口", ["发票领用", "个税汇算咨询", "税务登记变更"]),
    ("户政窗口", ["户口迁移", "居住证办理", "身份证换领"]),
    ("出入境窗口", ["护照申领", "港澳通行证签注"]),
    ("民政窗口", ["婚姻登记", "低保申请", "高龄津贴申领"]),
    ("交通窗口", ["驾驶证换证", "车辆年检预约", "道路运输证"]),
    ("医保窗口", ["医保报销", "生育津贴申领", "门诊慢特病认定"]),
    ("人才服务窗口", ["人才引进落户", "档案转递"]),
    ("综合受理窗口", ["12345工单转办", "投诉受理", "物业报修"]),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚桂英华玉兰萍红建国志文斌浩宇欣怡子涵梓轩"
MOBILE_PREFIXES = ["138", "139", "137", "136", "135", "150", "151", "152", "158", "159", "186", "187", "188", "130",
                   "131", "132", "155", "156", "185", "133", "153", "180", "189", "177", "199"]
TYPES = [("即办件", 55), ("承诺件", 30), ("联办件", 5), ("上报件", 3), ("补办件", 4), ("退回件", 3)]
REPAIRS = ["电梯故障报修", "燃气管道安全隐患", "楼道漏水", "水管爆管", "路灯不亮", "门禁损坏"]


def window_names(count: int) -> list[str]:
    names = [name for name, _ in WINDOWS]
    out = names[:count]
    number = 2
    while len(out) < count:
        out.extend(f"{name}{number}号" for name in names[: count - len(out)])
        number += 1
    return out


def ledger_rows(
    month: date, cases: int, windows: int = 12, seed: int = 1, *, unresolved_share: float = 0.05,
    special_share: float = 0.03, phones: int | None = None,
) -> Iterator[list[str]]:
    """Rows (without the header) of a month's ledger: `cases` cases spread over `windows` windows."""
    rng = random.Random(seed)
    names = window_names(windows)
    matters = {name: WINDOWS[i % len(WINDOWS)][1] for i, name in enumerate(names)}
    first = datetime(month.year, month.month, 1, 8, 30)
    days = ((first.replace(day=28) + timedelta(days=4)).replace(day=1) - first).days
    pool = phones or max(cases * 9 // 10, 1)
    type_names = [t for t, _ in TYPES]
    type_weights = [w for _, w in TYPES]
    for number in range(1, cases + 1):
        window = names[rng.randrange(windows)]
        roll = rng.random()
        if roll < special_share / 2:
            case_type, matter = "投诉", "服务态度投诉"
        elif roll < special_share:
            case_type, matter = "报修", rng.choice(REPAIRS)
        else:
            case_type = rng.choices(type_names, type_weights)[0]
            matter = rng.choice(matters[window])
        accepted = first + timedelta(days=rng.randrange(days), minutes=rng.randrange(9 * 60))
        resolved = accepted + timedelta(minutes=rng.randrange(20, 60 * 24 * (1 if case_type == "即办件" else 5)))
        open_case = rng.random() < unresolved_share
        phone_index = rng.randrange(pool)
        phone = f"{MOBILE_PREFIXES[phone_index % len(MOBILE_PREFIXES)]}{phone_index % 100_000_000:08d}"
        yield [
            f"BJ{month:%Y%m}{number:07d}",
            window,
            matter,
            case_type,
            rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))),
            phone,
            accepted.strftime("%Y-%m-%d %H:%M:%S"),
            "" if open_case else resolved.strftime("%Y-%m-%d %H:%M:%S"),
            "办理中" if open_case else "已办结",
        ]


def write_ledger_csv(path: Path, rows: Iterator[list[str]] | list[list[str]], encoding: str = "utf-8") -> Path:
    """Write rows under the standard Chinese header."""
    return write_table_csv(path, HEADER, iter(rows), encoding)


RESULT_QUESTIONS = ["服务态度", "办事效率", "按章办事", "体外循环", "廉洁自律", "总体评价"]
FORM_HEADER = ["窗口", "日期", *RESULT_QUESTIONS, "意见建议"]
EVALUATOR_HEADER = ["窗口", "评价时间", "评价"]
_LEVEL_WORDS = ("满意", "基本满意", "不满意")


def _level(rng: random.Random, good: float) -> str:
    roll = rng.random()
    return _LEVEL_WORDS[0] if roll < good else (_LEVEL_WORDS[1] if roll < good + (1 - good) * 0.7 else _LEVEL_WORDS[2])


def onsite_rows(month: date, windows: list[str], per_week: int = 5, seed: int = 1) -> Iterator[list[str]]:
    """On-site forms (征求意见表) handed out in the hall: `per_week` per window per week of the month."""
    rng = random.Random(seed)
    first = datetime(month.year, month.month, 1)
    days = ((first.replace(day=28) + timedelta(days=4)).replace(day=1) - first).days
    weeks = max(days // 7, 1)
    for window in windows:
        good = 0.75 + 0.2 * rng.random()
        for _ in range(per_week * weeks):
            day = first + timedelta(days=rng.randrange(days))
            answers = [_level(rng, good) if rng.random() > 0.03 else "" for _ in RESULT_QUESTIONS]
            note = rng.choice(["", "", "", "希望多设几个自助填表机。", "工作人员很热情。"])
            yield [window, day.strftime("%Y-%m-%d"), *answers, note]


def evaluator_rows(month: date, windows: list[str], per_window: int = 60, seed: int = 1) -> Iterator[list[str]]:
    """Counter evaluator (电子评价器) presses exported by the hall's system: one rating a row."""
    rng = random.Random(seed)
    first = datetime(month.year, month.month, 1, 9, 0)
    days = ((first.replace(day=28) + timedelta(days=4)).replace(day=1) - first).days
    for window in windows:
        good = 0.85 + 0.12 * rng.random()
        for _ in range(per_window):
            moment = first + timedelta(days=rng.randrange(days), minutes=rng.randrange(8 * 60))
            yield [window, moment.strftime("%Y-%m-%d %H:%M:%S"), _level(rng, good)]


def write_table_csv(path: Path, header: list[str], rows: Iterator[list[str]], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path
