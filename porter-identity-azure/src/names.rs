//! Names of federated identity credentials — deterministic, collision-free, and carrying the
//! marks of the app and service they were made for — and how issuers compare.
//!
//! Federated identity credentials have no tags, so the name is the ownership mark:
//! `pi_<app>_<service>_<hash>`. App and service names are DNS labels (no `_`), so the name
//! splits back into them unambiguously; the hash covers the cluster's issuer, the namespace and
//! the service account, so two clusters, or two long names shortened alike, never share a
//! name.

use porter_identity_core::Workload;
use porter_identity_core::provider::stable_hash_hex;

/// What every credential name porter-identity makes starts with.
pub(crate) const NAME_PREFIX: &str = "pi";

/// The audience every credential for Kubernetes workload identity has, and the only one.
pub(crate) const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The longest credential name Azure accepts (`^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$`).
pub(crate) const MAX_NAME_LEN: usize = 120;

/// Hex digits of the hash at the end of a name: 48 bits, so names collide with odds of about
/// one in 10^14 per pair.
const HASH_HEX: usize = 12;

/// Room for app and service together: the name less its prefix, three `_` and the hash.
const MARKS_MAX: usize = MAX_NAME_LEN - NAME_PREFIX.len() - 3 - HASH_HEX;

/// The app and service as they stand in a name: whole, or cut to fit 120 characters (app to at
/// most half the room).
fn marks_of(workload: &Workload) -> (String, String) {
    let (app, service) = (workload.app().as_str(), workload.service().as_str());
    if app.len() + service.len() <= MARKS_MAX {
        return (app.to_owned(), service.to_owned());
    }
    // DNS labels are ASCII, so byte cuts are character cuts.
    let app_room = app.len().min(MARKS_MAX / 2);
    let service_room = service.len().min(MARKS_MAX - app_room);
    (
        app[..app_room].to_owned(),
        service[..service_room].to_owned(),
    )
}

/// The name of the credential that links `workload` to a managed identity for the cluster
/// whose OIDC issuer is `issuer`: `pi_<app>_<service>_<12 hex digits>`.
pub fn credential_name(issuer: &str, workload: &Workload) -> String {
    let (app, service) = marks_of(workload);
    let hash = stable_hash_hex(
        &[
            issuer,
            workload.namespace().as_str(),
            workload.service_account().as_str(),
        ],
        HASH_HEX,
    );
    format!("{NAME_PREFIX}_{app}_{service}_{hash}")
}

/// What a credential's name says about who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameMarks {
    /// Not a porter-identity name: made by hand or by another tool.
    Foreign,
    /// A porter-identity name, made for this app and service (as they stand in the name,
    /// shortened if they were long).
    Porter {
        /// The app in the name.
        app: String,
        /// The service in the name.
        service: String,
    },
}

impl NameMarks {
    /// Reads a credential name.
    pub(crate) fn of(name: &str) -> Self {
        let mut parts = name.split('_');
        let (Some(prefix), Some(app), Some(service), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return NameMarks::Foreign;
        };
        let label = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let hex = hash.len() == HASH_HEX
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if prefix == NAME_PREFIX && label(app) && label(service) && hex {
            NameMarks::Porter {
                app: app.to_owned(),
                service: service.to_owned(),
            }
        } else {
            NameMarks::Foreign
        }
    }

    /// Whether the marks name this workload's app and service.
    pub(crate) fn is(&self, workload: &Workload) -> bool {
        match self {
            NameMarks::Foreign => false,
            NameMarks::Porter { app, service } => {
                let (a, s) = marks_of(workload);
                *app == a && *service == s
            }
        }
    }

    /// Whether the marks name `app`: whole, or cut as a long app is cut in a name.
    pub(crate) fn is_app(&self, app: &str) -> bool {
        match self {
            NameMarks::Foreign => false,
            NameMarks::Porter { app: marked, .. } => {
                marked == app || (marked.len() == MARKS_MAX / 2 && app.starts_with(marked.as_str()))
            }
        }
    }

    /// `service `api` of app `shop``, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            NameMarks::Foreign => {
                "no porter-identity app (its name is not one porter-identity makes)".to_owned()
            }
            NameMarks::Porter { app, service } => format!("service `{service}` of app `{app}`"),
        }
    }
}

/// Whether a credential's issuer is the cluster's. Entra ID compares the issuer of a token with
/// the credential's issuer as exact, case-sensitive strings: `https://x/` and `https://x` are
/// two issuers, and a token of one is refused by a credential of the other. AKS issuer URLs end
/// in `/`. So issuers here compare exactly, never normalised.
pub(crate) fn same_issuer(credential: &str, cluster: &str) -> bool {
    credential == cluster
}

/// Whether two issuers differ only by a trailing `/`: the mistake verify points out, since
/// such a credential looks right and never works.
pub(crate) fn differ_only_by_trailing_slash(a: &str, b: &str) -> bool {
    a != b && a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const ISSUER: &str = "https://eastus.oic.prod-aks.azure.com/tenant-guid/issuer-guid/";

    fn name_ok(name: &str) -> bool {
        let bytes = name.as_bytes();
        (3..=MAX_NAME_LEN).contains(&name.len())
            && bytes[0].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    }

    #[test]
    fn names_match_azures_rule_and_read_back() {
        let w = Workload::for_service("prod", "shop", "admin-api").unwrap();
        let name = credential_name(ISSUER, &w);
        assert!(name_ok(&name), "{name}");
        assert_eq!(name, credential_name(ISSUER, &w), "deterministic");
        let marks = NameMarks::of(&name);
        assert!(marks.is(&w));
        assert!(marks.is_app("shop"));
        assert_eq!(marks.describe(), "service `admin-api` of app `shop`");
    }

    #[test]
    fn two_clusters_never_share_a_name() {
        let w = Workload::for_service("prod", "shop", "api").unwrap();
        let a = credential_name("https://oidc.example/t/cluster-a/", &w);
        let b = credential_name("https://oidc.example/t/cluster-b/", &w);
        assert_ne!(a, b);
        // Not even an issuer that differs only by its trailing slash.
        assert_ne!(
            credential_name("https://oidc.example/t/c/", &w),
            credential_name("https://oidc.example/t/c", &w)
        );
    }

    #[test]
    fn the_longest_names_fit_and_stay_apart() {
        let app = "a".repeat(63);
        let mut seen = HashSet::new();
        for i in 0..300 {
            let service = format!("{}{i}", "s".repeat(60 - i.to_string().len()));
            let w = Workload::for_service("prod", &app, &service).unwrap();
            let name = credential_name(ISSUER, &w);
            assert!(name_ok(&name), "{name} ({} characters)", name.len());
            assert!(NameMarks::of(&name).is(&w), "{name}");
            assert!(seen.insert(name), "collision for service {service}");
        }
        // An explicit service account name longer than any label still hashes apart.
        let a = Workload::new("prod", &format!("{}.one", "x".repeat(200)), "app", "svc").unwrap();
        let b = Workload::new("prod", &format!("{}.two", "x".repeat(200)), "app", "svc").unwrap();
        assert_ne!(credential_name(ISSUER, &a), credential_name(ISSUER, &b));
    }

    #[test]
    fn colliding_service_accounts_of_two_apps_have_distinct_marks() {
        let shop = Workload::for_service("prod", "shop", "admin-api").unwrap();
        let shop_admin = Workload::for_service("prod", "shop-admin", "api").unwrap();
        assert_eq!(shop.subject(), shop_admin.subject());
        let marks = NameMarks::of(&credential_name(ISSUER, &shop));
        assert!(marks.is(&shop));
        assert!(!marks.is(&shop_admin));
        assert!(!marks.is_app("shop-admin"));
    }

    #[test]
    fn foreign_names_are_not_marks() {
        for name in [
            "ficResourceName",
            "pi_shop_api",
            "pi_shop_api_xyz",
            "pi_Shop_api_0123456789ab",
            "pi_shop_api_0123456789AB",
            "pi_shop_api_0123456789ab_extra",
            "px_shop_api_0123456789ab",
            "pi__api_0123456789ab",
        ] {
            assert_eq!(NameMarks::of(name), NameMarks::Foreign, "{name}");
        }
    }

    #[test]
    fn issuers_compare_exactly_as_entra_does() {
        assert!(same_issuer(ISSUER, ISSUER));
        let without = ISSUER.trim_end_matches('/');
        assert!(
            !same_issuer(without, ISSUER),
            "a trailing slash makes another issuer"
        );
        assert!(!same_issuer(&ISSUER.to_uppercase(), ISSUER), "case matters");
        assert!(differ_only_by_trailing_slash(without, ISSUER));
        assert!(!differ_only_by_trailing_slash(ISSUER, ISSUER));
        assert!(!differ_only_by_trailing_slash("https://a/", "https://b/"));
    }
}

/// The examples that documented these items while they were public, kept as tests.
#[cfg(test)]
mod examples {
    #[test]
    fn example_of_credential_name() -> Result<(), porter_identity_core::Error> {
        use crate::names::credential_name;
        use porter_identity_core::Workload;
        let w = Workload::for_service("prod", "shop", "api")?;
        let name = credential_name("https://oidc.example/tenant/cluster/", &w);
        assert!(name.starts_with("pi_shop_api_"));
        assert_eq!(name.len(), "pi_shop_api_".len() + 12);
        Ok::<(), porter_identity_core::Error>(())
    }

    #[test]
    fn example_of_of() {
        use crate::names::NameMarks;
        assert_eq!(
            NameMarks::of("pi_shop_admin-api_0123456789ab"),
            NameMarks::Porter {
                app: "shop".into(),
                service: "admin-api".into()
            }
        );
        assert_eq!(
            NameMarks::of("kubernetes-federated-credential"),
            NameMarks::Foreign
        );
    }
}
