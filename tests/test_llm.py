"""The LLM story parser against a real local HTTP server speaking OpenAI chat-completions.

Each test scripts the server's replies; the server records every request it got.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from storyface.errors import InputError, StoryError
from storyface.story import LLMError, LLMSettings, parse_story, parse_story_llm

CAST = ["Hugh Jackman", "Taylor Swift"]
STORY = (
    "Hugh Jackman was selecting an apple at the grocery store when Taylor Swift, who dislikes apples, "
    "reached for a banana nearby. They struck up a conversation about fruit."
)
KEY = "sk-test-0123456789abcdef-SECRET"
GOOD_PANELS = {
    "panels": [
        {"sentence": "Hugh Jackman selects an apple at the grocery store.", "characters": ["Hugh Jackman"]},
        {"sentence": "taylor swift reaches for a banana next to Hugh Jackman.", "characters": ["TAYLOR SWIFT", "hugh jackman"]},
        {"sentence": "Hugh Jackman and Taylor talk about fruit.", "characters": ["Hugh Jackman", "Taylor Swift"]},
    ]
}


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message; None sends ``raw`` as the whole body
    raw: str = ""
    delay_s: float = 0.0


@dataclass
class FakeLLM:
    """A scripted OpenAI-compatible server: pops one Reply per request, records what it received."""

    base_url: str = ""
    replies: list[Reply] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)


def good(panels: dict = GOOD_PANELS) -> Reply:
    return Reply(content=json.dumps(panels))


def _handler(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            reply = fake.replies.pop(0) if fake.replies else Reply(500, raw="script ran out")
            time.sleep(reply.delay_s)
            if reply.content is not None:
                message = {"role": "assistant", "content": reply.content}
                payload = {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": message}]}
                data = json.dumps(payload).encode()
            else:
                data = reply.raw.encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

    return Handler


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield fake
    server.shutdown()
    server.server_close()


def settings_for(fake: FakeLLM, timeout_s: float = 5.0) -> LLMSettings:
    return LLMSettings(base_url=fake.base_url, model="test-model", api_key=SecretStr(KEY), timeout_s=timeout_s)


# --------------------------------------------------------------------------- answers


def test_good_answer_becomes_checked_panels(fake_llm: FakeLLM) -> None:
    fake_llm.replies = [good()]
    script = parse_story_llm(STORY, CAST, settings_for(fake_llm))
    assert script.backend == "llm"
    assert [p.sentence for p in script.panels] == [
        "Hugh Jackman selects an apple at the grocery store.",
        "Taylor Swift reaches for a banana next to Hugh Jackman.",  # spelled as in the cast
        "Hugh Jackman and Taylor Swift talk about fruit.",  # a first name alone becomes the full name
    ]
    assert [p.characters for p in script.panels] == [["Hugh Jackman"], CAST[::-1], CAST]
    assert script.warnings == []
    (request,) = fake_llm.requests
    assert request["path"] == "/v1/chat/completions"
    body = request["body"]
    assert body["model"] == "test-model" and body["temperature"] == 0
    # issue 12: structured output built from the answer's pydantic model (json_object is the fallback)
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    system, user = body["messages"]
    assert system["role"] == "system" and "Hugh Jackman; Taylor Swift" in system["content"]
    assert "pronouns" in system["content"] and '"panels"' in system["content"]
    assert user["role"] == "user" and STORY in user["content"]


def test_fenced_json_is_accepted(fake_llm: FakeLLM) -> None:
    fake_llm.replies = [Reply(content="Here you go:\n```json\n" + json.dumps(GOOD_PANELS) + "\n```\nEnjoy!")]
    script = parse_story_llm(STORY, CAST, settings_for(fake_llm))
    assert len(script.panels) == 3


def test_malformed_json_then_good_answer_retries_once(fake_llm: FakeLLM) -> None:
    fake_llm.replies = [Reply(content='{"panels": [{"sentence": "Hugh Jackman'), good()]
    script = parse_story_llm(STORY, CAST, settings_for(fake_llm))
    assert len(script.panels) == 3
    assert len(fake_llm.requests) == 2


def test_malformed_twice_raises_and_auto_falls_back_to_offline(fake_llm: FakeLLM) -> None:
    fake_llm.replies = [Reply(content="not json at all"), Reply(content="still {not json")]
    with pytest.raises(LLMError, match="not valid JSON"):
        parse_story_llm(STORY, CAST, settings_for(fake_llm))
    assert len(fake_llm.requests) == 2

    fake_llm.replies = [Reply(content="nope"), Reply(content="nope")]
    script = parse_story(STORY, CAST, backend="auto", settings=settings_for(fake_llm))
    assert script.backend == "offline"
    assert script.warnings[0].startswith("LLM answer unusable (") and "used the offline parser" in script.warnings[0]
    assert script.panels[1].sentence == "Hugh Jackman and Taylor Swift struck up a conversation about fruit."

    fake_llm.replies = [Reply(content="nope"), Reply(content="nope")]
    with pytest.raises(LLMError):  # asking for the LLM by name gets its error, not a silent fallback
        parse_story(STORY, CAST, backend="llm", settings=settings_for(fake_llm))


def test_schema_mismatch_is_a_bad_answer(fake_llm: FakeLLM) -> None:
    wrong = Reply(content=json.dumps({"panels": [{"characters": ["Hugh Jackman"]}]}))
    fake_llm.replies = [wrong, wrong]
    with pytest.raises(LLMError, match="panel schema.*sentence"):
        parse_story_llm(STORY, CAST, settings_for(fake_llm))


def test_timeout_is_retried_then_reported(fake_llm: FakeLLM) -> None:
    fake_llm.replies = [Reply(content=json.dumps(GOOD_PANELS), delay_s=1.0)] * 2
    started = time.monotonic()
    with pytest.raises(LLMError, match=r"no answer within 0\.2 s"):
        parse_story_llm(STORY, CAST, settings_for(fake_llm, timeout_s=0.2))
    assert time.monotonic() - started < 2.0  # two short waits, not the server's full delay
    assert len(fake_llm.requests) == 2


def test_http_500_is_retried(fake_llm: FakeLLM) -> None:
    fake_llm.replies = [Reply(500, raw='{"error": "overloaded"}'), good()]
    assert len(parse_story_llm(STORY, CAST, settings_for(fake_llm)).panels) == 3
    fake_llm.replies = [Reply(500, raw='{"error": "overloaded"}')] * 2
    with pytest.raises(LLMError, match="HTTP 500.*overloaded"):
        parse_story_llm(STORY, CAST, settings_for(fake_llm))


def test_http_401_is_not_retried_and_points_at_the_key(fake_llm: FakeLLM) -> None:
    echo = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}})
    fake_llm.replies = [Reply(401, raw=echo)]
    with pytest.raises(LLMError, match="HTTP 401.*STORYFACE_LLM_API_KEY") as info:
        parse_story_llm(STORY, CAST, settings_for(fake_llm))
    assert KEY not in str(info.value)
    assert len(fake_llm.requests) == 1


def test_http_400_steps_down_to_json_object_then_to_no_response_format(fake_llm: FakeLLM) -> None:
    # issue 12: json_schema first; a server refusing it gets today's json_object; then nothing at all
    fake_llm.replies = [Reply(400, raw='{"error": "response_format not supported"}'), good()]
    assert len(parse_story_llm(STORY, CAST, settings_for(fake_llm)).panels) == 3
    assert [r["body"]["response_format"]["type"] for r in fake_llm.requests] == ["json_schema", "json_object"]
    fake_llm.requests.clear()
    fake_llm.replies = [Reply(400, raw='{"error": "no"}'), Reply(400, raw='{"error": "no"}'), good()]
    assert len(parse_story_llm(STORY, CAST, settings_for(fake_llm)).panels) == 3
    assert [r["body"].get("response_format", {}).get("type") for r in fake_llm.requests] == [
        "json_schema", "json_object", None,
    ]  # fmt: skip


def test_invented_character_is_dropped_with_a_warning(fake_llm: FakeLLM) -> None:
    answer = {
        "panels": [
            {"sentence": "Hugh Jackman meets Bob Builder.", "characters": ["Hugh Jackman", "Bob Builder"]},
            {"sentence": "Bob Builder waves.", "characters": ["Bob Builder"]},
            {"sentence": "Taylor Swift laughs.", "characters": ["Taylor Swift"]},
        ]
    }
    fake_llm.replies = [good(answer)]
    script = parse_story_llm(STORY, CAST, settings_for(fake_llm))
    # issue 17 item 6: an invented person's name is the LLM's own words, not a name to trust, so
    # "meets Bob Builder" (three words the story never used) is left out like any made-up event
    assert [p.sentence for p in script.panels] == ["Taylor Swift laughs."]
    assert [p.characters for p in script.panels] == [["Taylor Swift"]]
    assert any("'Bob Builder'" in w and "not in the cast" in w for w in script.warnings)
    assert any("Hugh Jackman meets Bob Builder." in w and "does not contain" in w for w in script.warnings)
    assert any("Bob Builder waves." in w and "left out" in w for w in script.warnings)


def test_answer_naming_no_cast_member_is_bad(fake_llm: FakeLLM) -> None:
    nobody = good({"panels": [{"sentence": "A cashier smiles.", "characters": []}]})
    fake_llm.replies = [nobody, nobody]
    with pytest.raises(LLMError, match="no panel names anyone in the cast"):
        parse_story_llm(STORY, CAST, settings_for(fake_llm))


def test_too_many_panels_are_capped(fake_llm: FakeLLM) -> None:
    many = {"panels": [{"sentence": f"Hugh Jackman eats apple {i}.", "characters": ["Hugh Jackman"]} for i in range(30)]}
    fake_llm.replies = [good(many)]
    script = parse_story_llm(STORY, CAST, settings_for(fake_llm))
    assert len(script.panels) == 24
    assert any("30 panels" in w for w in script.warnings)
    assert any("'Taylor Swift'" in w for w in script.warnings)  # never drawn


def test_bad_story_fails_before_any_request(fake_llm: FakeLLM) -> None:
    with pytest.raises(StoryError, match="empty"):
        parse_story_llm("  ", CAST, settings_for(fake_llm))
    assert fake_llm.requests == []


# --------------------------------------------------------------------------- the key


def test_key_goes_only_in_the_authorization_header(fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_for(fake_llm)
    echo = f'{{"error": "bad key {KEY}"}}'
    fake_llm.replies = [good(), Reply(500, raw=echo), Reply(500, raw=echo), Reply(500, raw=echo), Reply(500, raw=echo)]

    parse_story_llm(STORY, CAST, settings)
    headers = fake_llm.requests[0]["headers"]
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in json.dumps(fake_llm.requests[0]["body"])

    with pytest.raises(LLMError) as info:
        parse_story_llm(STORY, CAST, settings)
    assert "HTTP 500" in str(info.value) and KEY not in str(info.value)
    chained = info.value
    while chained is not None:  # nothing up the chain (cause or context) carries the key either
        assert KEY not in repr(chained) and KEY not in str(chained)
        chained = chained.__cause__ or chained.__context__

    script = parse_story(STORY, CAST, settings=settings)  # auto: falls back, warning quotes the error
    assert script.backend == "offline" and "HTTP 500" in script.warnings[0]
    assert all(KEY not in w for w in script.warnings)

    assert KEY not in repr(settings) and KEY not in str(settings) and KEY not in settings.model_dump_json()
    assert caplog.records, "the parser should log what it does"
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_no_key_sends_no_authorization_header(fake_llm: FakeLLM) -> None:
    fake_llm.replies = [good()]
    settings = LLMSettings(base_url=fake_llm.base_url, model="local")
    parse_story_llm(STORY, CAST, settings)
    assert "Authorization" not in fake_llm.requests[0]["headers"]


# --------------------------------------------------------------------------- settings


def test_settings_from_env() -> None:
    assert LLMSettings.from_env({}) is None
    assert LLMSettings.from_env({"STORYFACE_LLM_BASE_URL": "http://localhost:11434/v1"}) is None
    env = {
        "STORYFACE_LLM_BASE_URL": "https://generativelanguage.googleapis.com/v1beta/openai/",
        "STORYFACE_LLM_MODEL": "gemini-2.0-flash",
        "OPENAI_API_KEY": KEY,
    }
    settings = LLMSettings.from_env(env)
    assert settings is not None
    assert settings.base_url == "https://generativelanguage.googleapis.com/v1beta/openai"
    assert settings.api_key.get_secret_value() == KEY and settings.timeout_s == 30
    preferred = LLMSettings.from_env({**env, "STORYFACE_LLM_API_KEY": "sk-other"})
    assert preferred is not None and preferred.api_key.get_secret_value() == "sk-other"
    with pytest.raises(InputError, match="http") as info:
        LLMSettings.from_env({**env, "STORYFACE_LLM_BASE_URL": "localhost:11434"})
    assert KEY not in str(info.value)
