"""The real openai SDK against a gateway whose upstreams are Anthropic and Gemini.

Run by tests/anthropic.rs (`e2e_the_openai_python_sdk_cannot_tell`) with
TRANSLATED_GATEWAY_URL set: providers `claude` (kind: anthropic) and `gemini`
(kind: gemini) are project mock servers replaying recorded wire bytes, queued in the
order of the tests below. Without that variable this file defines no tests, so the plain
`tests/sdk` run (tests/openai_sdk.rs) neither runs nor skips anything here.
"""

import json
import os

import openai

URL = os.environ.get("TRANSLATED_GATEWAY_URL")

if URL:

    def client():
        return openai.OpenAI(base_url=URL, api_key="unused", max_retries=0, timeout=20)

    def test_1_anthropic_text():
        c = client().chat.completions.create(
            model="claude/claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
        )
        assert c.choices[0].message.content.startswith("Hello! I'm doing well")
        assert c.choices[0].finish_reason == "stop"
        assert c.usage.prompt_tokens == 12 and c.usage.completion_tokens == 29
        assert c.model == "claude-sonnet-4-5-20250929"

    def test_2_anthropic_stream():
        stream = client().chat.completions.create(
            model="claude/claude-3-opus-latest",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello there!"
        assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 17

    def test_3_anthropic_tool_round_trip():
        tools = [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}, "units": {"type": "string"}},
                    },
                },
            }
        ]
        messages = [{"role": "user", "content": "Weather in SF?"}]
        first = client().chat.completions.create(
            model="claude/claude-haiku-4-5", messages=messages, tools=tools
        )
        call = first.choices[0].message.tool_calls[0]
        assert first.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"location": "San Francisco, CA", "units": "f"}
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "20 C"})
        second = client().chat.completions.create(
            model="claude/claude-haiku-4-5", messages=messages, tools=tools
        )
        assert second.choices[0].message.content

    def test_4_anthropic_streamed_tool_call():
        stream = client().chat.completions.create(
            model="claude/claude-sonnet-4-20250514",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            stream=True,
        )
        calls = {}
        finish = None
        for chunk in stream:
            for choice in chunk.choices:
                for tc in choice.delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": tc.id, "name": tc.function.name, "args": ""})
                    slot["args"] += tc.function.arguments or ""
                finish = choice.finish_reason or finish
        assert finish == "tool_calls"
        assert calls[0]["id"] == "toolu_01NRLabsLyVHZPKxbKvkfSMn" and calls[0]["name"] == "get_weather"
        assert json.loads(calls[0]["args"]) == {"location": "Paris"}

    def test_5_anthropic_overloaded_is_a_typed_exception():
        try:
            client().chat.completions.create(
                model="claude/claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
            )
        except openai.InternalServerError as e:
            assert e.status_code == 503
            assert e.body["code"] == "overloaded"
        else:
            raise AssertionError("expected a 503")

    def test_6_gemini_text():
        c = client().chat.completions.create(
            model="gemini/gemini-2.5-flash",
            messages=[
                {"role": "system", "content": "You are a helpful assistant"},
                {"role": "user", "content": "Say hi in Portuguese"},
            ],
        )
        assert c.choices[0].message.content == "Olá!"
        assert c.usage.completion_tokens == 26
        assert c.usage.completion_tokens_details.reasoning_tokens == 24

    def test_7_gemini_stream():
        stream = client().chat.completions.create(
            model="gemini/gemini-2.0-flash",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "The capital of France is Paris.\n"
        assert chunks[-1].usage.prompt_tokens == 13

    def test_8_gemini_tool_round_trip_replays_the_signature():
        tools = [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}},
                        "additionalProperties": False,
                    },
                },
            }
        ]
        messages = [{"role": "user", "content": "What's the weather in Florence,Italy?"}]
        first = client().chat.completions.create(
            model="gemini/gemini-2.5-flash", messages=messages, tools=tools
        )
        call = first.choices[0].message.tool_calls[0]
        assert first.choices[0].finish_reason == "tool_calls"
        assert json.loads(call.function.arguments) == {"location": "Florence,Italy"}
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "40 C"})
        second = client().chat.completions.create(
            model="gemini/gemini-2.5-flash", messages=messages, tools=tools
        )
        assert second.choices[0].message.content

    def test_9_gemini_rate_limit_is_a_typed_exception_with_retry_after():
        try:
            client().chat.completions.create(
                model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]
            )
        except openai.RateLimitError as e:
            assert e.status_code == 429
            assert e.response.headers["retry-after"] == "35"
        else:
            raise AssertionError("expected a 429")
