"""Surveys: the bundled files, versions and snapshots, question order, keypad digits, SMS replies, bad files."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callbackd.core.errors import ConfigError
from callbackd.rounds.surveys import LEVELS, OPT_OUT_WORDS, Survey, is_opt_out, load_survey, load_surveys

pytestmark = pytest.mark.no_database

SURVEY_DIR = Path(__file__).resolve().parents[2] / "config" / "surveys"
SIX = ("attitude", "efficiency", "rules", "off_book", "integrity", "overall")
CASE = {"organisation": "某区政务服务中心", "window": "社保窗口", "matter": "社保卡补办"}


@cache
def bundled() -> dict[str, Survey]:
    return load_surveys(SURVEY_DIR)


def default() -> Survey:
    return bundled()["default"]


def five_level() -> Survey:
    return bundled()["five-level"]


def write_survey(folder: Path, *replacements: tuple[str, str], name: str = "custom.toml") -> Path:
    """The default survey file with some text replaced, written to `folder`."""
    text = (SURVEY_DIR / "default.toml").read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def read(survey: Survey, text: str, pending: int = 6) -> tuple[str, list[str], str]:
    """An SMS reply read against the first `pending` rating questions: kind, raw labels, remainder."""
    reading = survey.read_sms(text, survey.rating_questions()[:pending])
    return reading.kind, [choice.label for _, choice in reading.answers], reading.remainder


# ---- the bundled surveys --------------------------------------------------------------------------------------


def test_bundled_surveys_ask_the_six_dimensions_then_a_suggestion_in_both_languages():
    assert set(bundled()) == {"default", "five-level"}
    for survey in bundled().values():
        assert [q.key for q in survey.questions] == [*SIX, "suggestion"]
        assert [q.dimension for q in survey.questions] == [
            "服务态度", "办事效率", "按章办事", "体外循环", "廉洁自律", "总体评价", "意见建议",
        ]  # fmt: skip
        assert [q.key for q in survey.rating_questions()] == list(SIX)
        assert survey.question("suggestion").kind == "text" and survey.question("suggestion").scale is None
        assert set(survey.languages) == {"zh-CN", "en"}
        for question in survey.questions:
            for language in survey.languages:
                assert question.text("voice", language) and question.text("sms", language)
    assert [c.label for c in default().question("overall").scale.choices] == list(LEVELS)


def test_prompts_fill_the_case_and_list_the_choices():
    survey = default()
    greeting = survey.render("greeting_voice", **CASE)
    assert greeting.startswith("您好，这里是某区政务服务中心") and "社保窗口" in greeting and "社保卡补办" in greeting
    assert survey.question("attitude").text("voice").endswith("满意请按1，基本满意请按2，不满意请按3。")
    suggestion = survey.question("suggestion")
    assert suggestion.text("sms") == suggestion.texts["zh-CN"]["sms"]  # a text question lists no choices
    assert "没有此类情况请选满意" in survey.question("off_book").text("voice")  # 满意 means no off-book handling
    body = survey.sms_body(**CASE)
    lines = body.splitlines()
    assert lines[0].startswith("【某区政务服务中心】")
    assert [line.split(".")[0] for line in lines[1:7]] == ["1", "2", "3", "4", "5", "6"]
    assert "体外循环" in lines[4]
    assert "回复6个数字" in lines[7] and "1 1 2 1 1 1" in lines[7] and "1满意 2基本满意 3不满意" in lines[7]
    assert "TD" in lines[7]
    again = survey.sms_body(questions=survey.rating_questions()[4:], intro="reask_sms", **CASE)
    assert "2项" in again.splitlines()[0] and "回复2个数字" in again
    with pytest.raises(ValueError, match="window"):
        survey.render("greeting_sms", organisation="x", matter="y")
    assert "Press 1" in five_level().question("overall").text("voice", "en")


# ---- versions and snapshots -----------------------------------------------------------------------------------


def test_snapshot_round_trips_exactly_through_json():
    for survey in bundled().values():
        data = json.loads(json.dumps(survey.snapshot(), ensure_ascii=False))
        again = Survey.from_snapshot(data)
        assert again == survey and again.version == survey.version and hash(again) == hash(survey)
        assert len(survey.version) == 16 and int(survey.version, 16) >= 0
    assert default().version != five_level().version


def test_version_changes_when_a_prompt_changes(tmp_path):
    same = load_survey(write_survey(tmp_path, name="same.toml"))
    assert same.version == default().version  # the file name plays no part
    edited = load_survey(write_survey(tmp_path, ("总体评价是？", "总体评价如何？")))
    assert edited.version != default().version
    snapshot = default().snapshot()
    snapshot["questions"][0]["texts"]["zh-CN"]["voice"] = "改过的问题"
    with pytest.raises(ConfigError, match="hashes to"):
        Survey.from_snapshot(snapshot)
    del snapshot["version"]
    assert Survey.from_snapshot(snapshot).version != default().version


# ---- question order and keypad --------------------------------------------------------------------------------


def test_next_question_follows_the_order_and_ends():
    survey = default()
    assert survey.next_question([]).key == "attitude"
    assert survey.next_question({"attitude"}).key == "efficiency"
    assert survey.next_question(["efficiency"]).key == "attitude"  # an earlier gap comes first
    assert survey.next_question(SIX).key == "suggestion"
    assert survey.next_question([*SIX, "suggestion"]) is None
    with pytest.raises(KeyError, match="nope"):
        survey.question("nope")


@pytest.mark.parametrize(
    ("digit", "label"),
    [("1", "满意"), ("2", "基本满意"), ("3", "不满意"), (" 3 ", "不满意"), ("３", "不满意"),
     ("4", None), ("0", None), ("", None), (None, None), ("*", None), ("#", None), ("12", None)],
)  # fmt: skip
def test_read_digit(digit, label):
    survey = default()
    choice = survey.read_digit(survey.question("attitude"), digit)
    assert (choice.label if choice else None) == label
    assert survey.read_digit(survey.question("suggestion"), digit) is None


def test_five_levels_keep_the_raw_answer_beside_the_three_level_mapping():
    survey = five_level()
    question = survey.question("overall")
    read = [survey.read_digit(question, key) for key in "12345"]
    assert [(c.label, c.level) for c in read] == [
        ("非常满意", "满意"), ("满意", "满意"), ("基本满意", "基本满意"),
        ("不满意", "不满意"), ("非常不满意", "不满意"),
    ]  # fmt: skip
    assert survey.read_digit(question, "6") is None
    reading = survey.read_sms("非常不满意", [question])
    assert [(c.label, c.level) for _, c in reading.answers] == [("非常不满意", "不满意")]


# ---- SMS replies ----------------------------------------------------------------------------------------------

S, B, U = "满意", "基本满意", "不满意"


@pytest.mark.parametrize(
    ("text", "pending", "kind", "labels", "remainder"),
    [
        ("1 1 2 1 1 1", 6, "answers", [S, S, B, S, S, S], ""),
        ("１１２１１１", 6, "answers", [S, S, B, S, S, S], ""),
        ("111211", 6, "answers", [S, S, S, B, S, S], ""),
        ("1,1,2,1,1,3。", 6, "answers", [S, S, B, S, S, U], ""),
        ("1、2、3", 6, "answers", [S, B, U], ""),
        ("①②③", 6, "answers", [S, B, U], ""),
        ("满意", 6, "answers", [S], ""),
        ("基本满意，不满意", 6, "answers", [B, U], ""),
        ("不满意", 1, "answers", [U], ""),
        ("非常满意", 6, "answers", [S], ""),
        ("非常不满意", 6, "answers", [U], ""),
        ("一般", 6, "answers", [B], ""),
        ("差", 6, "answers", [U], ""),
        ("满意满意不满意", 6, "answers", [S, S, U], ""),
        ("1满意 3不满意", 6, "answers", [S, U], ""),
        ("2 谢谢", 6, "answers", [B], "谢谢"),
        ("1 1 1 1 1 1 窗口人员很耐心，谢谢！", 6, "answers", [S] * 6, "窗口人员很耐心，谢谢！"),
        ("  ", 6, "empty", [], ""),
        ("", 6, "empty", [], ""),
        ("TD", 6, "opt_out", [], ""),
        ("退订", 6, "opt_out", [], ""),
        ("1 1 td", 6, "opt_out", [], ""),
        ("stop", 6, "opt_out", [], ""),
        ("T", 6, "opt_out", [], ""),
        ("ＴＤ", 6, "opt_out", [], ""),
        ("1 1 1 以后别再发了", 6, "opt_out", [], ""),
        ("取消", 6, "opt_out", [], ""),
        ("7", 6, "unreadable", [], ""),
        ("0", 6, "unreadable", [], ""),
        ("你好", 6, "unreadable", [], ""),
        ("。。。", 6, "unreadable", [], ""),
        ("不太满意", 6, "unreadable", [], ""),
        ("1 1 1 1 1 1 1", 6, "unreadable", [], ""),
        ("1 1", 1, "unreadable", [], ""),
        ("1", 0, "unreadable", [], ""),
        ("1 谢谢 2", 6, "unreadable", [], ""),
        ("你好 1 1", 6, "unreadable", [], ""),
        ("2谢谢", 6, "unreadable", [], ""),
        ("1、满意 2、满意", 6, "unreadable", [], ""),
        ("1不满意", 6, "unreadable", [], ""),
        ("Thanks", 6, "unreadable", [], ""),
    ],
)
def test_sms_reading(text, pending, kind, labels, remainder):
    assert read(default(), text, pending) == (kind, labels, remainder)


def test_unreadable_replies_say_why():
    def reason(text: str, pending: int = 6) -> str:
        return default().read_sms(text, default().rating_questions()[:pending]).reason

    assert "7 is not a choice" in reason("7")
    assert "no answer" in reason("你好")
    assert "7 answers for 6 pending" in reason("1 1 1 1 1 1 1")
    assert "after other words" in reason("1 谢谢 2")
    assert "mixed" in reason("1 满意")


def test_sms_answers_go_to_the_pending_questions_in_order_skipping_text_questions():
    survey = five_level()
    pending = [survey.question(key) for key in ("integrity", "suggestion", "overall")]
    reading = survey.read_sms("5 非常满意", pending)
    assert reading.kind == "unreadable"  # digits mixed with words
    reading = survey.read_sms("5，4", pending)
    assert [(key, c.label) for key, c in reading.answers] == [("integrity", "非常不满意"), ("overall", "不满意")]
    assert read(survey, "满意 很满意 差 很差 一般", 6)[1] == ["满意", "非常满意", "不满意", "非常不满意", "基本满意"]
    assert read(survey, "6")[0] == "unreadable"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("TD", True), ("td", True), ("1 1 T", True), ("1TD", True), ("Stop!", True), ("退 订", True),
     ("不要再打电话了", True), ("Thanks", False), ("STOPPED", False), ("满意", False), ("", False)],
)  # fmt: skip
def test_is_opt_out(text, expected):
    assert is_opt_out(text) is expected


# ---- properties -----------------------------------------------------------------------------------------------

surveys = st.sampled_from(["default", "five-level"]).map(lambda name: bundled()[name])
KINDS = {"answers", "opt_out", "unreadable", "empty"}
ANSWER_WORDS = ["满意", "基本满意", "不满意", "非常满意", "非常不满意", "一般", "差", "很差", "还行"]
FILLERS = ["谢谢", "你好", "好的", "窗口", "😀", "?"]
SEPARATORS = ["", " ", "  ", "，", "、", "。", ",", "；", "！", "\n"]


@given(survey=surveys, text=st.text(), pending=st.integers(0, 7))
def test_read_sms_never_raises_and_answers_only_from_the_scale(survey, text, pending):
    questions = survey.questions[:pending]
    reading = survey.read_sms(text, questions)
    assert reading.kind in KINDS
    assert bool(reading.answers) == (reading.kind == "answers")
    assert (reading.kind == "unreadable") == bool(reading.reason)
    rated = [q.key for q in questions if q.scale is not None]
    assert [key for key, _ in reading.answers] == rated[: len(reading.answers)]
    for key, choice in reading.answers:
        assert choice in survey.question(key).scale.choices and choice.level in LEVELS


opt_out_words = st.sampled_from([*OPT_OUT_WORDS, "td", "Stop", "ＴＤ", "unsubscribe", "退 订"])


@given(
    survey=surveys,
    pieces=st.lists(st.sampled_from(["1", "2", "3", "4", "5", "7", "111", *ANSWER_WORDS, *FILLERS]), max_size=8),
    separators=st.lists(st.sampled_from(SEPARATORS), min_size=9, max_size=9),
    word=opt_out_words,
    place=st.integers(0, 8),
)
def test_an_opt_out_word_anywhere_is_never_read_as_answers(survey, pieces, separators, word, place):
    pieces.insert(min(place, len(pieces)), word)
    text = "".join(piece + separator for piece, separator in zip(pieces, separators, strict=False))
    reading = survey.read_sms(text, survey.rating_questions())
    assert reading.kind == "opt_out" and reading.answers == ()


@given(survey=surveys, data=st.data())
def test_valid_replies_read_back_exactly(survey, data):
    rated = survey.rating_questions()
    count = data.draw(st.integers(1, len(rated)))
    choices = [data.draw(st.sampled_from(q.scale.choices)) for q in rated[:count]]
    separator = data.draw(st.sampled_from(SEPARATORS[1:]))
    as_digits = data.draw(st.booleans())
    text = separator.join(c.key if as_digits else data.draw(st.sampled_from(c.words)) for c in choices)
    reading = survey.read_sms(text + separator + "谢谢", rated)
    assert reading.kind == "answers", (text, reading.reason)
    assert [c for _, c in reading.answers] == choices and reading.remainder == "谢谢"


# ---- bad survey files -----------------------------------------------------------------------------------------

SPARE_SCALE = """[scales.spare]
choices = [{ key = "1", label = "好", level = "满意" }, { key = "2", label = "坏", level = "不满意" }]
texts.zh-CN = { voice = "1 2", sms = "1 2" }
texts.en = { voice = "1 2", sms = "1 2" }

"""


@pytest.mark.parametrize(
    ("replacements", "problem"),
    [
        ([('key = "attitude"\n', 'key = "attitude"\ncolour = "red"\n')], "questions[1]: unknown key 'colour'"),
        ([('title = "', 'titel = "')], "unknown key 'titel'"),
        (
            [('{ key = "2", label = "基本满意"', '{ key = "1", label = "基本满意"')],
            "digit '1' is used twice (满意, 基本满意)",
        ),
        ([('level = "基本满意"', 'level = "中等"')], "level '中等' is not one of 满意, 基本满意, 不满意"),
        ([('{ key = "3"', '{ key = "10"')], "key '10' must be one keypad digit"),
        ([('"凑合", ', '"凑合", "差", ')], "word '差' belongs to both 基本满意 and 不满意"),
        ([('scale = "three"\n', "")], "question 'attitude': a rating question needs a scale"),
        ([('scale = "three"', 'scale = "thee"')], "unknown scale 'thee' (defined: three)"),
        ([('kind = "text"', 'kind = "text"\nscale = "three"')], "a text question takes no scale"),
        ([('key = "efficiency"', 'key = "attitude"')], "question key 'attitude' is used twice"),
        ([('texts.zh-CN.sms = "总体评价"\n', "")], "question 'overall': text zh-CN.'sms' is missing"),
        ([('thanks_sms = "【', 'thanks_sms = "{name}【')], "unknown placeholder 'name'"),
        ([("reask_voice =", "reask_voce =")], "unknown text zh-CN.'reask_voce'"),
        ([('sms = "1满意 2基本满意 3不满意"', 'sms = "1满意 2基本满意"')], "does not offer digit 3"),
        (
            [("[scales.three.texts.zh-CN]", "[scales.spare]\nchoices = []\ntexts = {}\n\n[scales.three.texts.zh-CN]")],
            "scale 'spare': needs at least two choices",
        ),
        (
            [("[scales.three.texts.zh-CN]", SPARE_SCALE + "[scales.three.texts.zh-CN]")],
            "scale 'spare' is defined but no question uses it",
        ),
        ([('name = "default"', 'name = "default"\n[oops')], "not valid TOML"),
    ],
)
def test_bad_survey_files_name_the_file_and_the_problem(tmp_path, replacements, problem):
    path = write_survey(tmp_path, *replacements)
    with pytest.raises(ConfigError) as caught:
        load_survey(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and problem in message, message


def test_survey_folders(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_surveys(tmp_path / "missing")
    with pytest.raises(ConfigError, match="not found"):
        load_survey(tmp_path / "missing.toml")
    write_survey(tmp_path, name="a.toml")
    write_survey(tmp_path, name="b.toml")
    with pytest.raises(ConfigError, match=r"b\.toml: survey name 'default' is already used by .*a\.toml"):
        load_surveys(tmp_path)
    (tmp_path / "b.toml").unlink()
    (tmp_path / "nameless.toml").write_text(
        (SURVEY_DIR / "default.toml").read_text(encoding="utf-8").replace('name = "default"\n', ""), encoding="utf-8"
    )
    assert sorted(load_surveys(tmp_path)) == ["default", "nameless"]  # a file without a name is named after itself
