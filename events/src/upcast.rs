//! Upcasting: old event versions are translated on read, never rewritten in the log.
//!
//! To change a payload: bump `CURRENT_EVENT_VERSION` handling for that type, add an entry to
//! `UPCASTERS` that turns version N into N+1, and the log stays readable from its first event.

use crate::vocabulary::CURRENT_EVENT_VERSION;
use serde_json::Value;

/// `(event_type, from_version, step)`: each step lifts a payload by exactly one version.
type Upcaster = (&'static str, i64, fn(Value) -> Value);

/// No event type has changed shape yet.
const UPCASTERS: &[Upcaster] = &[];

pub fn upcast(event_type: &str, version: i64, payload: Value) -> Result<Value, String> {
    upcast_with(
        UPCASTERS,
        CURRENT_EVENT_VERSION,
        event_type,
        version,
        payload,
    )
}

fn upcast_with(
    upcasters: &[Upcaster],
    current: i64,
    event_type: &str,
    mut version: i64,
    mut payload: Value,
) -> Result<Value, String> {
    if version > current {
        return Err(format!(
            "version {version} is newer than this build understands"
        ));
    }
    while version < current {
        let step = upcasters
            .iter()
            .find(|(t, from, _)| *t == event_type && *from == version)
            .ok_or_else(|| format!("no upcaster from version {version}"))?;
        payload = (step.2)(payload);
        version += 1;
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rename_label(mut v: Value) -> Value {
        if let Some(label) = v.as_object_mut().and_then(|m| m.remove("label")) {
            v["name"] = label;
        }
        v
    }

    fn add_default_flag(mut v: Value) -> Value {
        v["flag"] = json!(false);
        v
    }

    #[test]
    fn old_versions_are_lifted_step_by_step() {
        let steps: &[Upcaster] = &[("thing", 1, rename_label), ("thing", 2, add_default_flag)];
        let lifted = upcast_with(steps, 3, "thing", 1, json!({"label": "x"})).unwrap();
        assert_eq!(lifted, json!({"name": "x", "flag": false}));
    }

    #[test]
    fn current_versions_pass_through_untouched() {
        let v = json!({"a": 1});
        assert_eq!(upcast_with(&[], 1, "thing", 1, v.clone()).unwrap(), v);
    }

    #[test]
    fn missing_steps_and_future_versions_are_errors() {
        assert!(upcast_with(&[], 2, "thing", 1, json!({})).is_err());
        assert!(upcast_with(&[], 1, "thing", 2, json!({})).is_err());
    }
}
