//! Kubernetes names: namespaces, service accounts, and the app/service labels they derive from.

use super::{shown, string_newtype};
use crate::{Error, Result};

const LABEL_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;

/// Checks a DNS-1123 label: 1–63 lowercase letters, digits and `-`, starting and ending
/// with a letter or digit.
fn check_label(field: &str, value: &str) -> Result<()> {
    let fix = "use 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label)";
    let problem = dns_label_problem(value, LABEL_MAX);
    match problem {
        Some(p) => Err(Error::invalid_input(
            field,
            format!("{} {p}", shown(value)),
            fix,
        )),
        None => Ok(()),
    }
}

fn dns_label_problem(value: &str, max: usize) -> Option<String> {
    if value.is_empty() {
        Some("is empty".to_owned())
    } else if value.chars().count() > max {
        Some(format!(
            "is {} characters; at most {max} are allowed",
            value.chars().count()
        ))
    } else if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        if c.is_ascii_uppercase() {
            Some(format!("contains upper-case {c:?}"))
        } else {
            Some(format!("contains {c:?}"))
        }
    } else if value.starts_with('-') || value.ends_with('-') {
        Some("must start and end with a letter or digit".to_owned())
    } else {
        None
    }
}

/// A DNS-1123 label (1–63 lowercase letters, digits and `-`, alphanumeric at both ends):
/// the form of Kubernetes namespaces and of porter.yaml app and service names.
///
/// ```
/// use porter_identity_core::KubernetesName;
/// assert!(KubernetesName::parse("service", "api").is_ok());
/// assert!(KubernetesName::parse("service", "API").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KubernetesName(String);

impl KubernetesName {
    /// Validates `value`; errors name `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self> {
        check_label(field, value)?;
        Ok(KubernetesName(value.to_owned()))
    }
}
string_newtype!(KubernetesName, |s: &str| Self::parse("name", s));

/// A Kubernetes namespace name (DNS-1123 label, at most 63 characters).
///
/// ```
/// use porter_identity_core::Namespace;
/// assert!(Namespace::parse("default").is_ok());
/// assert!(Namespace::parse(&"n".repeat(64)).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Namespace {
    /// Validates a namespace name.
    pub fn parse(value: &str) -> Result<Self> {
        check_label("namespace", value)?;
        Ok(Namespace(value.to_owned()))
    }
}
string_newtype!(Namespace);

/// A Kubernetes ServiceAccount name: a DNS-1123 subdomain (at most 253 characters of
/// lowercase letters, digits, `-` and `.`, each `.`-separated part alphanumeric at both ends).
///
/// [`ServiceAccountName::for_service`] derives the name porter-identity gives each service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAccountName(String);

/// How many hex digits of SHA-256 a shortened name keeps: 40 bits, so that two services
/// sharing a 52-character prefix collide with odds of about one in a trillion.
const HASH_HEX: usize = 10;

impl ServiceAccountName {
    /// Validates a ServiceAccount name.
    pub fn parse(value: &str) -> Result<Self> {
        let fix = "use at most 253 lowercase letters, digits, '-' and '.', each '.'-separated part starting and ending with a letter or digit (a DNS-1123 subdomain)";
        let len = value.chars().count();
        if len > SUBDOMAIN_MAX {
            return Err(Error::invalid_input(
                "serviceAccount",
                format!(
                    "{} is {} characters; at most {SUBDOMAIN_MAX} are allowed",
                    shown(value),
                    len
                ),
                fix,
            ));
        }
        for part in value.split('.') {
            if let Some(p) = dns_label_problem(part, SUBDOMAIN_MAX) {
                let p = if part.is_empty() {
                    "has an empty part (check for a leading, trailing or doubled '.')".to_owned()
                } else {
                    format!("has part {part:?} that {p}")
                };
                return Err(Error::invalid_input(
                    "serviceAccount",
                    format!("{} {p}", shown(value)),
                    fix,
                ));
            }
        }
        Ok(ServiceAccountName(value.to_owned()))
    }

    /// The ServiceAccount name of a porter.yaml service: `<app>-<service>`.
    ///
    /// Kept to 63 characters so that it also fits where Kubernetes wants a label (selectors,
    /// label values). A longer name keeps its first characters and ends in `-` plus 10 hex
    /// digits of a SHA-256 of the app and service names, so two services of one app never
    /// share a name and the same service always gets the same one.
    ///
    /// **Two apps can collide.** The name joins app and service with `-`, and both may contain
    /// `-`: app `shop` + service `admin-api` and app `shop-admin` + service `api` both give
    /// `shop-admin-api`. In one namespace they would share one service account, and so one
    /// cloud link. Providers guard against it: a link marked as another app's or service's (on
    /// AWS, the association's tags) is never changed or removed, and `bind` answers
    /// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) naming its owner. Resolve it by
    /// renaming one of the services (or apps), or by giving the workload an explicit name with
    /// [`Workload::new`](crate::Workload::new).
    ///
    /// ```
    /// use porter_identity_core::ServiceAccountName;
    /// assert_eq!(
    ///     ServiceAccountName::for_service("shop", "admin-api")?,
    ///     ServiceAccountName::for_service("shop-admin", "api")?,
    /// );
    /// # Ok::<(), porter_identity_core::Error>(())
    /// ```
    ///
    /// ```
    /// use porter_identity_core::ServiceAccountName;
    /// let sa = ServiceAccountName::for_service("shop", "api")?;
    /// assert_eq!(sa.as_str(), "shop-api");
    /// let long = ServiceAccountName::for_service(&"a".repeat(40), &"s".repeat(40))?;
    /// assert_eq!(long.as_str().len(), 63);
    /// # Ok::<(), porter_identity_core::Error>(())
    /// ```
    pub fn for_service(app: &str, service: &str) -> Result<Self> {
        check_label("app", app)?;
        check_label("service", service)?;
        let full = format!("{app}-{service}");
        if full.len() <= LABEL_MAX {
            return Ok(ServiceAccountName(full));
        }
        let hash = super::stable_hash_hex(&[app, service], HASH_HEX);
        // All characters are ASCII (validated above), so byte slicing is safe.
        let prefix = full[..LABEL_MAX - 1 - HASH_HEX].trim_end_matches('-');
        Ok(ServiceAccountName(format!("{prefix}-{hash}")))
    }

    /// Whether this name can be what [`for_service`](Self::for_service) derives for some
    /// service of `app`: `<app>-<service>`, or the hashed form of a long one. A provider's
    /// stale-link search reads only the links of such names (and of the names the previous
    /// deploy gave): a link of the app under an explicit name is found through the previous
    /// deploy.
    ///
    /// ```
    /// use porter_identity_core::ServiceAccountName;
    /// let derived = |app: &str, service: &str| ServiceAccountName::for_service(app, service).unwrap();
    /// assert!(derived("shop", "api").may_be_derived_for("shop"));
    /// assert!(!derived("shop", "api").may_be_derived_for("cart"));
    /// let long_app = "a".repeat(60);
    /// assert!(derived(&long_app, "worker").may_be_derived_for(&long_app));
    /// assert!(!derived(&long_app, "worker").may_be_derived_for("a"));
    /// ```
    pub fn may_be_derived_for(&self, app: &str) -> bool {
        let head = format!("{app}-");
        if self.0.starts_with(&head) {
            return true;
        }
        // The hashed form keeps the first characters of `<app>-<service>`: when `<app>-` is
        // longer than they are, they are all the app's, so the name can be checked whole.
        let kept = LABEL_MAX - 1 - HASH_HEX;
        let Some(prefix) = head.get(..kept) else {
            return false;
        };
        self.0
            .strip_prefix(prefix.trim_end_matches('-'))
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|hash| {
                hash.len() == HASH_HEX && hash.bytes().all(|b| b.is_ascii_hexdigit())
            })
    }
}
string_newtype!(ServiceAccountName);

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn labels_boundaries() {
        assert!(Namespace::parse(&"a".repeat(63)).is_ok());
        let e = Namespace::parse(&"a".repeat(64)).unwrap_err().to_string();
        assert!(e.contains("64 characters"), "{e}");
        assert!(Namespace::parse("a").is_ok());
        assert!(Namespace::parse("a-1").is_ok());
        for (bad, needle) in [
            ("", "empty"),
            ("-a", "start and end"),
            ("a-", "start and end"),
            ("Abc", "upper-case"),
            ("a_b", "'_'"),
            ("a.b", "'.'"),
            ("a/b", "'/'"),
        ] {
            let e = Namespace::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
            assert!(e.starts_with("invalid namespace"), "{e}");
        }
    }

    #[test]
    fn service_account_boundaries() {
        let ok = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(ok.len(), 253);
        assert!(ServiceAccountName::parse(&ok).is_ok());
        let too_long = format!("{ok}e");
        assert!(
            ServiceAccountName::parse(&too_long)
                .unwrap_err()
                .to_string()
                .contains("254")
        );
        assert!(
            ServiceAccountName::parse(&"a".repeat(64)).is_ok(),
            "a part may exceed 63"
        );
        for bad in ["", "a..b", ".a", "a.", "A", "a_b", "-a", "a.-b"] {
            assert!(ServiceAccountName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn for_service_short_is_plain() {
        let sa = ServiceAccountName::for_service("demo", "api").unwrap();
        assert_eq!(sa.as_str(), "demo-api");
        // exactly 63 stays as it is
        let app = "a".repeat(31);
        let svc = "s".repeat(31);
        let sa = ServiceAccountName::for_service(&app, &svc).unwrap();
        assert_eq!(sa.as_str(), format!("{app}-{svc}"));
        assert_eq!(sa.as_str().len(), 63);
    }

    #[test]
    fn for_service_long_is_hashed_stable_and_valid() {
        let app = "a".repeat(32);
        let svc = "s".repeat(31);
        let sa = ServiceAccountName::for_service(&app, &svc).unwrap();
        assert_eq!(sa.as_str().len(), 63);
        assert!(Namespace::parse(sa.as_str()).is_ok(), "a valid label: {sa}");
        assert_eq!(sa, ServiceAccountName::for_service(&app, &svc).unwrap());
        assert!(sa.as_str().starts_with(&format!("{app}-ssssss")));
    }

    #[test]
    fn services_sharing_a_63_char_prefix_never_collide() {
        let app = "payments-platform";
        let base = "x".repeat(63);
        let mut seen = HashSet::new();
        for i in 0..500 {
            let svc = format!("{}{i}", &base[..60 - i.to_string().len()]);
            let sa = ServiceAccountName::for_service(app, &svc).unwrap();
            assert!(sa.as_str().len() <= 63);
            assert!(seen.insert(sa.clone()), "collision on {sa}");
        }
        // two services that differ only after character 63 of the full name
        let a = ServiceAccountName::for_service(app, &format!("{}-one", "y".repeat(50))).unwrap();
        let b = ServiceAccountName::for_service(app, &format!("{}-two", "y".repeat(50))).unwrap();
        assert_ne!(a, b);
        assert_eq!(&a.as_str()[..45], &b.as_str()[..45]);
    }

    #[test]
    fn shortened_names_never_change() {
        // Renaming would move every long-named service to a new service account: pin one.
        let sa = ServiceAccountName::for_service(&"a".repeat(32), &"s".repeat(31)).unwrap();
        // sha256("a"×32 \0 "s"×31) begins d07490d5de.
        assert_eq!(
            sa.as_str(),
            format!("{}-{}-d07490d5de", "a".repeat(32), "s".repeat(19))
        );
    }

    #[test]
    fn trailing_dash_of_prefix_is_trimmed() {
        // the cut falls right after a '-': the result must not contain "--" before the hash
        let app = "a".repeat(51);
        let svc = "b".repeat(20);
        let sa = ServiceAccountName::for_service(&app, &svc).unwrap();
        assert!(!sa.as_str().contains("--"), "{sa}");
        assert!(Namespace::parse(sa.as_str()).is_ok());
    }

    #[test]
    fn every_derived_name_may_be_its_apps_and_few_are_anothers() {
        let apps = [
            "shop",
            "shop-admin",
            &"a".repeat(40),
            &"b".repeat(55),
            &"c".repeat(63),
        ];
        let services = ["api", "w", &"s".repeat(30), &"t".repeat(63)];
        for app in apps {
            for service in services {
                let sa = ServiceAccountName::for_service(app, service).unwrap();
                assert!(sa.may_be_derived_for(app), "{sa} of {app}/{service}");
                for other in ["cart", "b", &"a".repeat(41), "c"] {
                    assert!(!sa.may_be_derived_for(other), "{sa} is not {other}'s");
                }
            }
        }
        // Hashed names keep 52 characters: apps that share them cannot be told apart by name
        // (the link's own marks then decide).
        let sa = ServiceAccountName::for_service(&"c".repeat(63), "api").unwrap();
        assert!(sa.may_be_derived_for(&"c".repeat(62)));
        // A name made by hand, and one that only looks hashed.
        assert!(
            !ServiceAccountName::parse("default")
                .unwrap()
                .may_be_derived_for("shop")
        );
        let lookalike = format!("{}-zzzzzzzzzz", "c".repeat(52));
        assert!(
            !ServiceAccountName::parse(&lookalike)
                .unwrap()
                .may_be_derived_for(&"c".repeat(63))
        );
    }

    #[test]
    fn for_service_validates_inputs() {
        let e = ServiceAccountName::for_service("Demo", "api")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid app"), "{e}");
        let e = ServiceAccountName::for_service("demo", "api_v2")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid service"), "{e}");
    }
}
