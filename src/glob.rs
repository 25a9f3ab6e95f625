//! The one glob matcher: a name with at most one `*`, which stands for any run of
//! characters (empty included). Aliases (`claude-*`) and the cache's model lists use it.

/// A pattern: an exact name, or `prefix*suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    prefix: Box<str>,
    /// `None` for an exact name.
    suffix: Option<Box<str>>,
}

impl Glob {
    /// The pattern `pattern`; more than one `*` is an error.
    pub fn new(pattern: &str) -> Result<Self, &'static str> {
        match pattern.split_once('*') {
            None => Ok(Self {
                prefix: pattern.into(),
                suffix: None,
            }),
            Some((_, suffix)) if suffix.contains('*') => Err("a pattern has at most one `*`"),
            Some((prefix, suffix)) => Ok(Self {
                prefix: prefix.into(),
                suffix: Some(suffix.into()),
            }),
        }
    }

    /// What the `*` matched in `name` (empty for an exact pattern), if `name` matches.
    pub fn captures<'a>(&self, name: &'a str) -> Option<&'a str> {
        match &self.suffix {
            None => (name == &*self.prefix).then_some(""),
            Some(suffix) => name.strip_prefix(&*self.prefix)?.strip_suffix(&**suffix),
        }
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        self.captures(name).is_some()
    }

    /// Whether the pattern has no `*`.
    pub fn is_exact(&self) -> bool {
        self.suffix.is_none()
    }

    /// How many literal characters the pattern has: the more, the more specific.
    pub fn literal_len(&self) -> usize {
        self.prefix.len() + self.suffix.as_deref().map_or(0, str::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_star_matches_any_run_and_says_what() {
        let g = Glob::new("claude-*-latest").unwrap();
        assert_eq!(g.captures("claude-3-opus-latest"), Some("3-opus"));
        assert_eq!(g.captures("claude--latest"), Some(""));
        assert_eq!(g.captures("claude-3-opus"), None);
        assert_eq!(g.literal_len(), 14);
        let trailing = Glob::new("mock/*").unwrap();
        assert!(trailing.matches("mock/echo") && !trailing.matches("up/echo"));
        let exact = Glob::new("smart").unwrap();
        assert!(exact.is_exact() && exact.matches("smart") && !exact.matches("smarter"));
        assert!(Glob::new("a*b*").is_err());
    }
}
