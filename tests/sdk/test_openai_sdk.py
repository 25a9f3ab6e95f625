"""The real openai SDK against a running gateway (GATEWAY_URL, GATEWAY_KEY).

Run by tests/openai_sdk.rs; the gateway has the in-process `mock` provider and an
OpenAI-compatible provider `up` that is the project's mock server over HTTP.
"""

import math
import os

import openai
import pytest

URL = os.environ["GATEWAY_URL"]
KEY = os.environ["GATEWAY_KEY"]


@pytest.fixture
def client():
    return openai.OpenAI(base_url=URL, api_key=KEY, max_retries=0, timeout=20)


@pytest.mark.parametrize("model", ["mock/echo", "up/echo"])
def test_chat(client, model):
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello sdk"}]
    )
    assert completion.choices[0].message.content == "You said: hello sdk"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 4
    assert completion.model == "echo"


@pytest.mark.parametrize("model", ["mock/echo", "up/echo"])
def test_streaming_with_usage(client, model):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: stream me please"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == 3 + 5


def test_raw_response_headers(client):
    raw = client.chat.completions.with_raw_response.create(
        model="up/echo", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.headers["x-gateway-provider"] == "up"
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().choices[0].message.content == "You said: x"


@pytest.mark.parametrize("model", ["mock/e", "up/e"])
def test_embeddings(client, model):
    # The SDK asks for base64 and decodes it.
    result = client.embeddings.create(model=model, input=["one", "two words"])
    assert [d.index for d in result.data] == [0, 1]
    for item in result.data:
        assert len(item.embedding) == 16
        assert math.isclose(sum(x * x for x in item.embedding), 1.0, rel_tol=1e-4)
    assert result.usage.prompt_tokens == 3


def test_models(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["up/echo"]


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope/x", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == "model_not_found"


def test_wrong_key_is_an_authentication_error():
    bad = openai.OpenAI(base_url=URL, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("model", ["mock/echo?status=429", "up/echo?status=429"])
def test_rate_limit_is_a_typed_error(client, model):
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 429
    assert "status 429" in err.value.message


def test_bad_request_is_a_typed_error(client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="mock/echo", messages=[])


@pytest.mark.parametrize("model", ["mock/echo?cut=2", "up/echo?cut=2&chunk_delay=10ms"])
def test_a_stream_broken_upstream_raises_mid_stream(client, model):
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "a b c d e"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2
