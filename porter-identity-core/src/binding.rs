//! `Workload` and `Binding`: what every provider call takes.

use std::fmt;

use crate::{Connection, KubernetesName, Namespace, Result, ServiceAccountName};

/// A Kubernetes workload that gets a cloud identity: the ServiceAccount its pods run as,
/// in its namespace, and the porter app and service it belongs to.
///
/// ```
/// use porter_identity_core::Workload;
///
/// let w = Workload::for_service("default", "shop", "api")?;
/// assert_eq!(w.service_account().as_str(), "shop-api");
/// assert_eq!(w.subject(), "system:serviceaccount:default:shop-api");
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    namespace: Namespace,
    service_account: ServiceAccountName,
    app: KubernetesName,
    service: KubernetesName,
}

impl Workload {
    /// A workload with an explicit ServiceAccount name. Every name is validated.
    pub fn new(namespace: &str, service_account: &str, app: &str, service: &str) -> Result<Self> {
        Ok(Workload {
            namespace: Namespace::parse(namespace)?,
            service_account: ServiceAccountName::parse(service_account)?,
            app: KubernetesName::parse("app", app)?,
            service: KubernetesName::parse("service", service)?,
        })
    }

    /// The workload of porter service `service` of app `app`, whose ServiceAccount is
    /// [`ServiceAccountName::for_service`].
    pub fn for_service(namespace: &str, app: &str, service: &str) -> Result<Self> {
        Ok(Workload {
            namespace: Namespace::parse(namespace)?,
            service_account: ServiceAccountName::for_service(app, service)?,
            app: KubernetesName::parse("app", app)?,
            service: KubernetesName::parse("service", service)?,
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The ServiceAccount the pods run as.
    pub fn service_account(&self) -> &ServiceAccountName {
        &self.service_account
    }

    /// The porter app.
    pub fn app(&self) -> &KubernetesName {
        &self.app
    }

    /// The porter service.
    pub fn service(&self) -> &KubernetesName {
        &self.service
    }

    /// The subject of the ServiceAccount's tokens: `system:serviceaccount:<ns>:<sa>`.
    pub fn subject(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.service_account)
    }
}

/// The unit every provider call takes: a workload and the connection to give it.
///
/// ```
/// use porter_identity_core::{Binding, Connection, RoleRef, Workload};
///
/// let binding = Binding::new(
///     Workload::for_service("default", "shop", "api")?,
///     Connection::AwsRole { role: RoleRef::parse("shop-api-role")? },
/// );
/// assert_eq!(binding.to_string(), "default/shop-api -> awsRole shop-api-role");
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Who gets the identity.
    pub workload: Workload,
    /// Which identity.
    pub connection: Connection,
}

impl Binding {
    /// A binding of `connection` to `workload`.
    pub fn new(workload: Workload, connection: Connection) -> Self {
        Binding {
            workload,
            connection,
        }
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.workload, self.connection.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_validates_every_name() {
        assert!(Workload::new("ns", "sa.with.dots", "app", "svc").is_ok());
        let e = Workload::new("NS", "sa", "app", "svc")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid namespace"), "{e}");
        let e = Workload::new("ns", "sa_", "app", "svc")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid serviceAccount"), "{e}");
        let e = Workload::new("ns", "sa", "", "svc")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid app"), "{e}");
        let e = Workload::new("ns", "sa", "app", "s s")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid service"), "{e}");
    }
}
