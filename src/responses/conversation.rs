//! What is stored per response: the input that led to it (previous turns included) and the
//! `response` object the client got, with the key that asked.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::translate::chat::mint_id;

/// One stored response and the conversation before it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Conversation {
    /// The name of the gateway key that created it: only that key reads or continues it.
    pub owner: String,
    /// Every input item of the conversation up to this response, each with an `id`.
    pub input: Vec<Value>,
    /// The `response` object.
    pub response: Value,
}

impl Conversation {
    /// The entry for a finished `response` (the object, or a stream event holding it in
    /// `response`) and its input: `(id, encoded)`. `None` for anything else.
    pub(crate) fn encode(
        owner: &str,
        mut input: Vec<Value>,
        response: &[u8],
    ) -> Option<(String, Bytes)> {
        let mut response: Value = serde_json::from_slice(response).ok()?;
        if response.get("object").and_then(Value::as_str) != Some("response") {
            response = response.get_mut("response")?.take();
        }
        let id = response.get("id")?.as_str()?.to_owned();
        if !matches!(
            response["status"].as_str(),
            Some("completed" | "incomplete")
        ) {
            return None;
        }
        for item in &mut input {
            if item.get("id").is_none_or(Value::is_null) {
                let prefix = match item["type"].as_str() {
                    Some("function_call_output") => "fco_",
                    Some("function_call") => "fc_",
                    _ => "msg_",
                };
                item["id"] = Value::from(mint_id(prefix, 40));
            }
        }
        let conversation = Self {
            owner: owner.to_owned(),
            input,
            response,
        };
        let bytes = serde_json::to_vec(&conversation).ok()?;
        Some((id, Bytes::from(bytes)))
    }

    /// A stored entry.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The conversation to continue: its input, then the response's output items.
    pub(crate) fn history(self) -> Vec<Value> {
        let mut items = self.input;
        if let Some(Value::Array(output)) = self.response.get("output").cloned() {
            items.extend(output);
        }
        items
    }
}

/// A request's `input` as items: a string is one user message.
pub(crate) fn input_items(input: Option<&Value>) -> Vec<Value> {
    match input {
        Some(Value::String(text)) => vec![json!({
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_response_is_stored_with_its_input_and_continued_with_its_output() {
        let response = br#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","object":"response","status":"completed","output":[{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"Hi"}]}]}}"#;
        let input = input_items(Some(&Value::from("Hello")));
        let (id, bytes) = Conversation::encode("team-a", input, response).unwrap();
        assert_eq!(id, "resp_1");
        let conversation = Conversation::decode(&bytes).unwrap();
        assert_eq!(&*conversation.owner, "team-a");
        assert!(conversation.input[0]["id"]
            .as_str()
            .unwrap()
            .starts_with("msg_"));
        let history = conversation.history();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0]["content"][0]["text"], "Hello");
        assert_eq!(history[1]["content"][0]["text"], "Hi");

        let failed = br#"{"id":"resp_2","object":"response","status":"failed","output":[]}"#;
        assert!(Conversation::encode("a", Vec::new(), failed).is_none());
        assert!(Conversation::encode("a", Vec::new(), b"{\"error\":{}}").is_none());
    }
}
