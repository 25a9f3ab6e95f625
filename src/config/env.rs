//! `os.environ/NAME` substitution, done on the YAML tree before it is typed, so every
//! string value anywhere in the file can come from the environment.

use serde_yaml_ng::Value;

const PREFIX: &str = "os.environ/";

/// Replaces every string `os.environ/NAME` in `value` with the variable's value.
/// `lookup` is `std::env::var` outside tests. The error names the field and the variable.
pub(super) fn substitute(
    value: &mut Value,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    match value {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix(PREFIX) {
                match lookup(name) {
                    Some(v) => *s = v,
                    None => {
                        return Err(format!(
                            "{}: environment variable `{name}` is not set (from `{PREFIX}{name}`)",
                            display_path(path)
                        ))
                    }
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                substitute(item, path, lookup)?;
                path.pop();
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                path.push(
                    key.as_str()
                        .map_or_else(|| format!("{key:?}"), str::to_owned),
                );
                substitute(item, path, lookup)?;
                path.pop();
            }
        }
        Value::Tagged(tagged) => substitute(&mut tagged.value, path, lookup)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

fn display_path(path: &[String]) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        path.join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str) -> Result<Value, String> {
        let mut value: Value = serde_yaml_ng::from_str(yaml).unwrap();
        let lookup = |name: &str| (name == "SET").then(|| "secret".to_owned());
        substitute(&mut value, &mut Vec::new(), &lookup).map(|()| value)
    }

    #[test]
    fn replaces_nested_values() {
        let value = run("a: { b: [x, os.environ/SET] }").unwrap();
        assert_eq!(value["a"]["b"][1].as_str(), Some("secret"));
        assert_eq!(value["a"]["b"][0].as_str(), Some("x"));
    }

    #[test]
    fn unset_variables_are_named_with_their_field() {
        let err = run("providers: { openai: { api_key: os.environ/OPENAI_API_KEY } }").unwrap_err();
        assert!(err.contains("providers.openai.api_key"), "{err}");
        assert!(err.contains("`OPENAI_API_KEY` is not set"), "{err}");
    }
}
