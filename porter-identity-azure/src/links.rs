//! Batches: `plan_all`, `bind_all` and `unbind_all` (and the single-binding calls, as batches
//! of one). Bindings are grouped by managed identity: each identity is read once (per provider)
//! and its credentials listed once per batch, whatever the number of workloads on it; the
//! writes to one identity go one at a time, identities side by side.

use std::future::Future;

use futures_util::future::{try_join, try_join3};
use porter_identity_core::provider::{batch_refusals, per_group};
use porter_identity_core::{
    BindChange, BindOutcome, Binding, Cloud, Error, ErrorKind, Operation, Plan, PlanAction, Result,
    RunContext, UnbindOutcome,
};

use crate::api::{FEDERATED_CREDENTIAL_LIMIT, FederatedCredential, Identity};
use crate::names::{NameMarks, TOKEN_EXCHANGE_AUDIENCE, credential_name, same_issuer};
use crate::operation as op;
use crate::provider::{AzureWorkloadIdentityProvider, CredentialsListing, identity_key, key_of};

/// What a binding's subject has on its identity now.
enum Current {
    /// No credential trusts the issuer for the subject.
    None,
    /// One does, with the right audience.
    Same(FederatedCredential),
    /// One does, with another audience: fix it in place.
    WrongAudience(FederatedCredential),
}

impl AzureWorkloadIdentityProvider {
    pub(crate) async fn plan_batch(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<Plan>> {
        let refused = self.refusals(bindings, true);
        self.by_identity(bindings, refused, |group| {
            self.plan_group(run, bindings, group)
        })
        .await
    }

    pub(crate) async fn bind_batch(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<BindOutcome>> {
        let refused = self.refusals(bindings, true);
        self.by_identity(bindings, refused, |group| {
            self.bind_group(run, bindings, group)
        })
        .await
    }

    pub(crate) async fn unbind_batch(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<UnbindOutcome>> {
        let refused = self.refusals(bindings, false);
        self.by_identity(bindings, refused, |group| {
            self.unbind_group(run, bindings, group)
        })
        .await
    }

    /// Bindings refused before any call: of another cloud, or (plan and bind) fighting over one
    /// link with an earlier binding of the batch.
    fn refusals(&self, bindings: &[Binding], conflicts: bool) -> Vec<Option<Error>> {
        batch_refusals(bindings, conflicts, |b| Self::identity_ref(b).map(drop))
    }

    /// Runs `work` once per identity with the indexes of its admitted bindings, identities side
    /// by side. Results in input order.
    async fn by_identity<T, F, Fut>(
        &self,
        bindings: &[Binding],
        refused: Vec<Option<Error>>,
        work: F,
    ) -> Vec<Result<T>>
    where
        F: Fn(Vec<usize>) -> Fut,
        Fut: Future<Output = Vec<(usize, Result<T>)>>,
    {
        let results = refused.into_iter().map(|e| e.map(Err)).collect();
        per_group(Cloud::Azure, bindings.iter().map(key_of), results, work).await
    }

    /// The key under which an identity's credential listing is shared within one run.
    pub(crate) fn credentials_listing(
        &self,
        issuer: &str,
        rg: &str,
        name: &str,
    ) -> CredentialsListing {
        CredentialsListing {
            issuer: issuer.to_owned(),
            identity: identity_key(rg, name),
        }
    }

    /// What every binding of a plan or bind group needs first: the issuer, the identity and
    /// its credentials, read side by side. An error is every binding's.
    async fn group_reads(
        &self,
        run: &RunContext,
        first: &Binding,
    ) -> Result<(String, Identity, Vec<FederatedCredential>)> {
        let (rg, name) = Self::identity_ref(first)?;
        // The first to fail stops the others: one failure, one budget.
        let (issuer, identity, listed) = try_join3(
            self.issuer(run),
            self.identity(run, first),
            self.listed(run, first, rg.as_str(), name.as_str()),
        )
        .await
        .map_err(|e| self.issuer_stopped(run, e))?;
        let issuer = issuer.to_owned();
        self.share_listing(run, first, &issuer, &listed)?;
        Ok((issuer, identity, listed))
    }

    /// What an unbind group needs: the issuer and the identity's credentials (not the identity
    /// itself), read side by side.
    async fn unbind_reads(
        &self,
        run: &RunContext,
        first: &Binding,
    ) -> Result<(String, Vec<FederatedCredential>)> {
        let (rg, name) = Self::identity_ref(first)?;
        let (issuer, listed) = try_join(
            self.issuer(run),
            self.listed(run, first, rg.as_str(), name.as_str()),
        )
        .await
        .map_err(|e| self.issuer_stopped(run, e))?;
        let issuer = issuer.to_owned();
        self.share_listing(run, first, &issuer, &listed)?;
        Ok((issuer, listed))
    }

    /// The credentials of the identity of a group's `first` binding; a 404 says which
    /// identity is missing.
    async fn listed(
        &self,
        run: &RunContext,
        first: &Binding,
        rg: &str,
        name: &str,
    ) -> Result<Vec<FederatedCredential>> {
        self.list_credentials(run, rg, name)
            .await
            .map_err(|e| self.missing_identity(first, e))
    }

    /// Offers a group's listing of its identity's credentials to the stale-link search of the
    /// same reconcile.
    fn share_listing(
        &self,
        run: &RunContext,
        first: &Binding,
        issuer: &str,
        listed: &[FederatedCredential],
    ) -> Result<()> {
        let (rg, name) = Self::identity_ref(first)?;
        run.share(
            self.credentials_listing(issuer, rg.as_str(), name.as_str()),
            listed.to_vec(),
        );
        Ok(())
    }

    /// A listing of a missing identity fails with ARM's 404: say which identity.
    fn missing_identity(&self, binding: &Binding, e: Error) -> Error {
        match Self::identity_ref(binding) {
            Ok((rg, name)) if e.kind() == ErrorKind::NotFound => op::FEDERATED_IDENTITY_CREDENTIALS_LIST.error(ErrorKind::NotFound,
                format!(
                    "managed identity {rg}/{name} (azureManagedIdentity of service {}) does not exist",
                    binding.workload.service()
                ),
            )
            .with_fix(format!(
                "create it with `az identity create --resource-group {rg} --name {name}`, or correct identityName and resourceGroup in porter.yaml"
            ))
            .with_source(e),
            _ => e,
        }
    }

    /// The credential of a binding's subject, judged: another owner's is an error.
    fn current(
        &self,
        binding: &Binding,
        issuer: &str,
        held: &[FederatedCredential],
        operation: Operation,
    ) -> Result<Current> {
        let subject = binding.workload.subject();
        let Some(found) = held
            .iter()
            .find(|c| same_issuer(&c.issuer, issuer) && c.subject == subject)
        else {
            return Ok(Current::None);
        };
        let marks = NameMarks::of(&found.name);
        if marks != NameMarks::Foreign && !marks.is(&binding.workload) {
            return Err(self.other_owner(binding, &marks, found, operation));
        }
        Ok(if found.audiences == [TOKEN_EXCHANGE_AUDIENCE] {
            Current::Same(found.clone())
        } else {
            Current::WrongAudience(found.clone())
        })
    }

    /// The error for a credential whose name marks another app or service.
    pub(crate) fn other_owner(
        &self,
        binding: &Binding,
        marks: &NameMarks,
        credential: &FederatedCredential,
        operation: Operation,
    ) -> Error {
        let w = &binding.workload;
        let identity = Self::identity_ref(binding)
            .map(|(rg, name)| format!("{rg}/{name}"))
            .unwrap_or_default();
        operation.error(ErrorKind::Conflict,
            format!(
                "the federated identity credential {} of managed identity {identity} that trusts {w} belongs to {} (by its name), not to service `{}` of app `{}`; porter-identity never changes or removes another service's credential",
                credential.name,
                marks.describe(),
                w.service(),
                w.app()
            ),
        )
        .with_fix(format!(
            "both services run as service account {}: rename service `{}` or app `{}` so that their service account names differ, or give this workload an explicit service account name (Workload::new(namespace, service_account, app, service))",
            w.service_account(),
            w.service(),
            w.app()
        ))
    }

    /// The error for an identity with no room for another credential.
    fn limit_error(&self, binding: &Binding, held: &[FederatedCredential]) -> Error {
        let identity = Self::identity_ref(binding)
            .map(|(rg, name)| format!("{rg}/{name}"))
            .unwrap_or_default();
        let listed: Vec<String> = held
            .iter()
            .map(|c| format!("{} (issuer {}, subject {})", c.name, c.issuer, c.subject))
            .collect();
        let (rg, name) = identity
            .split_once('/')
            .unwrap_or(("<group>", "<identity>"));
        op::FEDERATED_IDENTITY_CREDENTIALS_CREATE_OR_UPDATE.error(ErrorKind::LimitExceeded,
            format!(
                "managed identity {identity} holds {} federated identity credentials, Azure's limit of {FEDERATED_CREDENTIAL_LIMIT} per identity, so none can be added for {}; it holds: {}",
                held.len(),
                binding.workload,
                listed.join("; ")
            ),
        )
        .with_fix(format!(
            "delete the credentials it no longer needs (`az identity federated-credential delete --resource-group {rg} --identity-name {name} --name <credential>`), or give this service its own managed identity"
        ))
    }

    // ---- plan ---------------------------------------------------------------------------------

    async fn plan_group(
        &self,
        run: &RunContext,
        bindings: &[Binding],
        group: Vec<usize>,
    ) -> Vec<(usize, Result<Plan>)> {
        let (issuer, identity, mut held) = match self.group_reads(run, &bindings[group[0]]).await {
            Ok(reads) => reads,
            Err(e) => return every(group, || Err(e.clone())),
        };
        let mut out = Vec::with_capacity(group.len());
        for i in group {
            let b = &bindings[i];
            let w = &b.workload;
            let planned = match self.current(
                b,
                &issuer,
                &held,
                op::FEDERATED_IDENTITY_CREDENTIALS_LIST,
            ) {
                Err(e) => Err(e),
                Ok(Current::Same(c)) => Ok((
                    PlanAction::Unchanged,
                    format!("credential {} already trusts {issuer} for {w}", c.name),
                )),
                Ok(Current::WrongAudience(c)) => Ok((
                    PlanAction::Update {
                        current: format!("audiences {}", c.audiences.join(",")),
                    },
                    format!(
                        "set the audience of credential {} to {TOKEN_EXCHANGE_AUDIENCE} (it has {})",
                        c.name,
                        c.audiences.join(",")
                    ),
                )),
                Ok(Current::None) if held.len() >= FEDERATED_CREDENTIAL_LIMIT => {
                    Err(self.limit_error(b, &held))
                }
                Ok(Current::None) => {
                    let name = credential_name(&issuer, w);
                    // Count it, so that the batch's later bindings see the limit coming.
                    held.push(FederatedCredential {
                        name: name.clone(),
                        id: String::new(),
                        issuer: issuer.clone(),
                        subject: w.subject(),
                        audiences: vec![TOKEN_EXCHANGE_AUDIENCE.to_owned()],
                    });
                    Ok((
                        PlanAction::Create,
                        format!(
                            "create credential {name} on managed identity {} trusting {issuer} for {w}",
                            identity.name
                        ),
                    ))
                }
            };
            out.push((
                i,
                planned.map(|(action, description)| {
                    let patch = Self::patch(&identity, action != PlanAction::Unchanged);
                    Plan::new(action, description, patch)
                }),
            ));
        }
        out
    }

    // ---- bind ---------------------------------------------------------------------------------

    async fn bind_group(
        &self,
        run: &RunContext,
        bindings: &[Binding],
        group: Vec<usize>,
    ) -> Vec<(usize, Result<BindOutcome>)> {
        let (issuer, identity, mut held) = match self.group_reads(run, &bindings[group[0]]).await {
            Ok(reads) => reads,
            Err(e) => return every(group, || Err(e.clone())),
        };
        let mut out = Vec::with_capacity(group.len());
        // One binding after another: writes to one identity go one at a time anyway.
        for i in group {
            let result = self
                .bind_one(run, &bindings[i], &issuer, &identity, &mut held)
                .await;
            out.push((i, result));
        }
        out
    }

    async fn bind_one(
        &self,
        run: &RunContext,
        binding: &Binding,
        issuer: &str,
        identity: &Identity,
        held: &mut Vec<FederatedCredential>,
    ) -> Result<BindOutcome> {
        const OP: Operation = op::FEDERATED_IDENTITY_CREDENTIALS_CREATE_OR_UPDATE;
        let (rg, name) = Self::identity_ref(binding)?;
        let (rg, name) = (rg.as_str(), name.as_str());
        let spec = Self::spec(issuer, binding);
        match self.current(binding, issuer, held, OP)? {
            Current::Same(c) => return Ok(outcome(identity, BindChange::Unchanged, c)),
            Current::WrongAudience(c) => {
                let previous = format!("audiences {}", c.audiences.join(","));
                let fixed = self.put_credential(run, rg, name, &c.name, &spec).await?;
                replace(held, fixed.clone());
                return Ok(outcome(identity, BindChange::Updated { previous }, fixed));
            }
            Current::None => {}
        }
        if held.len() >= FEDERATED_CREDENTIAL_LIMIT {
            return Err(self.limit_error(binding, held));
        }
        let new_name = credential_name(issuer, &binding.workload);
        match self.put_credential(run, rg, name, &new_name, &spec).await {
            Ok(created) => {
                held.push(created.clone());
                Ok(outcome(identity, BindChange::Created, created))
            }
            // Another process created a credential for the same issuer and subject under
            // another name since the listing: adopt it.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                tracing::debug!(workload = %binding.workload, "credential created concurrently; adopting it");
                *held = self.list_credentials(run, rg, name).await?;
                match self.current(binding, issuer, held, OP)? {
                    Current::Same(c) => Ok(outcome(identity, BindChange::Unchanged, c)),
                    Current::WrongAudience(c) => {
                        let previous = format!("audiences {}", c.audiences.join(","));
                        let fixed = self.put_credential(run, rg, name, &c.name, &spec).await?;
                        replace(held, fixed.clone());
                        Ok(outcome(identity, BindChange::Updated { previous }, fixed))
                    }
                    Current::None => Err(e),
                }
            }
            // Other processes filled the identity since the listing.
            Err(e) if e.kind() == ErrorKind::LimitExceeded => {
                *held = self.list_credentials(run, rg, name).await?;
                Err(self.limit_error(binding, held).with_source(e))
            }
            Err(e) => Err(e),
        }
    }

    // ---- unbind -------------------------------------------------------------------------------

    async fn unbind_group(
        &self,
        run: &RunContext,
        bindings: &[Binding],
        group: Vec<usize>,
    ) -> Vec<(usize, Result<UnbindOutcome>)> {
        let (issuer, held) = match self.unbind_reads(run, &bindings[group[0]]).await {
            Ok(reads) => reads,
            // A missing identity has nothing to unbind.
            Err(e)
                if e.kind() == ErrorKind::NotFound
                    && e.operation() != Some(op::MANAGED_CLUSTERS_GET.name()) =>
            {
                return every(group, || Ok(UnbindOutcome::AlreadyAbsent));
            }
            Err(e) => return every(group, || Err(e.clone())),
        };
        let mut out = Vec::with_capacity(group.len());
        for i in group {
            out.push((
                i,
                self.unbind_one(run, &bindings[i], &issuer, &held, false)
                    .await,
            ));
        }
        out
    }

    /// Deletes every credential of the binding's identity that trusts `issuer` for its subject,
    /// whatever its name. A name marking another owner refuses the whole unbind. With
    /// `marks_required` (a stale link), a foreign name refuses it too.
    pub(crate) async fn unbind_one(
        &self,
        run: &RunContext,
        binding: &Binding,
        issuer: &str,
        held: &[FederatedCredential],
        marks_required: bool,
    ) -> Result<UnbindOutcome> {
        const OP: Operation = op::FEDERATED_IDENTITY_CREDENTIALS_DELETE;
        let (rg, name) = Self::identity_ref(binding)?;
        let subject = binding.workload.subject();
        let matching: Vec<&FederatedCredential> = held
            .iter()
            .filter(|c| same_issuer(&c.issuer, issuer) && c.subject == subject)
            .collect();
        for c in &matching {
            let marks = NameMarks::of(&c.name);
            let foreign = marks == NameMarks::Foreign;
            if (!foreign && !marks.is(&binding.workload)) || (foreign && marks_required) {
                return Err(self.other_owner(binding, &marks, c, OP));
            }
        }
        let mut deleted = None;
        for c in matching {
            if self
                .delete_credential(run, rg.as_str(), name.as_str(), &c.name)
                .await?
            {
                deleted.get_or_insert_with(|| c.id.clone());
            }
        }
        Ok(match deleted {
            Some(resource_id) => UnbindOutcome::Deleted { resource_id },
            None => UnbindOutcome::AlreadyAbsent,
        })
    }
}

fn outcome(
    identity: &Identity,
    change: BindChange,
    credential: FederatedCredential,
) -> BindOutcome {
    let changed = change != BindChange::Unchanged;
    BindOutcome::new(
        change,
        credential.id,
        AzureWorkloadIdentityProvider::patch(identity, changed),
    )
}

fn replace(held: &mut [FederatedCredential], fixed: FederatedCredential) {
    if let Some(slot) = held
        .iter_mut()
        .find(|c| c.name.eq_ignore_ascii_case(&fixed.name))
    {
        *slot = fixed;
    }
}

/// The same result for every binding of a group.
fn every<T>(group: Vec<usize>, result: impl Fn() -> Result<T>) -> Vec<(usize, Result<T>)> {
    group.into_iter().map(|i| (i, result())).collect()
}
