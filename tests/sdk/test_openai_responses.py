"""The real openai SDK's Responses API against two gateways sharing a Redis response store
(GATEWAY_URL, GATEWAY_URL_B, GATEWAY_KEY).

Run by tests/openai_responses_sdk.rs. Providers: `mock` (in process) and `up` (the
project's mock over HTTP), both chat upstreams the Responses API is translated to;
`native` (the same server's own /v1/responses, passed through); `claude` (a mock
Anthropic answering each model name with the recorded fixture of that name).
"""

import json
import os

import openai
import pytest

KEY = os.environ["GATEWAY_KEY"]
A = openai.OpenAI(base_url=os.environ["GATEWAY_URL"], api_key=KEY, max_retries=0, timeout=20)
B = openai.OpenAI(base_url=os.environ["GATEWAY_URL_B"], api_key=KEY, max_retries=0, timeout=20)

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.mark.parametrize("model", ["mock/echo", "up/echo", "native/echo"])
def test_create(model):
    response = A.responses.create(model=model, input="hello responses", instructions="Be brief.")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "You said: hello responses"
    assert response.output[0].type == "message"
    assert response.usage.output_tokens == 4
    assert response.usage.total_tokens == response.usage.input_tokens + 4


@pytest.mark.parametrize("model", ["mock/echo", "up/echo", "native/echo"])
def test_stream_events(model):
    stream = A.responses.create(model=model, input="stream these words", stream=True, store=False)
    events = list(stream)
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "You said: stream these words"
    assert events[-1].response.output_text == text


def test_stream_helper_accumulates_the_final_response():
    with A.responses.stream(model="up/echo", input="helper text") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "You said: helper text"
    assert final.output_text == "You said: helper text"
    assert final.status == "completed"


@pytest.mark.parametrize("stream", [False, True])
def test_function_calling_round_trip(stream):
    # `?tool=` makes the mock call the tool with the JSON object the user sent.
    model = "up/echo?tool=get_weather"
    question = [{"role": "user", "content": json.dumps({"city": "Paris"})}]
    if stream:
        with A.responses.stream(model=model, input=question, tools=[WEATHER], store=False) as s:
            first = s.get_final_response()
    else:
        first = A.responses.create(model=model, input=question, tools=[WEATHER], store=False)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    follow_up = question + [item.model_dump(exclude_none=True) for item in first.output] + [
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 21 C"}
    ]
    second = A.responses.create(model=model, input=follow_up, tools=[WEATHER], store=False)
    assert second.output_text == "Tool said: Sunny, 21 C"


def test_previous_response_id_on_another_gateway():
    first = A.responses.create(model="up/echo", input="my name is Ada")
    # Continued on the other instance: it finds the conversation in Redis.
    second = B.responses.create(model="up/echo", input="what is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert second.output_text == "You said: what is my name?"
    assert second.usage.input_tokens > first.usage.input_tokens, "the history was sent"
    # Streamed continuation, then a third turn on the first instance.
    with B.responses.stream(model="up/echo", input="again", previous_response_id=second.id) as s:
        third = s.get_final_response()
    fourth = A.responses.create(model="mock/echo", input="last", previous_response_id=third.id)
    assert fourth.usage.input_tokens > third.usage.input_tokens

    fetched = B.responses.retrieve(first.id)
    assert fetched.id == first.id
    assert fetched.output_text == first.output_text
    items = list(A.responses.input_items.list(second.id, order="asc"))
    texts = [part.text for item in items if item.type == "message" for part in item.content]
    assert texts == ["my name is Ada", "You said: my name is Ada", "what is my name?"]

    B.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        A.responses.retrieve(first.id)


def test_an_anthropic_upstream():
    # The recorded Anthropic answers, through chat, as Responses.
    response = A.responses.create(model="claude/message-text", input="Hi, how are you?")
    assert response.output_text.startswith("Hello! I'm doing well")
    assert response.usage.input_tokens > 0
    with A.responses.stream(model="claude/stream-text-then-tool-use", input="weather?", tools=[WEATHER]) as s:
        final = s.get_final_response()
    kinds = [item.type for item in final.output]
    assert kinds == ["message", "function_call"]
    assert final.output[1].name == "get_weather"
    assert isinstance(json.loads(final.output[1].arguments), dict)


def test_errors_raise_the_sdk_exceptions():
    with pytest.raises(openai.NotFoundError):
        A.responses.create(model="nope/x", input="hi")
    with pytest.raises(openai.BadRequestError) as err:
        A.responses.create(model="up/echo", input="hi", tools=[{"type": "web_search"}])
    assert err.value.param == "tools[0].type"
    with pytest.raises(openai.NotFoundError) as err:
        A.responses.create(model="up/echo", input="hi", previous_response_id="resp_unknown")
    assert err.value.code == "previous_response_not_found"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=os.environ["GATEWAY_URL"], api_key="sk-wrong", max_retries=0).responses.create(
            model="up/echo", input="hi"
        )
    # Cut mid-stream: the stream fails in band and the SDK raises.
    with pytest.raises(openai.APIError):
        for _ in A.responses.create(model="mock/echo?cut=2", input="one two three four", stream=True):
            pass
