//! Which models a key or team may call: LiteLLM's `models` lists.

use crate::glob::Glob;

/// A compiled `models` list: empty, `*` or `all-proxy-models` allow every model;
/// `all-team-models` on a key defers to its team; otherwise exact names and `*` patterns
/// (provider/model names, aliases, combos).
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelAccess {
    globs: Option<Vec<Glob>>,
}

impl ModelAccess {
    /// The list's rules, or the first entry that is not a pattern.
    pub(crate) fn new(models: &[String]) -> Result<Self, String> {
        if models
            .iter()
            .any(|m| matches!(m.as_str(), "*" | "all-proxy-models" | "all-team-models"))
            || models.is_empty()
        {
            return Ok(Self { globs: None });
        }
        let globs = models
            .iter()
            .map(|m| Glob::new(m).map_err(|e| format!("`{m}`: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Self { globs: Some(globs) })
    }

    /// Whether `model` (as the client named it) may be called.
    pub(crate) fn allows(&self, model: &str) -> bool {
        self.globs
            .as_ref()
            .is_none_or(|globs| globs.iter().any(|g| g.matches(model)))
    }

    /// Whether every model is allowed.
    pub(crate) fn allows_all(&self) -> bool {
        self.globs.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(models: &[&str]) -> ModelAccess {
        ModelAccess::new(&models.iter().map(|m| (*m).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn empty_star_and_all_proxy_models_allow_everything() {
        for models in [
            &[][..],
            &["*"],
            &["all-proxy-models"],
            &["gpt-4o", "all-team-models"],
        ] {
            assert!(access(models).allows("anything/at-all"), "{models:?}");
        }
    }

    #[test]
    fn names_and_patterns_allow_only_what_they_match() {
        let a = access(&["openai/*", "fast", "claude-*-latest"]);
        assert!(a.allows("openai/gpt-4o") && a.allows("fast") && a.allows("claude-3-latest"));
        assert!(!a.allows("anthropic/claude") && !a.allows("fast2") && !a.allows("gpt-4o"));
        assert!(ModelAccess::new(&["a*b*".to_owned()]).is_err());
    }
}
