//! `Workload` and `Binding`: what every provider call takes.

use std::collections::HashMap;
use std::fmt;

use crate::{Cloud, Connection, Error, KubernetesName, Namespace, Result, ServiceAccountName};

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
///     Connection::aws_role(RoleRef::parse("shop-api-role")?),
/// );
/// assert_eq!(binding.to_string(), "default/shop-api -> awsRole shop-api-role");
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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

impl Binding {
    /// The natural key of the link this binding makes, within one provider (one cluster):
    /// what the cloud keeps one link per. `None` for a connection of no cloud.
    ///
    /// - AWS: (namespace, service account). EKS holds one Pod Identity association per service
    ///   account, so the same workload bound to another role is the *same* link, re-pointed.
    /// - Azure: (managed identity, namespace, service account): one federated identity
    ///   credential per identity and subject; another identity is another link.
    /// - GCP: (service account email, namespace, service account): one member on one GCP
    ///   service account's policy; another GCP service account is another link.
    ///
    /// The reconciler compares keys to tell a link that moved (same key, new identity: bind
    /// updates it) from one that is stale (its key is no longer desired: it is removed).
    ///
    /// ```
    /// use porter_identity_core::{Binding, Connection, RoleRef, Workload};
    /// let api = Workload::for_service("prod", "shop", "api")?;
    /// let to = |role: &str| Binding::new(api.clone(), Connection::aws_role(RoleRef::parse(role).unwrap()));
    /// // On AWS, moving a workload to another role keeps its link (EKS updates it in place).
    /// assert_eq!(to("role-a").link_key(), to("role-b").link_key());
    /// # Ok::<(), porter_identity_core::Error>(())
    /// ```
    pub fn link_key(&self) -> Option<LinkKey> {
        let identity = match &self.connection {
            Connection::AwsRole { .. } => None,
            // ARM resource names and emails compare without case.
            Connection::AzureManagedIdentity {
                identity_name,
                resource_group,
            } => Some(format!("{resource_group}/{identity_name}").to_ascii_lowercase()),
            Connection::GcpServiceAccount {
                service_account_email,
            } => Some(service_account_email.as_str().to_ascii_lowercase()),
            Connection::Other { .. } => return None,
        };
        Some(LinkKey {
            cloud: self.connection.cloud()?,
            namespace: self.workload.namespace.clone(),
            service_account: self.workload.service_account.clone(),
            identity,
        })
    }
}

/// The natural key of a link; see [`Binding::link_key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkKey {
    cloud: Cloud,
    namespace: Namespace,
    service_account: ServiceAccountName,
    identity: Option<String>,
}

impl LinkKey {
    /// The cloud of the link.
    pub fn cloud(&self) -> Cloud {
        self.cloud
    }

    /// The namespace of the linked service account.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The linked service account.
    pub fn service_account(&self) -> &ServiceAccountName {
        &self.service_account
    }
}

impl fmt::Display for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.cloud, self.namespace, self.service_account
        )?;
        if let Some(identity) = &self.identity {
            write!(f, " on {identity}")?;
        }
        Ok(())
    }
}

/// For each binding of a batch, why a provider refuses it before any cloud call, or `None`:
/// `admit` says why the provider cannot take it (another cloud's binding) and, when
/// `conflicts` (plan and bind), [`link_conflicts`] finds the ones fighting over one link with
/// an earlier binding. `admit`'s reason wins.
///
/// ```
/// use porter_identity_core::{Binding, Cloud, Connection, RoleRef, Workload};
/// use porter_identity_core::provider::{batch_refusals, ensure_cloud};
/// let api = Workload::for_service("prod", "shop", "api")?;
/// let to = |role: &str| Binding::new(api.clone(), Connection::aws_role(RoleRef::parse(role).unwrap()));
/// let batch = [to("a"), to("b")];
/// let refused = batch_refusals(&batch, true, |b| ensure_cloud(Cloud::Aws, b));
/// assert!(refused[0].is_none() && refused[1].is_some());
/// assert!(batch_refusals(&batch, false, |b| ensure_cloud(Cloud::Aws, b)).iter().all(Option::is_none));
/// assert!(batch_refusals(&batch, true, |b| ensure_cloud(Cloud::Azure, b)).iter().all(Option::is_some));
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
pub fn batch_refusals(
    bindings: &[Binding],
    conflicts: bool,
    admit: impl Fn(&Binding) -> Result<(), Error>,
) -> Vec<Option<Error>> {
    let mut refused: Vec<Option<Error>> = if conflicts {
        link_conflicts(bindings)
    } else {
        bindings.iter().map(|_| None).collect()
    };
    for (b, r) in bindings.iter().zip(refused.iter_mut()) {
        if let Err(e) = admit(b) {
            *r = Some(e);
        }
    }
    refused
}

/// For each binding of a batch, the error that makes it unbindable together with the others:
/// an earlier binding has the same [`link key`](Binding::link_key) but another connection
/// (two roles for one EKS service account), or is another app's or service's (two services
/// running as one service account), so the two would fight over one link. Exact repeats are
/// not conflicts. The first binding of a key is never refused.
///
/// ```
/// use porter_identity_core::{Binding, Connection, RoleRef, Workload};
/// use porter_identity_core::provider::link_conflicts;
/// let api = Workload::for_service("prod", "shop", "api")?;
/// let to = |role: &str| Binding::new(api.clone(), Connection::aws_role(RoleRef::parse(role).unwrap()));
/// let found = link_conflicts(&[to("a"), to("a"), to("b")]);
/// assert!(found[0].is_none() && found[1].is_none());
/// assert!(found[2].as_ref().unwrap().to_string().contains("bindings[0]"));
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
pub fn link_conflicts(bindings: &[Binding]) -> Vec<Option<Error>> {
    let mut first: HashMap<LinkKey, usize> = HashMap::new();
    bindings
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let key = b.link_key()?;
            let j = *first.entry(key.clone()).or_insert(i);
            let earlier = &bindings[j];
            if earlier == b {
                return None;
            }
            let problem = if earlier.workload == b.workload {
                format!(
                    "links {} to {}, but bindings[{j}] links the same {key} to {}; one {} link per key",
                    b.workload,
                    b.connection.describe(),
                    earlier.connection.describe(),
                    key.cloud
                )
            } else {
                format!(
                    "is service `{}` of app `{}`, but bindings[{j}] is service `{}` of app `{}` on the same {key}; one link cannot belong to both",
                    b.workload.service(),
                    b.workload.app(),
                    earlier.workload.service(),
                    earlier.workload.app()
                )
            };
            Some(Error::invalid_input(
                format!("bindings[{i}]"),
                problem,
                "keep one connection per service account and cloud: give the services their own service accounts, or remove one of the two bindings",
            ))
        })
        .collect()
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
