"""The real openai SDK against a gateway with the response cache on (CACHE_GATEWAY_URL,
CACHE_GATEWAY_KEY): cached answers replay as JSON and as streams, whichever form stored them.

Run by tests/cache.rs, which starts that gateway; tests/openai_sdk.rs (a gateway without a
cache) leaves this file out.
"""

import os
import uuid

import openai
import pytest


@pytest.fixture
def client():
    return openai.OpenAI(
        base_url=os.environ["CACHE_GATEWAY_URL"],
        api_key=os.environ["CACHE_GATEWAY_KEY"],
        max_retries=0,
        timeout=20,
    )


def ask(client, text, stream, include_usage=False, model="up/echo"):
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    return client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        stream=stream,
        **kwargs,
    )


def streamed(raw):
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    usage = [c.usage for c in chunks if c.usage]
    return chunks, text, finish, usage


@pytest.mark.parametrize("model", ["up/echo", "mock/echo"])
def test_json_then_stream(client, model):
    text = f"json first {uuid.uuid4()}"
    first = ask(client, text, False, model=model)
    assert first.headers["x-gateway-cache"] == "miss"
    completion = first.parse()
    replay = ask(client, text, True, include_usage=True, model=model)
    assert replay.headers["x-gateway-cache"] == "hit"
    assert "age" in replay.headers
    chunks, content, finish, usage = streamed(replay)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content == completion.choices[0].message.content
    assert finish == ["stop"]
    assert usage[0].total_tokens == completion.usage.total_tokens
    assert chunks[-1].choices == []


@pytest.mark.parametrize("model", ["up/echo", "mock/echo"])
def test_stream_then_json(client, model):
    text = f"stream first {uuid.uuid4()}"
    first = ask(client, text, True, model=model)
    assert first.headers["x-gateway-cache"] == "miss"
    _, content, _, usage = streamed(first)
    assert usage == []
    replay = ask(client, text, False, model=model)
    assert replay.headers["x-gateway-cache"] == "hit"
    completion = replay.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == content
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    again = ask(client, text, True, model=model)
    assert again.headers["x-gateway-cache"] == "hit"
    assert streamed(again)[1] == content


def test_semantic_hit_replays_as_a_stream(client):
    tag = uuid.uuid4().hex[:8]
    first = client.chat.completions.with_raw_response.create(
        model="up/echo",
        messages=[{"role": "system", "content": tag}, {"role": "user", "content": "How do I reverse a list in Python?"}],
    )
    assert first.headers["x-gateway-cache"] == "miss"
    answer = first.parse().choices[0].message.content
    replay = client.chat.completions.with_raw_response.create(
        model="up/echo",
        messages=[{"role": "system", "content": tag}, {"role": "user", "content": "how do I reverse a list in python"}],
        stream=True,
    )
    assert replay.headers["x-gateway-cache"] == "semantic-hit"
    assert float(replay.headers["x-gateway-cache-similarity"]) == 1.0
    assert streamed(replay)[1] == answer


def test_no_store(client):
    text = f"no store {uuid.uuid4()}"
    first = client.chat.completions.with_raw_response.create(
        model="up/echo",
        messages=[{"role": "user", "content": text}],
        extra_headers={"Cache-Control": "no-store"},
    )
    assert first.headers["x-gateway-cache"] == "miss"
    assert ask(client, text, False).headers["x-gateway-cache"] == "miss"
