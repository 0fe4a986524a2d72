//! Credential resolution: which integration serves each requested service for a user.
//!
//! Rules (CONTRACT.md): only `active` integrations; the user's own first; then an organization
//! integration visible to the user by its `shared_with`; between organizations the lowest id wins.
//! Pure: the caller loads the candidate rows and the user's memberships.

use mcp_events::{ResolvedService, Role, SharedWith};
use mcp_projections::rows::IntegrationRow;
use std::collections::BTreeMap;

/// The best integration for `service`, if any.
fn best<'a>(
    user_id: i64,
    roles: &BTreeMap<i64, Role>,
    candidates: &'a [IntegrationRow],
    service: &str,
) -> Option<&'a IntegrationRow> {
    let usable = candidates
        .iter()
        .filter(|i| i.service == service && i.status == "active");
    let personal = usable
        .clone()
        .filter(|i| i.user_id == Some(user_id))
        .min_by_key(|i| i.id);
    personal.or_else(|| {
        usable
            .filter(|i| visible(user_id, roles, i))
            .min_by_key(|i| (i.organization_id, i.id))
    })
}

fn visible(user_id: i64, roles: &BTreeMap<i64, Role>, integration: &IntegrationRow) -> bool {
    let Some(role) = integration.organization_id.and_then(|org| roles.get(&org)) else {
        return false;
    };
    integration
        .shared_with
        .as_deref()
        .and_then(SharedWith::parse)
        .is_some_and(|shared| shared.admits(user_id, *role))
}

/// Resolves each requested service; returns the resolved ones and the names that found nothing.
pub fn resolve(
    user_id: i64,
    roles: &BTreeMap<i64, Role>,
    candidates: &[IntegrationRow],
    services: &[String],
) -> (Vec<ResolvedService>, Vec<String>) {
    let mut resolved = Vec::new();
    let mut missing = Vec::new();
    for service in services {
        match best(user_id, roles, candidates, service) {
            Some(integration) => resolved.push(ResolvedService {
                service: service.clone(),
                integration_id: integration.id,
                secret_version: integration.secret_version,
                organization_id: integration.organization_id,
            }),
            None => missing.push(service.clone()),
        }
    }
    (resolved, missing)
}

/// Every service the user can lease now: personal ones first, then organization ones, no
/// duplicates (in integration order within personal, organization order after).
pub fn available_services(
    user_id: i64,
    roles: &BTreeMap<i64, Role>,
    candidates: &[IntegrationRow],
) -> Vec<String> {
    let mut ordered: Vec<&IntegrationRow> = candidates
        .iter()
        .filter(|i| i.status == "active")
        .filter(|i| i.user_id == Some(user_id) || visible(user_id, roles, i))
        .collect();
    ordered.sort_by_key(|i| (i.organization_id.is_some(), i.organization_id, i.id));
    let mut services: Vec<String> = Vec::new();
    for integration in ordered {
        if !services.contains(&integration.service) {
            services.push(integration.service.clone());
        }
    }
    services
}

#[cfg(test)]
mod tests {
    use super::*;

    fn personal(id: i64, service: &str, user: i64) -> IntegrationRow {
        IntegrationRow {
            id,
            service: service.into(),
            user_id: Some(user),
            organization_id: None,
            shared_with: None,
            status: "active".into(),
            secret_version: 1,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn org(id: i64, service: &str, organization: i64, shared: &str) -> IntegrationRow {
        IntegrationRow {
            user_id: None,
            organization_id: Some(organization),
            shared_with: Some(shared.into()),
            ..personal(id, service, 0)
        }
    }

    fn roles(pairs: &[(i64, Role)]) -> BTreeMap<i64, Role> {
        pairs.iter().copied().collect()
    }

    fn names(resolved: &[ResolvedService]) -> Vec<(String, i64)> {
        resolved
            .iter()
            .map(|r| (r.service.clone(), r.integration_id))
            .collect()
    }

    #[test]
    fn personal_beats_organization() {
        let rows = [org(1, "jira", 1, "all_members"), personal(2, "jira", 7)];
        let (resolved, missing) = resolve(7, &roles(&[(1, Role::Owner)]), &rows, &["jira".into()]);
        assert_eq!(names(&resolved), vec![("jira".into(), 2)]);
        assert!(missing.is_empty());
    }

    #[test]
    fn the_lowest_organization_id_wins() {
        let rows = [
            org(5, "jira", 3, "all_members"),
            org(6, "jira", 2, "all_members"),
        ];
        let r = roles(&[(2, Role::Member), (3, Role::Member)]);
        let (resolved, _) = resolve(7, &r, &rows, &["jira".into()]);
        assert_eq!(names(&resolved), vec![("jira".into(), 6)]);
    }

    #[test]
    fn shared_with_decides_visibility() {
        let rows = [
            org(1, "sentry", 1, "admins_only"),
            org(2, "notion", 1, "7,8"),
            org(3, "jira", 1, "8"),
        ];
        let services = ["sentry".into(), "notion".into(), "jira".into()];
        let (resolved, missing) = resolve(7, &roles(&[(1, Role::Member)]), &rows, &services);
        assert_eq!(names(&resolved), vec![("notion".into(), 2)]);
        assert_eq!(missing, vec!["sentry".to_string(), "jira".to_string()]);
        let (resolved, _) = resolve(7, &roles(&[(1, Role::Admin)]), &rows, &services);
        assert_eq!(resolved.len(), 2);
    }

    #[test]
    fn non_members_and_inactive_integrations_give_nothing() {
        let mut inactive = personal(2, "todoist", 7);
        inactive.status = "expired".into();
        let rows = [org(1, "jira", 1, "all_members"), inactive];
        let (resolved, missing) =
            resolve(7, &roles(&[]), &rows, &["jira".into(), "todoist".into()]);
        assert!(resolved.is_empty());
        assert_eq!(missing.len(), 2);
    }

    #[test]
    fn available_services_lists_personal_first_without_duplicates() {
        let rows = [
            org(1, "jira", 1, "all_members"),
            personal(2, "todoist", 7),
            org(3, "sentry", 2, "admins_only"),
            personal(4, "jira", 7),
            org(5, "notion", 1, "all_members"),
        ];
        let r = roles(&[(1, Role::Owner), (2, Role::Owner)]);
        assert_eq!(
            available_services(7, &r, &rows),
            vec!["todoist", "jira", "notion", "sentry"]
        );
    }
}
