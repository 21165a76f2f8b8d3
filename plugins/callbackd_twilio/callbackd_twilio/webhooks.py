"""Twilio's webhooks, mounted under /hooks/twilio/. Every request's X-Twilio-Signature is checked with twilio's
RequestValidator against the configured public base URL: a bad or missing signature gets 403 and changes
nothing. Repeated deliveries change nothing twice. A malformed request (a body that is not UTF-8, an attempt id
that cannot be one, a parameter Twilio always sends missing or not a number) gets a 4xx, never a 500. Handlers
are short: one `services.delivery()` each (a few queries and one commit), through the core services the web app
hands to `register_routes`, run in a few threads so the server's event loop never waits for the database.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Gather, VoiceResponse

from callbackd.api import Conversation, PhoneError, Question, Survey, WebhookServices, normalise
from callbackd_twilio import TwilioSettings, credentials, hook_url, twilio_settings

MACHINE = {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
CALL_OUTCOMES = {"busy": "busy", "no-answer": "no_answer", "failed": "failed", "canceled": "failed"}
# unknown number, landline: the number will never take an SMS. (30003, a handset switched off or out of coverage,
# is temporary: it ends the attempt as failed, and the message is tried again later.)
UNREACHABLE_SMS = {30005, 30006}
REASKED = "sms re-asked"
XML = "application/xml"
ID_DIGITS = 18  # an attempt id longer than this cannot be one (the database's integers end at 2**63)
# Handlers run in two threads: the database takes one writer at a time, and more threads only take turns on the
# interpreter's lock (the webhook benchmark's 16 connections: 1,760 requests/s and p99 18 ms on 2 threads, 1,460
# and p99 100 ms on 4, about 1,000 and p99 90 ms on starlette's 40).
HANDLER_THREADS = 2


class Malformed(ValueError):
    """A signed request that is not what Twilio sends: answered 400, nothing changed."""


# ---- plumbing --------------------------------------------------------------------------------------------


async def signed_params(request: Request, config: TwilioSettings) -> dict[str, str] | None:
    """The request's form parameters when its signature is Twilio's for the public URL, else None. Raises
    `Malformed` for a body that is not UTF-8."""
    # Twilio posts application/x-www-form-urlencoded: read it directly, the multipart machinery is not needed
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("the body is not UTF-8") from None
    params = dict(parse_qsl(text, keep_blank_values=True))
    query = request.scope.get("query_string", b"").decode("latin-1")
    url = f"{config.public_base_url.rstrip('/')}{request.scope['path']}" + (f"?{query}" if query else "")
    signature = request.headers.get("X-Twilio-Signature", "")
    return params if signature and is_twilios(url, params, signature, credentials()[1]) else None


def is_twilios(url: str, params: dict[str, str], signature: str, token: str) -> bool:
    """True when `signature` is Twilio's for `url` and `params`, as twilio's RequestValidator checks it."""
    checker = validator(token)
    # The URL exactly as Twilio requested it is tried first: one HMAC. `validate` also tries it with the default
    # port added and removed (two HMACs and parsing the URL twice), and it decides whenever this one fails.
    if hmac.compare_digest(checker.compute_signature(url, params).encode(), signature.encode()):
        return True
    return bool(checker.validate(url, params, signature))


@lru_cache(maxsize=4)
def validator(token: str) -> RequestValidator:
    return RequestValidator(token)


def forbidden() -> Response:
    return Response("forbidden: bad or missing X-Twilio-Signature", status_code=403, media_type="text/plain")


def refused(status: int, reason: str) -> Response:
    return Response(f"{reason}\n", status_code=status, media_type="text/plain")


def whole_number(params: dict[str, str], name: str) -> int:
    """The parameter `name` as Twilio sends it, a whole number (0 when absent); `Malformed` otherwise."""
    value = params.get(name) or "0"
    if not (value.isascii() and value.isdigit() and len(value) <= ID_DIGITS):
        raise Malformed(f"{name} is not a number")
    return int(value)


def twiml(document: Any) -> Response:
    return Response(str(document), media_type=XML)


def language(services: WebhookServices) -> str:
    return services.settings.surveys.language


def say(element: Any, text: str, config: TwilioSettings) -> None:
    element.say(text, language=config.language, voice=config.voice)


def case_context(conversation: Conversation) -> dict[str, str]:
    return {"organisation": conversation.organisation, "window": conversation.window, "matter": conversation.matter}


# ---- voice -----------------------------------------------------------------------------------------------


def answer_path(attempt_id: int | str, question: str, tries: int) -> str:
    return f"voice/{attempt_id}/answer?q={question}&try={tries}"


def ask(conversation: Conversation, config: TwilioSettings, lang: str, question: Question, tries: int,
        prefix: str = "") -> str:
    """One question inside <Gather numDigits="1">; silence falls through to the answer URL without digits.

    The document is the same for every call of a round but for the attempt's id in its two URLs: it is built
    once with a marker there, and each request only puts its id in.
    """
    parts = _asking(config, lang, conversation.survey, question.key, tries, prefix)
    if len(parts) != 3:  # a text that holds the marker itself: built as it is
        return _ask_document(config, lang, question, str(conversation.attempt_id), tries, prefix)
    return str(conversation.attempt_id).join(parts)


_ATTEMPT_MARK = "\u2063attempt\u2063"  # invisible separators around a word: no survey text holds it


@lru_cache(maxsize=1024)
def _asking(config: TwilioSettings, lang: str, survey: Survey, question_key: str, tries: int,
            prefix: str) -> tuple[str, ...]:
    document = _ask_document(config, lang, survey.question(question_key), _ATTEMPT_MARK, tries, prefix)
    return tuple(document.split(_ATTEMPT_MARK))


def _ask_document(config: TwilioSettings, lang: str, question: Question, attempt_id: str, tries: int,
                  prefix: str) -> str:
    response = VoiceResponse()
    if prefix:
        say(response, prefix, config)
    url = hook_url(config, answer_path(attempt_id, question.key, tries))
    gather = Gather(num_digits=1, action=url, method="POST", timeout=config.gather_timeout)
    say(gather, question.text("voice", lang), config)
    response.append(gather)
    response.redirect(url, method="POST")
    return str(response)


def after(conversation: Conversation, question_key: str) -> Question | None:
    """The first unanswered question after `question_key` (a question given up on is not asked again)."""
    questions = conversation.survey.questions
    index = next(i for i, q in enumerate(questions) if q.key == question_key)
    answered = conversation.answered_keys()
    return next((q for q in questions[index + 1:] if q.key not in answered), None)


def goodbye(conversation: Conversation, config: TwilioSettings, lang: str) -> str:
    document = _thanks(config, conversation.survey.render("thanks_voice", lang, **case_context(conversation)))
    conversation.finish("completed")  # a skipped question makes it partial, nothing answered a hang-up
    return document


@lru_cache(maxsize=256)
def _thanks(config: TwilioSettings, text: str) -> str:
    response = VoiceResponse()
    say(response, text, config)
    response.hangup()
    return str(response)


def continue_with(conversation: Conversation, config: TwilioSettings, lang: str,
                  question: Question | None) -> str | VoiceResponse:
    if question is None or (question.kind == "text" and not config.record_suggestion):
        return goodbye(conversation, config, lang)
    if question.kind == "text":
        response = VoiceResponse()
        say(response, question.text("voice", lang), config)
        response.record(action=hook_url(config, f"voice/{conversation.attempt_id}/suggestion"), method="POST",
                        max_length=60, finish_on_key="#", play_beep=True)
        response.redirect(hook_url(config, f"voice/{conversation.attempt_id}/suggestion"), method="POST")
        return response
    return ask(conversation, config, lang, question, 0)


def hang_up() -> Response:
    return twiml(_HANG_UP)


def _hang_up_document() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


_HANG_UP = _hang_up_document()


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery whose signature has been checked: what every handler starts from."""

    request: Request
    services: WebhookServices
    config: TwilioSettings
    params: dict[str, str]

    @property
    def attempt_id(self) -> int:
        return int(self.request.path_params["attempt_id"])  # checked by the route (`is_attempt_id`)


def is_attempt_id(value: str) -> bool:
    """Whether a path's attempt id can be one: digits, few enough for the database's integers."""
    return value.isascii() and value.isdigit() and len(value) <= ID_DIGITS


Handler = Callable[[Delivery], Response]


def add_routes(router: APIRouter, services: WebhookServices) -> None:
    """The webhooks of DESIGN.md's Twilio contract.

    Every route is registered through `post`, which checks the signature before any handler runs: a forged
    request gets 403 and no handler can forget the check. They are plain routes, as Twilio's parameters are
    read here and FastAPI's parameter machinery would only add work to every delivery. The attempt id is taken
    as text and checked here: a number too long for the database is no attempt (404), not an error.
    """

    threads = anyio.CapacityLimiter(HANDLER_THREADS)  # this app's

    def post(path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                config = twilio_settings(services.settings)
                try:
                    params = await signed_params(request, config)
                    if params is None:
                        return forbidden()
                    if not is_attempt_id(request.path_params.get("attempt_id", "0")):
                        return refused(404, "no such attempt")
                    delivery = Delivery(request, services, config, params)
                    return await anyio.to_thread.run_sync(handler, delivery, limiter=threads)
                except Malformed as exc:
                    return refused(400, f"bad request: {exc}")

            router.add_route(path, endpoint, methods=["POST"])
            return handler

        return register

    @post("/voice/{attempt_id}")
    def voice(delivery: Delivery) -> Response:
        services, config, params, attempt_id = delivery.services, delivery.config, delivery.params, delivery.attempt_id
        lang = language(services)
        with services.delivery() as scope:
            conversation = scope.conversation(attempt_id)
            if conversation is None or conversation.finished:
                return hang_up()
            if params.get("AnsweredBy", "") in MACHINE:
                conversation.finish("machine", f"answered by {params['AnsweredBy']}")
                return hang_up()
            conversation.pick_up()
            first = conversation.current_question()
            if first is None or (first.kind == "text" and not config.record_suggestion):
                return twiml(goodbye(conversation, config, lang))
            greeting = conversation.survey.render("greeting_voice", lang, **case_context(conversation))
            if first.kind == "text":
                response = continue_with(conversation, config, lang, first)
                return twiml(response)
            return twiml(ask(conversation, config, lang, first, 0, prefix=greeting))

    @post("/voice/{attempt_id}/answer")
    def answer(delivery: Delivery) -> Response:
        services, config, params, attempt_id = delivery.services, delivery.config, delivery.params, delivery.attempt_id
        q = delivery.request.query_params.get("q", "")
        tries = 1 if delivery.request.query_params.get("try", "0") != "0" else 0
        lang = language(services)
        with services.delivery() as scope:
            conversation = scope.conversation(attempt_id)
            if conversation is None or conversation.finished:
                return hang_up()
            try:
                question = conversation.survey.question(q)
            except (KeyError, ValueError):
                return hang_up()
            digits = params.get("Digits", "")
            choice = conversation.press(digits, question.key) if digits else None
            if choice is None and question.key not in conversation.answered_keys() and tries == 0:
                line = "reask_voice" if digits else "no_input_voice"
                prefix = conversation.survey.render(line, lang, **case_context(conversation))
                return twiml(ask(conversation, config, lang, question, 1, prefix=prefix))
            return twiml(continue_with(conversation, config, lang, after(conversation, question.key)))

    @post("/voice/{attempt_id}/suggestion")
    def suggestion(delivery: Delivery) -> Response:
        services, config, params, attempt_id = delivery.services, delivery.config, delivery.params, delivery.attempt_id
        with services.delivery() as scope:
            conversation = scope.conversation(attempt_id)
            if conversation is None or conversation.finished:
                return hang_up()
            if params.get("RecordingUrl"):
                conversation.suggest(f"录音留言 {params['RecordingUrl']}")
            return twiml(goodbye(conversation, config, language(services)))

    @post("/status/{attempt_id}")
    def call_status(delivery: Delivery) -> Response:
        services, params, attempt_id = delivery.services, delivery.params, delivery.attempt_id
        status = params.get("CallStatus", "")
        with services.delivery() as scope:
            if not scope.first_time(f"call:{params.get('CallSid', attempt_id)}:{status}"):
                return Response(status_code=204)
            conversation = scope.conversation(attempt_id)
            if conversation is None or conversation.finished:
                return Response(status_code=204)
            if status == "completed":
                # the survey ended by itself already when finished; otherwise the applicant hung up part-way
                # (answers kept), or the call ended before anyone answered
                outcome = "hung_up" if conversation.picked_up else "no_answer"
                conversation.finish(outcome, f"call {status}")
            elif status in CALL_OUTCOMES:
                conversation.finish(CALL_OUTCOMES[status], f"call {status}")
        return Response(status_code=204)

    # ---- SMS ---------------------------------------------------------------------------------------------

    @post("/status/sms/{attempt_id}")
    def message_status(delivery: Delivery) -> Response:
        services, params, attempt_id = delivery.services, delivery.params, delivery.attempt_id
        status = params.get("MessageStatus", "")
        if status not in ("failed", "undelivered"):
            return Response(status_code=204)
        code = whole_number(params, "ErrorCode")
        with services.delivery() as scope:
            if not scope.first_time(f"sms:{params.get('MessageSid', attempt_id)}:{status}"):
                return Response(status_code=204)
            conversation = scope.conversation(attempt_id)
            if conversation is None:
                return Response(status_code=204)
            if code == 21610:
                conversation.opt_out("carrier", note="Twilio 21610")
            elif not conversation.finished:
                outcome = "invalid_number" if code in UNREACHABLE_SMS else "failed"
                conversation.finish(outcome, f"message {status} ({code})")
        return Response(status_code=204)

    @post("/sms")
    def inbound(delivery: Delivery) -> Response:
        services, config, params = delivery.services, delivery.config, delivery.params
        body = params.get("Body", "")
        reply = MessagingResponse()
        # Twilio gives every message its own MessageSid: the key its deliveries are told apart by
        sid = params.get("MessageSid", "")
        if not sid:
            raise Malformed("an inbound message without MessageSid")
        try:
            phone = normalise(params.get("From", "")).e164
        except PhoneError:
            return twiml(reply)
        with services.delivery() as scope:
            if not scope.first_time(f"sms-in:{sid}"):
                return twiml(reply)
            attempt_id = scope.open_attempt_for(phone, ["twilio-sms"])
            conversation = None if attempt_id is None else scope.conversation(attempt_id)
            if conversation is None:
                if services.is_opt_out(body):  # 退订 from anyone we wrote to holds for every later survey
                    scope.record_opt_out(phone, "sms", note=body[:200])
                    reply.message(_opted_out_text(services))
                return twiml(reply)
            text = _answer_sms(conversation, config, language(services), body)
            if text:
                reply.message(text)
        return twiml(reply)


def _opted_out_text(services: WebhookServices) -> str:
    return services.survey_in_force().render("opted_out_sms", language(services),
                                             organisation=services.settings.organisation)


def first_message(conversation: Conversation, config: TwilioSettings) -> str:
    """The survey's first SMS: every rating question not answered yet numbered ("all"; after a one-key call, the
    rest of the survey), or the first one alone ("one")."""
    lang = conversation.settings.surveys.language
    pending = conversation.pending_ratings()
    answered = conversation.answered_keys()
    questions = pending[:1] if config.sms_mode == "one" else [
        q for q in conversation.survey.questions if q.kind != "rating" or q.key not in answered]
    return conversation.survey.sms_body(lang, questions, **case_context(conversation))


def _answer_sms(conversation: Conversation, config: TwilioSettings, lang: str, body: str) -> str:
    """Read one reply and say what comes next: thanks, the next question, one re-ask, or the opt-out notice."""
    survey, context_ = conversation.survey, case_context(conversation)
    if conversation.finished:
        return ""
    reading = conversation.reply(body)
    if reading.kind == "opt_out":
        return survey.render("opted_out_sms", lang, **context_)
    pending = conversation.pending_ratings()
    if reading.kind == "answers":
        conversation.pick_up()
        if not pending:
            if reading.remainder:
                conversation.suggest(reading.remainder)
            conversation.finish("completed")
            return survey.render("thanks_sms", lang, **context_)
        # the reply was read: ask what is still open, without saying it was not understood
        intro = "greeting_sms"
        return survey.sms_body(lang, pending[:1] if config.sms_mode == "one" else pending, intro=intro, **context_)
    if conversation.detail == REASKED:
        return ""  # asked again once already: the attempt waits, then ends as unanswered
    conversation.note(REASKED)
    return survey.sms_body(lang, pending, intro="reask_sms", **context_)
