"""Surveys (回访表): the questions asked, which comes next, and what a keypad digit or an SMS reply means.

The engine is pure: the dispatcher stores answers; this module only decides. A survey is read from
`config/surveys/*.toml` and frozen into each round as a `snapshot()`, whose `version` (a hash of the snapshot)
changes whenever anything in it changes, so an answer can always be read against the survey that was asked.

Every answer keeps its raw label (非常满意 on the national 好差评 five-level scale) beside its `level`, one of
`LEVELS`, which scoring uses. SMS replies are read strictly: opt-out words win over everything, and anything that
is not clearly a set of answers is reported as unreadable with a reason, never guessed.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from callbackd.core.errors import ConfigError
from callbackd.core.settings import read_toml
from callbackd.store.models import Round

LEVELS = ("满意", "基本满意", "不满意")  # the three levels every answer maps to

# ASCII words match as whole words, case-insensitively ("td", "1 1 T"; not the T of "Thanks"); Chinese words match
# anywhere in the text, spaces ignored ("以后别再发了"). N/NO is left out on purpose: in a survey it may mean 不满意.
# fmt: off
OPT_OUT_WORDS = (
    "TD", "T", "STOP", "UNSUBSCRIBE", "UNSUB", "CANCEL", "QUIT", "END",
    "退订", "退定", "取消", "拒收", "勿扰", "拒绝回访",
    "不要再打", "别再打", "不要再发", "别再发", "不要打扰", "别打扰",
)
# fmt: on

KINDS = ("rating", "text")
MEDIA = ("voice", "sms")
# A survey's own lines: greeting_sms and reask_sms open an SMS, sms_reply_hint follows its numbered questions;
# reask_voice follows an invalid key, no_input_voice no key at all; opted_out_sms confirms an opt-out.
# fmt: off
SURVEY_TEXTS = (
    "greeting_voice", "greeting_sms", "sms_reply_hint", "reask_voice", "no_input_voice", "reask_sms",
    "thanks_voice", "thanks_sms", "opted_out_sms",
)
# fmt: on
# {organisation} {window} {matter} come from the case; {count} {example} {legend} from the questions in the message.
PLACEHOLDERS = frozenset({"organisation", "window", "matter", "count", "example", "legend"})
_QUESTION_KEY = re.compile(r"[a-z][a-z0-9_]*")


def _is_separator(char: str) -> bool:
    """Spaces and punctuation (ASCII or Chinese: ，。、；！) separate answers in an SMS."""
    return char.isspace() or unicodedata.category(char).startswith("P")


def _check_texts(texts: dict[str, dict[str, str]], keys: Sequence[str], where: str) -> None:
    """Every language has exactly `keys`, each a non-empty string using only known placeholders."""
    if "zh-CN" not in texts:
        raise ConfigError(f"{where}: texts for 'zh-CN' are missing")
    for language, table in texts.items():
        unknown, missing = sorted(set(table) - set(keys)), [key for key in keys if key not in table]
        if unknown:
            raise ConfigError(f"{where}: unknown text {language}.{unknown[0]!r} (known: {', '.join(keys)})")
        if missing:
            raise ConfigError(f"{where}: text {language}.{missing[0]!r} is missing")
        for key, text in table.items():
            where_text = f"{where}: text {language}.{key!r}"
            if not text.strip():
                raise ConfigError(f"{where_text} is empty")
            try:
                names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
            except ValueError:
                raise ConfigError(f"{where_text} has an unpaired brace (write {{{{ or }}}})") from None
            if names - PLACEHOLDERS:
                name = sorted(names - PLACEHOLDERS)[0]
                raise ConfigError(
                    f"{where_text}: unknown placeholder {name!r} (known: {', '.join(sorted(PLACEHOLDERS))})"
                )


@dataclass(frozen=True)
class Choice:
    """One answer on a scale: its keypad digit, its raw label, its three-level mapping and its SMS words."""

    key: str
    label: str
    level: str
    words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.key) != 1 or self.key not in "123456789":
            raise ConfigError(f"choice {self.label!r}: key {self.key!r} must be one keypad digit 1-9")
        if not self.label.strip():
            raise ConfigError(f"choice {self.key}: label is empty")
        if self.level not in LEVELS:
            raise ConfigError(f"choice {self.label!r}: level {self.level!r} is not one of {', '.join(LEVELS)}")
        for word in self.words:
            if not word or any(_is_separator(c) or c.isdigit() for c in unicodedata.normalize("NFKC", word)):
                raise ConfigError(f"choice {self.label!r}: word {word!r} is empty or has a digit, space or punctuation")


@dataclass(frozen=True)
class Scale:
    """The choices a rating question offers, with the prompts that list them (voice: 满意请按1…; SMS: 1满意 …)."""

    name: str
    choices: tuple[Choice, ...]
    texts: dict[str, dict[str, str]]

    def __post_init__(self) -> None:
        where = f"scale {self.name!r}"
        if len(self.choices) < 2:
            raise ConfigError(f"{where}: needs at least two choices")
        seen: dict[str, Choice] = {}
        for choice in self.choices:
            if choice.key in seen:
                raise ConfigError(
                    f"{where}: digit {choice.key!r} is used twice ({seen[choice.key].label}, {choice.label})"
                )
            seen[choice.key] = choice
        owners: dict[str, str] = {}
        for choice in self.choices:
            for word in {choice.label, *choice.words}:
                word = unicodedata.normalize("NFKC", word)
                if owners.setdefault(word, choice.label) != choice.label:
                    raise ConfigError(f"{where}: word {word!r} belongs to both {owners[word]} and {choice.label}")
        _check_texts(self.texts, MEDIA, where)
        for language, table in self.texts.items():
            for medium, text in table.items():
                for choice in self.choices:  # the prompt must offer every digit, so it cannot drift from the choices
                    if choice.key not in text:
                        raise ConfigError(f"{where}: text {language}.{medium} does not offer digit {choice.key}")

    def __hash__(self) -> int:
        return hash((self.name, self.choices))

    @cached_property
    def _by_word(self) -> dict[str, Choice]:
        return {unicodedata.normalize("NFKC", w): c for c in self.choices for w in (c.label, *c.words)}

    def by_key(self, key: str) -> Choice | None:
        """The choice for a keypad digit, or None when the digit is not on this scale."""
        return next((choice for choice in self.choices if choice.key == key), None)

    def by_word(self, word: str) -> Choice | None:
        """The choice a whole word names (满意, 一般, 非常不满意...), or None."""
        return self._by_word.get(unicodedata.normalize("NFKC", word.strip()))

    def snapshot(self) -> dict[str, Any]:
        """The scale as plain data, in the shape `[scales.NAME]` has in a survey file."""
        choices = [{"key": c.key, "label": c.label, "level": c.level, "words": list(c.words)} for c in self.choices]
        return {"choices": choices, "texts": _copy_texts(self.texts)}


@dataclass(frozen=True)
class Question:
    """One question: a rating on a scale, or free text (意见建议), with voice and SMS wording per language."""

    key: str
    dimension: str
    kind: str
    scale: Scale | None
    texts: dict[str, dict[str, str]]

    def __post_init__(self) -> None:
        where = f"question {self.key!r}"
        if not _QUESTION_KEY.fullmatch(self.key):
            raise ConfigError(f"{where}: key must be lower-case letters, digits and _ (like 'off_book')")
        if not self.dimension.strip():
            raise ConfigError(f"{where}: dimension is empty")
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "rating" and self.scale is None:
            raise ConfigError(f"{where}: a rating question needs a scale")
        if self.kind == "text" and self.scale is not None:
            raise ConfigError(f"{where}: a text question takes no scale")
        _check_texts(self.texts, MEDIA, where)
        if any("{" in text for table in self.texts.values() for text in table.values()):
            raise ConfigError(f"{where}: question texts take no placeholders")
        if self.scale is not None and set(self.scale.texts) != set(self.texts):
            raise ConfigError(f"{where}: scale {self.scale.name!r} has texts for other languages than the question")

    def __hash__(self) -> int:
        return hash((self.key, self.dimension, self.kind, self.scale))

    def text(self, medium: str, language: str = "zh-CN") -> str:
        """The prompt for this question on its own; a rating question's prompt ends with its scale's choices."""
        if medium not in MEDIA:
            raise ValueError(f"unknown medium {medium!r} (known: {', '.join(MEDIA)})")
        if language not in self.texts:
            raise ValueError(f"question {self.key!r} has no {language!r} texts (has: {', '.join(self.texts)})")
        own = self.texts[language][medium]
        return own if self.scale is None else f"{own} {self.scale.texts[language][medium]}"

    def snapshot(self) -> dict[str, Any]:
        """The question as plain data, in the shape `[[questions]]` has in a survey file."""
        data: dict[str, Any] = {"key": self.key, "dimension": self.dimension, "kind": self.kind}
        if self.scale is not None:
            data["scale"] = self.scale.name
        data["texts"] = _copy_texts(self.texts)
        return data


@dataclass(frozen=True)
class SmsReading:
    """What an SMS reply means: answers (in question order), an opt-out, nothing, or something unreadable."""

    kind: str  # "answers", "opt_out", "unreadable", "empty"
    answers: tuple[tuple[str, Choice], ...] = ()
    remainder: str = ""  # trailing words not read as answers, as written (e.g. "谢谢"); may be a suggestion
    reason: str = ""  # for unreadable: why, in a short English phrase


@dataclass(frozen=True)
class _Item:
    """One answer as written in an SMS: a digit, a word, or a digit with its label ("1满意")."""

    written: str
    digit: str = ""
    word: str = ""


@dataclass(frozen=True)
class Survey:
    """An ordered set of questions with its greeting, thanks and re-ask texts. `version` is computed, not given."""

    name: str
    title: str
    version: str = field(init=False)
    questions: tuple[Question, ...]
    texts: dict[str, dict[str, str]]
    # the rating questions a one-key call asks (its short form); empty: `overall` when the survey has it, else the
    # first rating question
    short_form: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"survey {self.name!r}"
        if not self.name.strip() or not self.title.strip():
            raise ConfigError(f"{where}: name and title must not be empty")
        if not any(q.kind == "rating" for q in self.questions):
            raise ConfigError(f"{where}: needs at least one rating question")
        keys = [q.key for q in self.questions]
        for key in keys:
            if keys.count(key) > 1:
                raise ConfigError(f"{where}: question key {key!r} is used twice")
        _check_texts(self.texts, SURVEY_TEXTS, where)
        for question in self.questions:
            if set(question.texts) != set(self.texts):
                raise ConfigError(f"{where}: question {question.key!r} has texts for other languages than the survey")
        scales: dict[str, Scale] = {}
        for question in self.questions:
            if question.scale is not None and scales.setdefault(question.scale.name, question.scale) != question.scale:
                raise ConfigError(f"{where}: two different scales are named {question.scale.name!r}")
        for key in self.short_form:
            if key not in keys or self.question(key).kind != "rating":
                raise ConfigError(f"{where}: short_form names {key!r}, which is not one of its rating questions")
        object.__setattr__(self, "version", _version(self._content()))

    def __hash__(self) -> int:
        return hash(self.version)

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages every text of the survey is written in."""
        return tuple(self.texts)

    @property
    def scales(self) -> dict[str, Scale]:
        """The scales the questions use, by name, in first-use order."""
        return {q.scale.name: q.scale for q in self.questions if q.scale is not None}

    def rating_questions(self) -> tuple[Question, ...]:
        """The rated questions, in order (what an SMS survey numbers and what scoring counts)."""
        return tuple(q for q in self.questions if q.kind == "rating")

    def short_form_keys(self) -> tuple[str, ...]:
        """The keys of the short form's questions, in the survey's order."""
        if self.short_form:
            return tuple(q.key for q in self.questions if q.key in self.short_form)
        rated = self.rating_questions()
        return ("overall",) if any(q.key == "overall" for q in rated) else (rated[0].key,)

    def form(self, name: str) -> Survey:
        """The survey as a channel of form `name` asks it: "full", all of it; "short", its short form alone (a
        one-key call). The short form keeps the survey's name and version: its answers are the survey's answers."""
        if name == "full":
            return self
        if name != "short":
            raise ValueError(f"unknown survey form {name!r} (known: full, short)")
        return _short_forms(self)

    def question(self, key: str) -> Question:
        """The question with this key; KeyError naming the known keys otherwise."""
        for question in self.questions:
            if question.key == key:
                return question
        raise KeyError(
            f"survey {self.name!r} has no question {key!r} (has: {', '.join(q.key for q in self.questions)})"
        )

    def next_question(self, answered: Collection[str]) -> Question | None:
        """The first question, in order, whose key is not in `answered`; None when every question is answered."""
        return next((q for q in self.questions if q.key not in answered), None)

    def read_digit(self, question: Question, digit: str | None) -> Choice | None:
        """The choice a keypad digit means for `question`; None for a missing, invalid (*, #, 7) or multi-key input."""
        if question.scale is None or not digit:
            return None
        return question.scale.by_key(unicodedata.normalize("NFKC", digit).strip())

    def render(
        self, key: str, language: str = "zh-CN", questions: Sequence[Question] | None = None, **context: str
    ) -> str:
        """One of the survey's texts (`SURVEY_TEXTS`) with its placeholders filled.

        {count}, {example} and {legend} describe the rating questions among `questions` (default: all of them);
        the others ({organisation}, {window}, {matter}) come from `context`, and a missing one is a ValueError.
        """
        if language not in self.texts:
            raise ValueError(f"survey {self.name!r} has no {language!r} texts (has: {', '.join(self.texts)})")
        rated = [q for q in (self.questions if questions is None else questions) if q.scale is not None]
        values = {"count": str(len(rated)), "example": _example(rated), "legend": _legend(rated, language), **context}
        try:
            return self.texts[language][key].format_map(values)
        except KeyError as exc:
            raise ValueError(f"survey text {key!r} needs {{{exc.args[0]}}}: pass {exc.args[0]}=...") from None

    def sms_body(
        self,
        language: str = "zh-CN",
        questions: Sequence[Question] | None = None,
        intro: str = "greeting_sms",
        **context: str,
    ) -> str:
        """One SMS asking every rating question of `questions` (default: the whole survey), numbered, and how to reply.

        Text questions among `questions` follow the reply hint unnumbered (words after the digits are kept as the
        `remainder`). For a re-ask, pass the pending questions and `intro="reask_sms"`.
        """
        chosen = list(self.questions if questions is None else questions)
        rated = [q for q in chosen if q.scale is not None]
        uniform = len({q.scale for q in rated}) <= 1
        lines = [self.render(intro, language, chosen, **context)]
        for number, question in enumerate(rated, start=1):
            line = f"{number}.{question.texts[language]['sms']}"
            lines.append(line if uniform else question.text("sms", language))
        lines.append(self.render("sms_reply_hint", language, chosen, **context))
        lines.extend(q.texts[language]["sms"] for q in chosen if q.scale is None)
        return "\n".join(lines)

    def read_sms(
        self, text: str, pending: Sequence[Question], opt_out_words: Sequence[str] = OPT_OUT_WORDS
    ) -> SmsReading:
        """Read an SMS reply as answers to the rating questions among `pending`, in order. Never raises.

        Answers are digits (ASCII or full-width; a run like "111211" is one per question) or scale words, the
        longest word winning (不满意 is not 满意), separated by spaces or punctuation. Words after the answers are
        the `remainder`. Unreadable, with a reason: nothing recognisable, a choice off the scale, more answers than
        pending questions, answers after other words, or digits mixed with words ("1、满意" may be numbering).
        """
        if is_opt_out(text, opt_out_words):
            return SmsReading("opt_out")
        if not text.strip():
            return SmsReading("empty")
        items: list[_Item] = []
        tokens = _tokens(text)
        for index, (token, start) in enumerate(tokens):
            read = self._items(token)
            if read is None:
                return self._with_remainder(items, tokens[index:], text[start:].strip(), pending)
            items.extend(read)
        return self._answers(items, "", pending)

    def snapshot(self) -> dict[str, Any]:
        """The complete survey as JSON-able data (the survey file's shape plus `version`); a round freezes it."""
        return {**self._content(), "version": self.version}

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Survey:
        """The survey a snapshot describes; ConfigError if it is malformed or its content does not match its version."""
        data = dict(data)
        version = data.pop("version", None)
        try:
            survey = _survey_from_data(data, default_name=None)
        except ConfigError as exc:
            raise ConfigError(f"survey snapshot: {exc}") from None
        if version is not None and version != survey.version:
            raise ConfigError(f"survey snapshot {survey.name!r}: content hashes to {survey.version}, not {version}")
        return survey

    # ---- reading SMS ------------------------------------------------------------------------------------------

    @cached_property
    def _words(self) -> tuple[str, ...]:
        """Every scale word of the survey, longest first, so that 不满意 is tried before 满意."""
        words = {w for scale in self.scales.values() for w in scale._by_word}
        return tuple(sorted(words, key=lambda w: (-len(w), w)))

    def _items(self, token: str) -> list[_Item] | None:
        """The answers a separator-free token holds, or None when it is not made only of answers."""
        if token.isascii() and token.isdigit():
            return [_Item(digit, digit=digit) for digit in token]
        if token[0] in "0123456789" and token[1:] in self._words:
            return [_Item(token, digit=token[0], word=token[1:])]  # "1满意": the digit with its label
        items, position = [], 0
        while position < len(token):
            word = next((w for w in self._words if token.startswith(w, position)), None)
            if word is None:
                return None
            items.append(_Item(word, word=word))
            position += len(word)
        return items

    def _with_remainder(
        self, items: list[_Item], rest: list[tuple[str, int]], remainder: str, pending: Sequence[Question]
    ) -> SmsReading:
        """Answers followed by other words: the words are kept, unless an answer (or any digit) comes after them."""
        if not items:
            if any(self._items(token) for token, _ in rest[1:]):
                return SmsReading("unreadable", reason=f"words before the answers: {rest[0][0]!r}")
            return SmsReading("unreadable", reason="no answer found")
        if any(self._items(token) or re.search("[0-9]", token) for token, _ in rest):
            return SmsReading("unreadable", reason=f"answers after other words: {rest[0][0]!r}")
        return self._answers(items, remainder, pending)

    def _answers(self, items: list[_Item], remainder: str, pending: Sequence[Question]) -> SmsReading:
        if not items:
            return SmsReading("unreadable", reason="no answer found")
        if any(not i.word for i in items) and any(not i.digit for i in items):
            return SmsReading("unreadable", reason="digits mixed with words")
        rated = [q for q in pending if q.scale is not None]
        if len(items) > len(rated):
            return SmsReading("unreadable", reason=f"{len(items)} answers for {len(rated)} pending questions")
        answers = []
        for item, question in zip(items, rated, strict=False):
            scale = question.scale
            assert scale is not None  # rated questions have one
            by_digit = scale.by_key(item.digit) if item.digit else None
            by_word = scale.by_word(item.word) if item.word else None
            if item.digit and by_digit is None:
                keys = "/".join(c.key for c in scale.choices)
                return SmsReading("unreadable", reason=f"{item.digit} is not a choice for {question.key} ({keys})")
            if item.word and by_word is None:
                return SmsReading("unreadable", reason=f"{item.word!r} is not an answer to {question.key}")
            if by_digit and by_word and by_digit != by_word:
                return SmsReading("unreadable", reason=f"{item.written!r}: the digit and the word disagree")
            choice = by_digit or by_word
            assert choice is not None
            answers.append((question.key, choice))
        return SmsReading("answers", tuple(answers), remainder=remainder)

    def _content(self) -> dict[str, Any]:
        content = {
            "name": self.name,
            "title": self.title,
            "texts": _copy_texts(self.texts),
            "scales": {name: scale.snapshot() for name, scale in self.scales.items()},
            "questions": [q.snapshot() for q in self.questions],
        }
        if self.short_form:  # only when set: a survey without one keeps the version it always had
            content["short_form"] = list(self.short_form)
        return content


_SHORT_FORMS: dict[str, Survey] = {}


def _short_forms(survey: Survey) -> Survey:
    """`survey`'s short form, built once per survey version."""
    short = _SHORT_FORMS.get(survey.version)
    if short is None or short.name != survey.name:
        keys = survey.short_form_keys()
        short = Survey(survey.name, survey.title, tuple(q for q in survey.questions if q.key in keys), survey.texts)
        object.__setattr__(short, "version", survey.version)
        _SHORT_FORMS[survey.version] = short
    return short


def _tokens(text: str) -> list[tuple[str, int]]:
    """Separator-free runs of the NFKC-normalised text (full-width digits become ASCII), with their start in `text`."""
    tokens: list[tuple[str, int]] = []
    current, start = "", 0
    for index, char in enumerate(text):
        for normal in unicodedata.normalize("NFKC", char):
            if _is_separator(normal):
                if current:
                    tokens.append((current, start))
                current = ""
            else:
                if not current:
                    start = index
                current += normal
    if current:
        tokens.append((current, start))
    return tokens


def _example(rated: Sequence[Question]) -> str:
    """A sample reply like "1 1 2 1 1 1": mostly the first choice, the third another, so answers visibly may differ."""
    keys = [q.scale.choices[1 if n == 2 else 0].key for n, q in enumerate(rated) if q.scale is not None]
    return " ".join(keys)


def _legend(rated: Sequence[Question], language: str) -> str:
    legends = dict.fromkeys(q.scale.texts[language]["sms"] for q in rated if q.scale is not None)
    return "; ".join(legends)


def _copy_texts(texts: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {language: dict(table) for language, table in texts.items()}


def _version(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def is_opt_out(text: str, words: Sequence[str] = OPT_OUT_WORDS) -> bool:
    """Whether `text` asks not to be contacted: an ASCII word as a whole word in any case, a Chinese one anywhere."""
    normal = unicodedata.normalize("NFKC", text).upper()
    compact = re.sub(r"\s+", "", normal)  # "退 订" is still 退订
    for word in words:
        word = unicodedata.normalize("NFKC", word).upper().strip()
        if not word:
            continue
        if word.isascii():
            if re.search(rf"(?<![A-Z]){re.escape(word)}(?![A-Z])", normal):
                return True
        elif re.sub(r"\s+", "", word) in compact:
            return True
    return False


# ---- survey files -------------------------------------------------------------------------------------------


def load_survey(path: Path) -> Survey:
    """Read one survey file; any mistake is a ConfigError naming the file and the problem."""
    data = read_toml(path, "survey")
    try:
        return _survey_from_data(data, default_name=path.stem)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_surveys(folder: Path) -> dict[str, Survey]:
    """Every `*.toml` survey in `folder`, by survey name; two files with one name are a ConfigError."""
    if not folder.is_dir():
        raise ConfigError(f"survey folder {folder} not found")
    surveys: dict[str, Survey] = {}
    files: dict[str, Path] = {}
    for path in sorted(folder.glob("*.toml")):
        survey = load_survey(path)
        if survey.name in surveys:
            raise ConfigError(f"{path}: survey name {survey.name!r} is already used by {files[survey.name]}")
        surveys[survey.name], files[survey.name] = survey, path
    return surveys


def _table(value: Any, where: str, required: Collection[str] = (), optional: Collection[str] = ()) -> dict[str, Any]:
    """A TOML table with exactly the allowed keys; when neither is given, any keys."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table")
    if required or optional:
        unknown = sorted(set(value) - set(required) - set(optional))
        if unknown:
            raise ConfigError(f"{where + ': ' if where else ''}unknown key {unknown[0]!r}")
        missing = [key for key in required if key not in value]
        if missing:
            raise ConfigError(f"{where + ': ' if where else ''}missing key {missing[0]!r}")
    return value


def _text(value: Any, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # key = 1 reads as "1"
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string")
    return value


def _texts(value: Any, where: str) -> dict[str, dict[str, str]]:
    texts = {}
    for language, table in _table(value, where).items():
        texts[language] = {key: _text(text, f"{where}.{language}.{key}") for key, text in _table(table, where).items()}
    return texts


def _scale_from_data(name: str, value: Any) -> Scale:
    where = f"scales.{name}"
    table = _table(value, where, required=("choices", "texts"))
    if not isinstance(table["choices"], list):
        raise ConfigError(f"{where}.choices: expected an array of tables")
    choices = []
    for number, entry in enumerate(table["choices"], start=1):
        spot = f"{where}.choices[{number}]"
        entry = _table(entry, spot, required=("key", "label", "level"), optional=("words",))
        label = _text(entry["label"], f"{spot}.label")
        words = entry.get("words", [])
        if not isinstance(words, list):
            raise ConfigError(f"{spot}.words: expected an array of strings")
        extra = [_text(word, f"{spot}.words") for word in words]
        words = tuple(dict.fromkeys([label, *extra]))  # the label is always a word, first
        choices.append(Choice(_text(entry["key"], f"{spot}.key"), label, _text(entry["level"], f"{spot}.level"), words))
    return Scale(name, tuple(choices), _texts(table["texts"], f"{where}.texts"))


def _survey_from_data(data: dict[str, Any], default_name: str | None) -> Survey:
    """Build a survey from a survey file's (or a snapshot's) data, refusing unknown and missing keys."""
    required = ("title", "scales", "texts", "questions") + (() if default_name else ("name",))
    data = _table(data, "", required=required, optional=("name", "short_form"))
    scales = {name: _scale_from_data(name, value) for name, value in _table(data["scales"], "scales").items()}
    if not isinstance(data["questions"], list):
        raise ConfigError("questions: expected an array of tables ([[questions]])")
    questions = []
    for number, entry in enumerate(data["questions"], start=1):
        where = f"questions[{number}]"
        entry = _table(entry, where, required=("key", "dimension", "texts"), optional=("kind", "scale"))
        key = _text(entry["key"], f"{where}.key")
        scale_name = entry.get("scale")
        scale = None
        if scale_name is not None:
            scale = scales.get(_text(scale_name, f"{where}.scale"))
            if scale is None:
                raise ConfigError(
                    f"question {key!r}: unknown scale {scale_name!r} (defined: {', '.join(scales) or 'none'})"
                )
        kind, dimension = _text(entry.get("kind", "rating"), f"{where}.kind"), _text(entry["dimension"], where)
        questions.append(Question(key, dimension, kind, scale, _texts(entry["texts"], f"{where}.texts")))
    unused = sorted(set(scales) - {q.scale.name for q in questions if q.scale is not None})
    if unused:
        raise ConfigError(f"scale {unused[0]!r} is defined but no question uses it")
    name = _text(data.get("name", default_name), "name")
    short_form = data.get("short_form", [])
    if not isinstance(short_form, list) or not all(isinstance(key, str) for key in short_form):
        raise ConfigError("short_form: expected an array of question keys")
    return Survey(name, _text(data["title"], "title"), tuple(questions), _texts(data["texts"], "texts"),
                  tuple(short_form))


_ROUND_SURVEYS: WeakKeyDictionary[Engine, dict[int, Survey]] = WeakKeyDictionary()


def round_survey(session: Session, round_id: int) -> Survey:
    """The survey a round froze. A round's survey never changes, so it is read once per engine and round."""
    surveys = _ROUND_SURVEYS.setdefault(session.get_bind().engine, {})
    survey = surveys.get(round_id)
    if survey is None:
        snapshot = session.scalar(select(Round.survey).where(Round.id == round_id)) or {}
        survey = surveys[round_id] = frozen_survey(snapshot)
    return survey


_SURVEYS: dict[str, Survey] = {}


def frozen_survey(snapshot: dict[str, Any]) -> Survey:
    """The survey a round froze. Parsed once per version: `from_snapshot` checks the content against it."""
    version = snapshot.get("version", "")
    survey = _SURVEYS.get(version)
    if survey is None:
        survey = Survey.from_snapshot(snapshot)
        if version:
            _SURVEYS[version] = survey
    return survey
