"""The real anthropic SDK against a running gateway (GATEWAY_URL, GATEWAY_KEY).

Run by tests/anthropic_sdk.rs. The gateway has the in-process `mock` provider (an
OpenAI-style upstream: Messages are translated to chat and back) and `claude`, a mock
Anthropic that answers each model name with the recorded fixture of that name, passed
through byte for byte (`claude/stream-text` streams tests/fixtures/anthropic/stream-text.sse).
"""

import json
import os
import pathlib

import anthropic
import pytest

URL = os.environ["GATEWAY_URL"]
KEY = os.environ["GATEWAY_KEY"]
FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "anthropic"


@pytest.fixture
def client():
    return anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0, timeout=20)


def ask(text):
    return [{"role": "user", "content": text}]


def test_create_translated(client):
    message = client.messages.create(model="mock/echo", max_tokens=100, messages=ask("hello sdk"))
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == "You said: hello sdk"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (2, 4)
    assert message._request_id


def test_stream_translated(client):
    with client.messages.stream(model="mock/echo", max_tokens=100, messages=ask("stream me please")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: stream me please"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 5)


TOOLS = [{
    "name": "Glob",
    "description": "Find files by pattern",
    "input_schema": {"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]},
}]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip_translated(client, stream):
    model = "mock/echo?tool=Glob"
    messages = ask('{"pattern": "*.py"}')
    if stream:
        with client.messages.stream(model=model, max_tokens=100, tools=TOOLS, messages=messages) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(model=model, max_tokens=100, tools=TOOLS, messages=messages)
    assert first.stop_reason == "tool_use"
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "Glob" and call.input == {"pattern": "*.py"}
    messages += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "a.py b.py"}]},
    ]
    second = client.messages.create(model=model, max_tokens=100, tools=TOOLS, messages=messages)
    assert second.content[0].text == "Tool said: a.py b.py"


def test_thinking_is_accepted_when_translated(client):
    message = client.messages.create(
        model="mock/echo", max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 2048},
        messages=ask("think about it"),
    )
    assert message.content[-1].text == "You said: think about it"


def test_create_passed_through(client):
    expected = json.loads((FIXTURES / "message-text.response.json").read_text())
    message = client.messages.create(model="claude/message-text", max_tokens=100, messages=ask("Hi"))
    assert message.id == expected["id"]
    assert message.content[0].text == expected["content"][0]["text"]
    assert message.usage.output_tokens == expected["usage"]["output_tokens"]


def test_stream_passed_through(client):
    with client.messages.stream(model="claude/stream-text", max_tokens=100, messages=ask("Hi")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    recorded = "".join(
        json.loads(line[len("data: "):])["delta"].get("text", "")
        for line in (FIXTURES / "stream-text.sse").read_text().splitlines()
        if line.startswith("data: ") and '"content_block_delta"' in line
    )
    assert text == recorded and final.stop_reason == "end_turn"


def test_thinking_round_trips_when_passed_through(client):
    with client.messages.stream(
        model="claude/stream-thinking", max_tokens=3000,
        thinking={"type": "enabled", "budget_tokens": 2048}, messages=ask("Hi"),
    ) as stream:
        final = stream.get_final_message()
    thinking = [b for b in final.content if b.type == "thinking"]
    assert thinking and thinking[0].thinking and thinking[0].signature


def test_count_tokens(client):
    counted = client.messages.count_tokens(model="mock/echo", messages=ask("Hello"))
    assert counted.input_tokens == 1
    counted = client.messages.count_tokens(model="claude/count", messages=ask("Hello"))
    assert counted.input_tokens == 42


@pytest.mark.parametrize("model, kind", [
    ("nobody/x", anthropic.NotFoundError),
    ("mock/echo?status=429", anthropic.RateLimitError),
    ("mock/echo?status=500", anthropic.InternalServerError),
    ("claude/error-529-overloaded", anthropic.OverloadedError),
    ("claude/error-404-model-not-found", anthropic.NotFoundError),
])
def test_errors_raise_the_sdks_exceptions(client, model, kind):
    with pytest.raises(kind) as raised:
        client.messages.create(model=model, max_tokens=10, messages=ask("hi"))
    assert raised.value.body["type"] == "error"
    assert raised.value.request_id


def test_bad_requests_and_keys(client):
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.create(model="mock/echo", max_tokens=None, messages=ask("hi"))
    wrong = anthropic.Anthropic(base_url=URL, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(model="mock/echo", max_tokens=10, messages=ask("hi"))


def test_models(client):
    assert client.models.retrieve("mock/echo").id == "mock/echo"
    ids = [m.id for m in client.models.list()]
    assert "mock/echo" in ids
