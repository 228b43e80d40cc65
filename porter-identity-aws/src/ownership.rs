//! Who an association belongs to: porter-identity's ownership marks (the tags it puts on every
//! association it creates) and the guard that keeps one workload from changing or removing
//! another's.
//!
//! Service-account names can collide across apps: app `shop` + service `admin-api` and app
//! `shop-admin` + service `api` both run as `shop-admin-api`. EKS keeps one association per
//! service account, so without the guard the second app would re-point (or unbind would
//! delete) the first app's association.

use std::collections::BTreeMap;

use porter_identity_core::{Binding, Error, ErrorKind, Operation, Workload};

use crate::api::Association;

/// Tag marking an association as made by porter-identity.
pub const TAG_MANAGED_BY: &str = "managed-by";
/// Value of [`TAG_MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "porter-identity";
/// Tag naming the porter app of an association.
pub const TAG_APP: &str = "porter-identity/app";
/// Tag naming the porter service of an association.
pub const TAG_SERVICE: &str = "porter-identity/service";

/// The tags of an association made for `workload`.
pub(crate) fn tags_for(workload: &Workload) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (TAG_APP.to_owned(), workload.app().to_string()),
        (TAG_SERVICE.to_owned(), workload.service().to_string()),
    ])
}

/// What an association's tags say about who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// No porter-identity tag: made by hand or by another tool. Adopted by `bind` and
    /// `unbind`, never removed as stale.
    Unmarked,
    /// Carries porter-identity's marks: `managed` when `managed-by: porter-identity` is among
    /// them; `app` and `service` as tagged (`None` where a tag is missing).
    Marked {
        managed: bool,
        app: Option<String>,
        service: Option<String>,
    },
}

impl Owner {
    /// Reads the marks of `tags`: any of the three tags makes the association marked.
    pub(crate) fn of(tags: &BTreeMap<String, String>) -> Self {
        let app = tags.get(TAG_APP).cloned();
        let service = tags.get(TAG_SERVICE).cloned();
        let managed = tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE);
        if managed || app.is_some() || service.is_some() {
            Owner::Marked {
                managed,
                app,
                service,
            }
        } else {
            Owner::Unmarked
        }
    }

    /// Whether the marks name exactly this workload's app and service: it may change it.
    pub(crate) fn is(&self, workload: &Workload) -> bool {
        matches!(self, Owner::Marked { app: Some(app), service: Some(service), .. }
            if app == workload.app().as_str() && service == workload.service().as_str())
    }

    /// Whether the marks prove porter-identity made it for `app` (whatever the service):
    /// `managed-by: porter-identity` and the app tag. The proof a stale link needs to go.
    pub(crate) fn proves_app(&self, app: &str) -> bool {
        matches!(self, Owner::Marked { managed: true, app: Some(a), .. } if a == app)
    }

    /// Whether the marks prove porter-identity made it for this very workload.
    pub(crate) fn proves(&self, workload: &Workload) -> bool {
        self.proves_app(workload.app().as_str()) && self.is(workload)
    }

    /// `service `api` of app `shop``, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Owner::Unmarked => "no porter-identity app (it has no porter-identity tags)".to_owned(),
            Owner::Marked { app, service, .. } => format!(
                "service `{}` of app `{}`",
                service.as_deref().unwrap_or("(untagged)"),
                app.as_deref().unwrap_or("(untagged)")
            ),
        }
    }
}

/// Checks that `binding` may change or remove `association`: unmarked (adopted) or marked for
/// its own app and service. Otherwise a `Conflict` naming the owner and how to resolve it.
pub(crate) fn check(
    binding: &Binding,
    association: &Association,
    cluster: &str,
    operation: Operation,
) -> Result<(), Error> {
    let owner = Owner::of(&association.tags);
    if owner == Owner::Unmarked || owner.is(&binding.workload) {
        return Ok(());
    }
    Err(conflict(binding, &owner, cluster, operation))
}

/// The error for `binding` meeting an association of another `owner`.
pub(crate) fn conflict(
    binding: &Binding,
    owner: &Owner,
    cluster: &str,
    operation: Operation,
) -> Error {
    let w = &binding.workload;
    operation
        .error(
            ErrorKind::Conflict,
            format!(
                "the Pod Identity association of {w} in cluster {cluster} belongs to {} (its tags \
             {TAG_APP} and {TAG_SERVICE}), not to service `{}` of app `{}`; porter-identity never \
             changes or removes another service's association",
                owner.describe(),
                w.service(),
                w.app()
            ),
        )
        .with_fix(format!(
            "both services run as service account {}: rename service `{}` or app `{}` so that \
         their service account names differ, or give this workload an explicit service account \
         name (Workload::new(namespace, service_account, app, service))",
            w.service_account(),
            w.service(),
            w.app()
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn marks_are_read_from_any_of_the_three_tags() {
        assert_eq!(Owner::of(&tags(&[])), Owner::Unmarked);
        assert_eq!(Owner::of(&tags(&[("team", "x")])), Owner::Unmarked);
        assert_eq!(
            Owner::of(&tags(&[("managed-by", "terraform")])),
            Owner::Unmarked
        );
        let w = Workload::for_service("prod", "shop", "admin-api").unwrap();
        let ours = Owner::of(&tags_for(&w));
        assert!(ours.is(&w));
        assert!(ours.proves(&w));
        assert!(ours.proves_app("shop"));
        let only_app = Owner::of(&tags(&[(TAG_APP, "shop")]));
        assert!(
            !only_app.is(&w),
            "a missing service tag is not this service"
        );
        assert!(
            !only_app.proves_app("shop"),
            "without managed-by, an app tag proves nothing"
        );
        let hand_tagged = Owner::of(&tags(&[(TAG_APP, "shop"), (TAG_SERVICE, "admin-api")]));
        assert!(hand_tagged.is(&w) && !hand_tagged.proves(&w));
        let managed_only = Owner::of(&tags(&[(TAG_MANAGED_BY, MANAGED_BY_VALUE)]));
        assert_ne!(managed_only, Owner::Unmarked);
        assert!(managed_only.describe().contains("(untagged)"));
    }

    #[test]
    fn colliding_service_account_names_are_told_apart_by_the_marks() {
        let shop = Workload::for_service("prod", "shop", "admin-api").unwrap();
        let shop_admin = Workload::for_service("prod", "shop-admin", "api").unwrap();
        assert_eq!(shop.service_account(), shop_admin.service_account());
        let owner = Owner::of(&tags_for(&shop));
        assert!(owner.is(&shop));
        assert!(!owner.is(&shop_admin));
        let other_service = Workload::new("prod", "shop-admin-api", "shop", "worker").unwrap();
        assert!(!owner.is(&other_service));
    }
}
