//! Generated chat answers for property tests: one answer as a `chat.completion` and as the
//! `chat.completion.chunk` stream an OpenAI-compatible upstream would send for it, so that
//! each inbound translation can be checked to say the same whole and streamed.

use proptest::prelude::*;
use serde_json::{json, Value};

/// One assistant answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) reasoning: String,
    pub(crate) content: String,
    pub(crate) refusal: String,
    /// `(id, name, arguments)`.
    pub(crate) calls: Vec<(String, String, Value)>,
    pub(crate) finish: &'static str,
    /// Prompt, completion, cached prompt and reasoning tokens.
    pub(crate) usage: (u64, u64, u64, u64),
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('a'),
            Just('Z'),
            Just(' '),
            Just('"'),
            Just('\\'),
            Just('\n'),
            Just('é'),
            Just('中'),
            Just('😀'),
            Just('<'),
            Just('{'),
        ],
        0..max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Any answer: each part present or not, 0 to 3 tool calls, any finish reason.
pub(crate) fn arb_answer() -> impl Strategy<Value = Answer> {
    let call = (
        "call_[a-zA-Z0-9]{1,8}",
        "[a-z_]{1,10}",
        prop::collection::btree_map(
            "[a-z]{1,5}",
            prop_oneof![
                any::<i32>().prop_map(Value::from),
                "[a-z \"]{0,6}".prop_map(Value::from),
                Just(json!({"nested": [1, 2]})),
            ],
            0..3,
        ),
    )
        .prop_map(|(id, name, args)| (id, name, json!(args)));
    (
        text(40),
        text(60),
        prop_oneof![3 => Just(String::new()), 1 => text(30)],
        prop::collection::vec(call, 0..4),
        prop::sample::select(vec![
            "stop",
            "length",
            "tool_calls",
            "content_filter",
            "function_call",
        ]),
        (0u64..100_000, 0u64..10_000, 0u64..1000, 0u64..1000),
    )
        .prop_map(|(reasoning, content, refusal, mut calls, finish, usage)| {
            // Ids are unique within an answer.
            for (i, call) in calls.iter_mut().enumerate() {
                call.0 = format!("{}_{i}", call.0);
            }
            Answer {
                reasoning,
                content,
                refusal,
                calls,
                finish,
                usage,
            }
        })
}

impl Answer {
    fn usage_json(&self) -> Value {
        let (prompt, completion, cached, reasoning) = self.usage;
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": { "cached_tokens": cached.min(prompt) },
            "completion_tokens_details": { "reasoning_tokens": reasoning.min(completion) },
        })
    }

    /// The answer as one `chat.completion`.
    pub(crate) fn completion(&self) -> Value {
        let mut message = json!({ "role": "assistant", "content": self.content });
        if !self.reasoning.is_empty() {
            message["reasoning_content"] = json!(self.reasoning);
        }
        if !self.refusal.is_empty() {
            message["refusal"] = json!(self.refusal);
        }
        if !self.calls.is_empty() {
            message["tool_calls"] = self
                .calls
                .iter()
                .map(|(id, name, args)| json!({ "id": id, "type": "function", "function": { "name": name, "arguments": args.to_string() } }))
                .collect();
        }
        json!({
            "id": "chatcmpl-gen", "object": "chat.completion", "created": 1, "model": "gen-model",
            "choices": [{ "index": 0, "message": message, "finish_reason": self.finish }],
            "usage": self.usage_json(),
        })
    }

    /// The same answer as an SSE stream of chunks, text cut in pieces of `piece`
    /// characters, the usage in a last chunk of its own.
    pub(crate) fn stream(&self, piece: usize) -> String {
        let mut sse = String::new();
        let mut chunk = |choices: Value, usage: Option<Value>| {
            let mut c = json!({ "id": "chatcmpl-gen", "object": "chat.completion.chunk", "created": 1, "model": "gen-model", "choices": choices });
            if let Some(u) = usage {
                c["usage"] = u;
            }
            sse.push_str(&format!("data: {c}\n\n"));
        };
        let delta = |d: Value| json!([{ "index": 0, "delta": d, "finish_reason": null }]);
        let pieces = |s: &str| -> Vec<String> {
            let chars: Vec<char> = s.chars().collect();
            chars
                .chunks(piece.max(1))
                .map(|c| c.iter().collect())
                .collect()
        };
        chunk(delta(json!({ "role": "assistant", "content": "" })), None);
        for p in pieces(&self.reasoning) {
            chunk(delta(json!({ "reasoning_content": p })), None);
        }
        for p in pieces(&self.content) {
            chunk(delta(json!({ "content": p })), None);
        }
        for p in pieces(&self.refusal) {
            chunk(delta(json!({ "refusal": p })), None);
        }
        for (index, (id, name, args)) in self.calls.iter().enumerate() {
            chunk(
                delta(
                    json!({ "tool_calls": [{ "index": index, "id": id, "type": "function", "function": { "name": name, "arguments": "" } }] }),
                ),
                None,
            );
            for p in pieces(&args.to_string()) {
                chunk(
                    delta(
                        json!({ "tool_calls": [{ "index": index, "function": { "arguments": p } }] }),
                    ),
                    None,
                );
            }
        }
        chunk(
            json!([{ "index": 0, "delta": {}, "finish_reason": self.finish }]),
            None,
        );
        chunk(json!([]), Some(self.usage_json()));
        sse.push_str("data: [DONE]\n\n");
        sse
    }
}
