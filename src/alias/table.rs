//! The compiled alias table.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use std::collections::BTreeMap;

use crate::glob::Glob;
use crate::settings::SettingsError;

/// What an alias did to a request, kept in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// The model as the client named it.
    pub requested: Arc<str>,
    /// What it resolved to: `provider/model` or a combo name.
    pub resolved: Arc<str>,
}

/// The names an alias (or a combo target) may end at: a combo, or `provider/model` with a
/// registered provider.
pub struct Names<'a> {
    /// Whether a provider of this name is registered.
    pub provider: &'a dyn Fn(&str) -> bool,
    /// Whether a combo of this name exists.
    pub combo: &'a dyn Fn(&str) -> bool,
}

impl Names<'_> {
    /// Whether `name` is a combo or `provider/model` with a registered provider.
    pub fn is_destination(&self, name: &str) -> bool {
        (self.combo)(name)
            || name
                .split_once('/')
                .is_some_and(|(p, m)| !m.is_empty() && (self.provider)(p))
    }
}

/// Every alias, resolved to its final target where that is known at load time.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    /// Exact names → the end of their chain.
    exact: HashMap<Box<str>, Arc<str>>,
    /// `prefix*suffix` patterns, most specific (longest literal part) first.
    wildcards: Vec<Wildcard>,
}

#[derive(Debug, Clone)]
struct Wildcard {
    pattern: Glob,
    /// The target, with at most one `*` for the matched part.
    target: Box<str>,
}

impl Wildcard {
    fn apply(&self, name: &str) -> Option<String> {
        let middle = self.pattern.captures(name)?;
        Some(self.target.replacen('*', middle, 1))
    }
}

impl Aliases {
    /// Compiles `aliases` (name → target), checking every chain: each must end at a name
    /// `names` knows (a combo, or `provider/model` with a registered provider) and must
    /// not loop. Errors name the alias.
    pub fn new(
        aliases: &BTreeMap<String, String>,
        names: &Names<'_>,
    ) -> Result<Self, SettingsError> {
        let mut table = Self::default();
        let mut raw_exact = HashMap::new();
        for (name, target) in aliases {
            let err = |message: String| SettingsError::new(name.as_str(), message);
            if name.is_empty() || target.is_empty() {
                return Err(err("must not be empty".to_owned()));
            }
            if (names.combo)(name) {
                return Err(err(format!(
                    "`{name}` is also a combo; a name can be one or the other"
                )));
            }
            match name.matches('*').count() {
                0 if target.contains('*') => {
                    return Err(err(
                        "the target has a `*` but the name has none to fill it".to_owned()
                    ))
                }
                0 => {
                    raw_exact.insert(name.as_str(), target.as_str());
                }
                1 if target.matches('*').count() <= 1 => {
                    table.wildcards.push(Wildcard {
                        pattern: Glob::new(name).expect("one `*`"),
                        target: target.as_str().into(),
                    });
                }
                _ => {
                    return Err(err(
                        "a wildcard alias has one `*` in its name and at most one in its target"
                            .to_owned(),
                    ))
                }
            }
        }
        table
            .wildcards
            .sort_by_key(|w| std::cmp::Reverse(w.pattern.literal_len()));

        // Follow every chain with the raw table, then keep only where each ends.
        let raw = Self {
            exact: raw_exact
                .iter()
                .map(|(k, v)| (Box::from(*k), Arc::from(*v)))
                .collect(),
            wildcards: table.wildcards.clone(),
        };
        for name in aliases.keys() {
            let end = raw.follow(name, names)?;
            if !name.contains('*') {
                table.exact.insert(name.as_str().into(), end.into());
            }
        }
        Ok(table)
    }

    /// Follows `name` through the raw table to the end of its chain, checking that end.
    fn follow(&self, name: &str, names: &Names<'_>) -> Result<String, SettingsError> {
        let mut chain = vec![name.to_owned()];
        let mut current = name.to_owned();
        while let Some(next) = self.step(&current) {
            let next = next.into_owned();
            if chain.contains(&next) {
                chain.push(next);
                return Err(SettingsError::new(
                    name,
                    format!("the chain loops: {}", chain.join(" → ")),
                ));
            }
            chain.push(next.clone());
            current = next;
        }
        if !names.is_destination(&current) {
            return Err(SettingsError::new(
                name,
                format!(
                    "`{current}` is not a combo or `provider/model` with a configured provider (chain: {})",
                    chain.join(" → ")
                ),
            ));
        }
        Ok(current)
    }

    /// One step: the exact alias of `name`, else the most specific wildcard matching it.
    fn step<'a>(&'a self, name: &str) -> Option<Cow<'a, str>> {
        if let Some(target) = self.exact.get(name) {
            return Some(Cow::Borrowed(target));
        }
        self.wildcards
            .iter()
            .find_map(|w| w.apply(name))
            .map(Cow::Owned)
    }

    /// What `name` resolves to, or `None` when it is no alias. Exact aliases cost one hash
    /// lookup and no allocation; a wildcard's result may itself be an alias and is followed.
    pub fn resolve(&self, name: &str) -> Option<Arc<str>> {
        if let Some(end) = self.exact.get(name) {
            return Some(end.clone());
        }
        let mut current = self.wildcards.iter().find_map(|w| w.apply(name))?;
        // Chains were checked for loops at load time with the pattern itself as the
        // match; the bound guards the remaining, data-dependent cases.
        for _ in 0..=self.wildcards.len() {
            match self.step(&current) {
                Some(next) => current = next.into_owned(),
                None => break,
            }
        }
        Some(current.into())
    }

    /// The exact alias names, for `GET /v1/models`.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.exact.keys().map(|k| &**k)
    }

    /// Whether there are no aliases at all.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcards.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Providers `openai` and `claude`, combo `smart`.
    fn compile(aliases: &str) -> Result<Aliases, SettingsError> {
        let aliases: BTreeMap<String, String> = serde_yaml_ng::from_str(aliases).unwrap();
        let names = Names {
            provider: &|p| p == "openai" || p == "claude",
            combo: &|c| c == "smart",
        };
        Aliases::new(&aliases, &names).map_err(|e| e.within("aliases"))
    }

    #[test]
    fn exact_chains_resolve_to_their_end() {
        let aliases = compile("{ gpt-4: gpt, gpt: openai/gpt-4o-mini, best: smart }").unwrap();
        assert_eq!(
            aliases.resolve("gpt-4").as_deref(),
            Some("openai/gpt-4o-mini")
        );
        assert_eq!(aliases.resolve("best").as_deref(), Some("smart"));
        assert_eq!(aliases.resolve("openai/gpt-4o-mini"), None);
        assert_eq!(aliases.resolve("smart"), None);
    }

    #[test]
    fn wildcards_carry_the_matched_part_and_the_most_specific_wins() {
        let aliases = compile(
            "{ 'claude-*': 'claude/claude-*', 'claude-3-*-latest': 'claude/claude-3-*', 'x-*': 'claude-*', sonnet: claude-sonnet-4-5 }",
        )
        .unwrap();
        assert_eq!(
            aliases.resolve("claude-sonnet-4-5").as_deref(),
            Some("claude/claude-sonnet-4-5")
        );
        assert_eq!(
            aliases.resolve("claude-3-opus-latest").as_deref(),
            Some("claude/claude-3-opus")
        );
        assert_eq!(
            aliases.resolve("x-haiku").as_deref(),
            Some("claude/claude-haiku")
        );
        assert_eq!(
            aliases.resolve("sonnet").as_deref(),
            Some("claude/claude-sonnet-4-5")
        );
        assert_eq!(aliases.resolve("gpt-4o"), None);
    }

    #[test]
    fn cycles_and_dangling_targets_are_errors_naming_the_chain() {
        let err = compile("{ a: b, b: c, c: a }").unwrap_err().to_string();
        assert!(err.contains("a → b → c → a"), "{err}");
        let err = compile("{ 'a-*': 'b-*', 'b-*': 'a-*' }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("loops"), "{err}");
        let err = compile("{ a: b, b: nowhere/x }").unwrap_err().to_string();
        assert!(
            err.contains("`nowhere/x`") && err.contains("a → b → nowhere/x"),
            "{err}"
        );
        let err = compile("{ a: gpt-4o }").unwrap_err().to_string();
        assert!(err.contains("aliases.a"), "{err}");
        let err = compile("{ smart: openai/x }").unwrap_err().to_string();
        assert!(err.contains("also a combo"), "{err}");
        let err = compile("{ a: 'openai/*' }").unwrap_err().to_string();
        assert!(err.contains("name has none"), "{err}");
    }
}
