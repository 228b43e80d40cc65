//! Stale links on AWS: the associations an app no longer wants — named by its previous deploy,
//! or tagged with the app in its namespace — and the proof, from their tags, that they are its
//! own. An association without porter-identity's tags, one an EKS add-on owns, and one tagged
//! with another app are kept, each with the reason.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use porter_identity_core::{
    AwsRoleMode, Binding, Connection, ErrorKind, Evidence, Operation, Result, RoleRef, RunContext,
    ServiceAccountName, StaleAction, StaleLink, StaleQuery, UnbindOutcome, Workload,
};

use crate::api::{Association, AssociationSummary};
use crate::operation as op;
use crate::ownership::Owner;
use crate::provider::AwsPodIdentityProvider;

impl AwsPodIdentityProvider {
    pub(crate) async fn find_stale(
        &self,
        run: &RunContext,
        query: &StaleQuery<'_>,
    ) -> Result<Vec<StaleLink>> {
        let key = |b: &Binding| {
            (
                b.workload.namespace().to_string(),
                b.workload.service_account().to_string(),
            )
        };
        let desired: HashSet<(String, String)> = query.desired.iter().map(key).collect();
        let previous: HashMap<(String, String), usize> = query
            .previous
            .iter()
            .enumerate()
            .map(|(i, b)| (key(b), i))
            .collect();
        let namespaces: BTreeSet<&str> = std::iter::once(query.namespace.as_str())
            .chain(
                query
                    .previous
                    .iter()
                    .map(|b| b.workload.namespace().as_str()),
            )
            .collect();
        // The binds of this reconcile listed the namespace moments ago: use that listing (or
        // its failure: listing again would spend a second retry budget on an endpoint that
        // just gave up). Only associations the desired set does not want matter here, and the
        // binds touched none.
        let listed = join_all(namespaces.iter().map(|ns| async move {
            match run.take_shared(&self.namespace_listing(ns)) {
                Some(listed) => listed,
                None => self.list_all(run, Some(ns), None).await,
            }
        }))
        .await;

        let mut links = Vec::new();
        // Indexes into query.previous rather than references: the provider's futures must be
        // Send for every lifetime, which closures over borrowed items do not prove.
        let mut to_read: Vec<(AssociationSummary, Option<usize>)> = Vec::new();
        let mut associated: HashSet<(String, String)> = HashSet::new();
        for summaries in listed {
            for s in summaries? {
                let k = (s.namespace.clone(), s.service_account.clone());
                associated.insert(k.clone());
                if desired.contains(&k) {
                    continue;
                }
                let prev = previous.get(&k).copied();
                // Without a previous binding, only this app's namespace is searched by tags,
                // and only the associations whose service account can be one of the app's
                // derived names: reading the tags of every association of a namespace shared
                // with other apps would cost more than the deploy (3,041 calls instead of
                // 1,041 for 1,000 workloads beside 2,000 others). The app's links under
                // explicit names are found through the previous deploy.
                if prev.is_none()
                    && (s.namespace != query.namespace.as_str()
                        || !ServiceAccountName::parse(&s.service_account)
                            .is_ok_and(|sa| sa.may_be_derived_for(query.app.as_str())))
                {
                    continue;
                }
                match (&s.owner_arn, prev) {
                    (Some(owner), Some(prev)) => links.push(kept(
                        &query.previous[prev],
                        &s.association_arn,
                        format!(
                            "the association is owned by the EKS add-on {owner}; change it through the add-on"
                        ),
                    )),
                    (Some(_), None) => {}
                    (None, _) => to_read.push((s, prev)),
                }
            }
        }
        let read: Vec<_> = stream::iter(to_read)
            .map(|(s, prev)| async move { (self.describe(run, &s.association_id).await, prev) })
            .buffer_unordered(self.calls.concurrency())
            .collect()
            .await;
        for (described, prev) in read {
            let association = match described {
                Ok(a) => a,
                // Deleted since the listing: nothing to remove.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if let Some(link) = judge(query, &association, prev.map(|i| &query.previous[i])) {
                links.push(link);
            }
        }
        // An IRSA link of the previous deploy is its ServiceAccount's annotation, nothing in
        // AWS: stale by the previous deploy's word, and removed by the Kubernetes step.
        for b in query.previous {
            if self.mode_of(b) == AwsRoleMode::Irsa
                && !desired.contains(&key(b))
                && !associated.contains(&key(b))
            {
                links.push(StaleLink::remove(b.clone(), None, Evidence::PreviousDeploy));
            }
        }
        Ok(links)
    }

    pub(crate) async fn remove_stale(
        &self,
        run: &RunContext,
        links: &[StaleLink],
    ) -> Vec<Result<UnbindOutcome>> {
        stream::iter(0..links.len())
            .map(|i| self.remove_one(run, &links[i]))
            .buffered(self.calls.concurrency())
            .collect()
            .await
    }

    async fn remove_one(&self, run: &RunContext, link: &StaleLink) -> Result<UnbindOutcome> {
        const OP: Operation = op::DELETE_POD_IDENTITY_ASSOCIATION;
        if let StaleAction::Keep { reason } = &link.action {
            return Err(OP.error(
                ErrorKind::Conflict,
                format!("{} is kept: {reason}", link.binding.workload),
            ));
        }
        if link.resource_id.is_none() && self.mode_of(&link.binding) == AwsRoleMode::Irsa {
            return Ok(UnbindOutcome::Deleted {
                resource_id: format!(
                    "IRSA link of {} (the Kubernetes step removes its {} annotation)",
                    link.binding.workload,
                    crate::irsa::ROLE_ARN_ANNOTATION
                ),
            });
        }
        if let Some(arn) = &link.resource_id {
            // Found and judged by stale_links: its id is the last part of its ARN.
            let id = arn.rsplit('/').next().unwrap_or_default();
            return self.delete(run, id, arn).await;
        }
        // A link not read by stale_links (made by the caller): read it and require its tags to
        // name the binding's own service.
        let found = self.association_of(run, &link.binding.workload).await?;
        self.unbind_one(run, &link.binding, found, true).await
    }
}

/// What becomes of one association that the desired set does not want, or `None` when it is
/// neither the app's nor named by the previous deploy (another app's business).
fn judge(query: &StaleQuery<'_>, a: &Association, prev: Option<&Binding>) -> Option<StaleLink> {
    let owner = Owner::of(&a.tags);
    let ours =
        owner.proves_app(query.app.as_str()) || prev.is_some_and(|p| owner.proves(&p.workload));
    if ours {
        // The link's own marks say which service it was made for.
        let binding = prev
            .filter(|p| owner.proves(&p.workload))
            .cloned()
            .or_else(|| from_marks(a, &owner));
        let Some(binding) = binding else {
            tracing::warn!(association = %a.association_arn, "tagged with the app, but its tags are not valid names; left alone");
            return None;
        };
        return Some(StaleLink::remove(
            binding,
            Some(a.association_arn.clone()),
            Evidence::OwnershipMarks,
        ));
    }
    let prev = prev?;
    let reason = match owner {
        Owner::Unmarked => "the association has no porter-identity tags (made by hand or by another tool), so it is not provably this app's; unbind it explicitly if it should go".to_owned(),
        hand_tagged if hand_tagged.is(&prev.workload) => "its porter-identity tags lack `managed-by: porter-identity`, so it is not provably made by porter-identity; unbind it explicitly if it should go".to_owned(),
        other => format!(
            "by its tags the association belongs to {}; porter-identity never removes another service's association",
            other.describe()
        ),
    };
    Some(kept(prev, &a.association_arn, reason))
}

fn kept(prev: &Binding, arn: &str, reason: String) -> StaleLink {
    StaleLink::keep(
        prev.clone(),
        Some(arn.to_owned()),
        Evidence::PreviousDeploy,
        reason,
    )
}

/// The binding an association was made for, rebuilt from its tags and role.
fn from_marks(a: &Association, owner: &Owner) -> Option<Binding> {
    let Owner::Marked {
        app: Some(app),
        service: Some(service),
        ..
    } = owner
    else {
        return None;
    };
    let workload = Workload::new(&a.namespace, &a.service_account, app, service).ok()?;
    let role = RoleRef::parse(&a.role_arn).ok()?;
    Some(Binding::new(workload, Connection::aws_role(role)))
}
