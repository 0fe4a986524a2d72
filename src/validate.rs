//! Values checked once at the boundary: past a constructor, a value of these types is valid.

use serde_json::{Map, Value};
use std::fmt;

/// A service name: `^[a-z0-9][a-z0-9_.-]{0,63}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = text.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 64
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes[1..].iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
            });
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "{text:?} is not a service name (lowercase letters, digits, '_', '.', '-'; at most 64)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The rule of `ServiceName::parse`, for the OpenAPI document.
pub const SERVICE_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_.-]{0,63}$";

impl utoipa::PartialSchema for ServiceName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(SERVICE_NAME_PATTERN))
            .examples(["todoist"])
            .into()
    }
}

impl utoipa::ToSchema for ServiceName {}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name or similar text: trimmed, 1 to `max` characters, and nothing a backend cannot store
/// (PostgreSQL refuses NUL in text) or a terminal would act on (control characters).
pub fn text_field(
    field: &str,
    text: &str,
    max: usize,
) -> Result<String, crate::domain::DomainError> {
    let text = text.trim();
    let invalid = |why: &str| crate::domain::DomainError::Invalid(format!("the {field} {why}"));
    if text.is_empty() {
        return Err(invalid("is required"));
    }
    if text.chars().count() > max {
        return Err(invalid(&format!(
            "must not be longer than {max} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(text.to_owned())
}

/// Whether a string can be stored as text by both backends (PostgreSQL refuses NUL).
pub fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// Credentials as given by an operator: any JSON object.
pub fn parse_credentials(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("credentials must be a JSON object, e.g. {\"access_token\": \"...\"}".into()),
        // serde_json's message names line and column, never the input itself.
        Err(e) => Err(format!("credentials are not valid JSON: {e}")),
    }
}

/// A whole number of 1 or more (ids, limits, seconds), as the command line takes it.
pub fn positive(text: &str) -> Result<i64, String> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| "must be a whole number of 1 or more".to_owned())
}

/// A whole number of 0 or more.
pub fn non_negative(text: &str) -> Result<i64, String> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| "must be a whole number of 0 or more".to_owned())
}

/// [`positive`], as an unsigned number.
pub fn positive_u64(text: &str) -> Result<u64, String> {
    positive(text).map(|n| n as u64)
}

/// Whether a path segment can be a lease id at all (cheap check before touching storage).
pub fn looks_like_lease_id(text: &str) -> bool {
    text.len() <= 100
        && text.len() > 4
        && text.starts_with("lse_")
        && text[4..].bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_follow_the_contract_pattern() {
        for good in [
            "todoist",
            "a",
            "9x",
            "jira.cloud",
            "my_svc-2",
            &"a".repeat(64),
        ] {
            assert!(ServiceName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Jira", "_x", "-x", "a b", "é", &"a".repeat(65)] {
            assert!(ServiceName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_must_be_an_object() {
        assert!(parse_credentials(r#"{"access_token":"x"}"#).is_ok());
        assert!(parse_credentials("[1]").is_err());
        assert!(parse_credentials("{nope").is_err());
    }

    #[test]
    fn numbers_from_the_command_line_are_whole_and_in_range() {
        assert_eq!(positive("7"), Ok(7));
        for bad in ["0", "-3", "abc", "1.5", ""] {
            assert!(positive(bad).is_err(), "{bad}");
        }
        assert_eq!(non_negative("0"), Ok(0));
        assert!(non_negative("-1").is_err());
        assert_eq!(positive_u64("30"), Ok(30));
    }

    #[test]
    fn lease_ids_are_checked_before_storage_is_touched() {
        let id = format!(
            "lse_{}",
            crate::random::base62(&crate::random::OsEntropy, 48)
        );
        assert!(looks_like_lease_id(&id));
        assert!(!looks_like_lease_id("lse_../etc"));
        assert!(!looks_like_lease_id("x\0y"));
        assert!(!looks_like_lease_id("lse_"));
    }

    #[test]
    fn text_fields_refuse_what_backends_or_terminals_cannot_take() {
        assert_eq!(text_field("name", "  Ada ", 10).unwrap(), "Ada");
        for bad in ["", "   ", "a\0b", "a\u{1b}[31m", "elevenchars"] {
            assert!(text_field("name", bad, 10).is_err(), "{bad:?}");
        }
        assert!(storable("ok") && !storable("x\0y"));
    }
}
