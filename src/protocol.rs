//! Which API a client speaks, so that what the gateway itself says (errors, in-band stream
//! errors) reaches it in that API's shape.

/// The API whose shapes a client expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// OpenAI: `{"error":{"message","type","param","code"}}`.
    #[default]
    OpenAi,
    /// Anthropic: `{"type":"error","error":{"type","message"}}`, Anthropic's statuses (529
    /// for overloaded).
    Anthropic,
}
