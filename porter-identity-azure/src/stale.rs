//! Stale links on Azure: the credentials an app no longer wants — named by its previous deploy,
//! or (on the identities the deploy touches) named for the app in its namespace — and the proof,
//! from their names, that they are its own. A credential with a foreign name, or one named for
//! another app or service, is kept, with the reason.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::future::join_all;
use porter_identity_core::provider::per_group;
use porter_identity_core::{
    Binding, Cloud, Connection, ErrorKind, Evidence, Operation, Result, RunContext, StaleAction,
    StaleLink, StaleQuery, UnbindOutcome, Workload,
};

use crate::api::FederatedCredential;
use crate::names::{NameMarks, same_issuer};
use crate::operation as op;
use crate::provider::{AzureWorkloadIdentityProvider, identity_key, key_of};

/// The namespace and service account of a Kubernetes subject, if it is one.
fn service_account_of(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix("system:serviceaccount:")?;
    rest.split_once(':')
}

impl AzureWorkloadIdentityProvider {
    pub(crate) async fn find_stale(
        &self,
        run: &RunContext,
        query: &StaleQuery<'_>,
    ) -> Result<Vec<StaleLink>> {
        let issuer = self.issuer(run).await?.to_owned();
        // The identities this deploy and the previous one name, with a binding of each (the
        // connection to rebuild links with).
        let mut identities: BTreeMap<String, &Binding> = BTreeMap::new();
        for b in query.desired.iter().chain(query.previous) {
            if let Ok((rg, name)) = Self::identity_ref(b) {
                identities
                    .entry(identity_key(rg.as_str(), name.as_str()))
                    .or_insert(b);
            }
        }
        let desired: HashSet<(String, String)> = query
            .desired
            .iter()
            .filter_map(|b| Some((key_of(b)?, b.workload.subject())))
            .collect();
        let previous: HashMap<(String, String), &Binding> = query
            .previous
            .iter()
            .filter_map(|b| Some(((key_of(b)?, b.workload.subject()), b)))
            .collect();
        let listed = join_all(identities.iter().map(|(key, b)| {
            let issuer = issuer.as_str();
            async move {
                let (rg, name) = Self::identity_ref(b)?;
                let shared =
                    run.take_shared(&self.credentials_listing(issuer, rg.as_str(), name.as_str()));
                let held = match shared {
                    Some(held) => Ok(held),
                    None => self.list_credentials(run, rg.as_str(), name.as_str()).await,
                };
                match held {
                    Ok(held) => Ok((key.clone(), *b, held)),
                    // A deleted identity holds nothing.
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok((key.clone(), *b, Vec::new())),
                    Err(e) => Err(e),
                }
            }
        }))
        .await;
        let mut links = Vec::new();
        for result in listed {
            let (key, example, held) = result?;
            for credential in held {
                if !same_issuer(&credential.issuer, &issuer) {
                    continue;
                }
                let Some((ns, sa)) = service_account_of(&credential.subject) else {
                    continue;
                };
                let k = (key.clone(), credential.subject.clone());
                if desired.contains(&k) {
                    continue;
                }
                let prev = previous.get(&k).copied();
                if prev.is_none() && ns != query.namespace.as_str() {
                    continue;
                }
                if let Some(link) = judge(query, example, &credential, ns, sa, prev) {
                    links.push(link);
                }
            }
        }
        Ok(links)
    }

    /// Removes `links`, identities side by side and one identity's deletes one after another:
    /// Azure takes one write at a time per identity, so running them side by side would only
    /// queue them on the identity's lock while other identities wait for the gate.
    pub(crate) async fn remove_stale(
        &self,
        run: &RunContext,
        links: &[StaleLink],
    ) -> Vec<Result<UnbindOutcome>> {
        per_group(
            Cloud::Azure,
            links.iter().map(|link| key_of(&link.binding)),
            std::iter::repeat_with(|| None).take(links.len()).collect(),
            |group| async move {
                let mut out = Vec::with_capacity(group.len());
                for i in group {
                    out.push((i, self.remove_one(run, &links[i]).await));
                }
                out
            },
        )
        .await
    }

    async fn remove_one(&self, run: &RunContext, link: &StaleLink) -> Result<UnbindOutcome> {
        const OP: Operation = op::FEDERATED_IDENTITY_CREDENTIALS_DELETE;
        if let StaleAction::Keep { reason } = &link.action {
            return Err(OP.error(
                ErrorKind::Conflict,
                format!("{} is kept: {reason}", link.binding.workload),
            ));
        }
        let (rg, name) = Self::identity_ref(&link.binding)?;
        if let Some(id) = &link.resource_id {
            // Found and judged by stale_links: its name is the last part of its id.
            let credential = id.rsplit('/').next().unwrap_or_default();
            let existed = self
                .delete_credential(run, rg.as_str(), name.as_str(), credential)
                .await?;
            return Ok(if existed {
                UnbindOutcome::Deleted {
                    resource_id: id.clone(),
                }
            } else {
                UnbindOutcome::AlreadyAbsent
            });
        }
        // A link not read by stale_links (made by the caller): read the identity's credentials
        // and require their names to prove the binding's own.
        let issuer = self.issuer(run).await?.to_owned();
        let held = match self.list_credentials(run, rg.as_str(), name.as_str()).await {
            Ok(held) => held,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(UnbindOutcome::AlreadyAbsent),
            Err(e) => return Err(e),
        };
        self.unbind_one(run, &link.binding, &issuer, &held, true)
            .await
    }
}

/// What becomes of one credential that the desired set does not want, or `None` when it is
/// neither the app's nor named by the previous deploy (another app's business).
fn judge(
    query: &StaleQuery<'_>,
    example: &Binding,
    credential: &FederatedCredential,
    namespace: &str,
    service_account: &str,
    prev: Option<&Binding>,
) -> Option<StaleLink> {
    let marks = NameMarks::of(&credential.name);
    let in_namespace = namespace == query.namespace.as_str();
    let ours = (in_namespace && marks.is_app(query.app.as_str()))
        || prev.is_some_and(|p| marks.is(&p.workload));
    if ours {
        let binding = prev
            .filter(|p| marks.is(&p.workload))
            .cloned()
            .or_else(|| from_marks(example, &marks, namespace, service_account));
        let Some(binding) = binding else {
            tracing::warn!(credential = %credential.name, "named for the app, but its name does not rebuild a workload; left alone");
            return None;
        };
        return Some(StaleLink::remove(
            binding,
            Some(credential.id.clone()),
            Evidence::OwnershipMarks,
        ));
    }
    let prev = prev?;
    let reason = match marks {
        NameMarks::Foreign => format!(
            "credential {} has a name porter-identity does not make (made by hand or by another tool), so it is not provably this app's; unbind it explicitly if it should go",
            credential.name
        ),
        other => format!(
            "by its name, credential {} belongs to {}; porter-identity never removes another service's credential",
            credential.name,
            other.describe()
        ),
    };
    Some(StaleLink::keep(
        prev.clone(),
        Some(credential.id.clone()),
        Evidence::PreviousDeploy,
        reason,
    ))
}

/// The binding a credential was made for, rebuilt from its name and subject, on the identity of
/// `example`.
fn from_marks(
    example: &Binding,
    marks: &NameMarks,
    namespace: &str,
    service_account: &str,
) -> Option<Binding> {
    let NameMarks::Porter { app, service } = marks else {
        return None;
    };
    let workload = Workload::new(namespace, service_account, app, service).ok()?;
    let connection: Connection = example.connection.clone();
    Some(Binding::new(workload, connection))
}
