//! What every feature's settings share: the error that names the field, and setters.
//!
//! Each feature defines its own settings type (defaults, setters, `validate()`), so that a
//! layer can be built in code; the YAML config (`config/`) is only one way to fill them in.
//! A settings error names the field relative to its settings; the config prefixes the
//! section it came from (`ttl` → `cache.ttl`).

use std::fmt;

/// Settings that cannot be used: the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    field: String,
    message: String,
}

impl SettingsError {
    /// `field` (a dotted path within the settings, or empty for the settings as a whole)
    /// and what is wrong with it.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field the error is about.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error seen from the enclosing section: `within("cache")` turns `ttl` into
    /// `cache.ttl`.
    pub fn within(mut self, section: &str) -> Self {
        self.field = if self.field.is_empty() {
            section.to_owned()
        } else {
            format!("{section}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for SettingsError {}

/// Builder-style setters (`fn ttl(mut self, ttl: Duration) -> Self`) for the named fields.
macro_rules! setters {
    ($ty:ty { $($(#[$doc:meta])* $field:ident: $field_ty:ty),* $(,)? }) => {
        impl $ty {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $field(mut self, $field: impl Into<$field_ty>) -> Self {
                    self.$field = $field.into();
                    self
                }
            )*
        }
    };
}
pub(crate) use setters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_from_the_outermost_section() {
        let err = SettingsError::new("threshold", "must be within 0..=1")
            .within("semantic")
            .within("cache");
        assert_eq!(
            err.to_string(),
            "cache.semantic.threshold: must be within 0..=1"
        );
        assert_eq!(
            SettingsError::new("", "at least one provider is required")
                .within("providers")
                .to_string(),
            "providers: at least one provider is required"
        );
    }
}
