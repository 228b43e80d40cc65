//! A binding's target role, checked before any write: it exists, it trusts the association's
//! role, and the association's role may assume it. A target role in an account the provider
//! has no credentials for is "not checked from here": the bind goes on, and says what the
//! target needs (see [`crate::chain`] for the rules).

use futures_util::future::try_join;
use porter_identity_core::{
    Binding, Error, ErrorKind, Result, RoleRef, RunContext, ServiceAccountPatch,
};

use crate::api::RoleInfo;
use crate::chain::{
    check_chain_permission, check_target_trust, required_chain_permission_statement,
    required_target_trust_statement,
};
use crate::operation as op;
use crate::policy::PolicyDocument;
use crate::provider::AwsPodIdentityProvider;

/// One chain's reads are shared: (association role ARN, target role ARN, session tags on).
pub(crate) type ChainKey = (String, String, bool);

/// What the reads of a chain found, kept for the provider's lifetime once they pass.
#[derive(Debug, Clone)]
pub(crate) enum ChainRead {
    /// The target role, read with credentials of its account.
    Read(RoleInfo),
    /// The target role could not be read from here, and why.
    NotReadable(String),
}

/// How a chain stands after its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainCheck {
    /// No target role.
    None,
    /// Checked: the target trusts the association's role.
    Checked,
    /// Not checked from here: the note to show, with the statements the target needs.
    NotChecked(String),
}

impl ChainCheck {
    /// Adds the note of a target role not checked from here to the deploy log's notes.
    pub(crate) fn note_on(self, patch: &mut ServiceAccountPatch) {
        if let ChainCheck::NotChecked(note) = self
            && !patch.notes.contains(&note)
        {
            patch.notes.push(note);
        }
    }
}

impl AwsPodIdentityProvider {
    /// Checks the target role of `binding` (if any) against its checked association role
    /// `role`, with the association's external ID when it exists. Fails, before any write,
    /// when the target is missing, does not trust `role`, or `role` may not assume it. Reads
    /// that passed are kept for the provider's lifetime, unless `fresh` (verify) asks anew.
    pub(crate) async fn check_chain(
        &self,
        run: &RunContext,
        binding: &Binding,
        role: &RoleInfo,
        external_id: Option<&str>,
        fresh: bool,
    ) -> Result<ChainCheck> {
        let (_, options) = Self::role_and_options(binding)?;
        let Some(target) = &options.target_role else {
            return Ok(ChainCheck::None);
        };
        let tags = !options.session_tags_disabled();
        let key: ChainKey = (role.arn.clone(), target.as_str().to_owned(), tags);
        if fresh {
            self.checked_chains.forget(&key);
        }
        let cell = self.checked_chains.cell(&key);
        let read = cell
            .get_or_try_init(|| async {
                let (read, ()) = try_join(
                    self.read_target(run, binding, target),
                    self.check_chain_permission(run, binding, role, target, tags),
                )
                .await?;
                Ok::<_, Error>(read)
            })
            .await?
            .clone();
        let statement = required_target_trust_statement(&role.arn, tags, external_id);
        match read {
            ChainRead::NotReadable(why) => Ok(ChainCheck::NotChecked(format!(
                "target role {target} was not checked from here ({why}); its trust policy needs {statement}; give the provider .target_account(\"{}\", &config) to check it before each bind",
                target.account().unwrap_or_default()
            ))),
            ChainRead::Read(info) => {
                let trusted = PolicyDocument::parse(&info.assume_role_policy_document)
                    .map_err(|e| format!("its trust policy cannot be read: {e}"))
                    .and_then(|doc| check_target_trust(&doc, &role.arn, tags, external_id));
                match trusted {
                    Ok(()) => Ok(ChainCheck::Checked),
                    Err(problem) => {
                        // Not kept: the fix is seen on the next bind.
                        self.checked_chains.forget(&key);
                        Err(op::GET_ROLE
                            .error(
                                ErrorKind::Conflict,
                                format!(
                                    "target role {target} (awsRole.targetRole of service {}) cannot be assumed by {}: {problem}",
                                    binding.workload.service(),
                                    role.arn
                                ),
                            )
                            .with_fix(format!(
                                "add this statement to the trust policy of {} in account {} (IAM > Roles > {} > Trust relationships): {statement}",
                                target.name(),
                                target.account().unwrap_or_default(),
                                target.name()
                            )))
                    }
                }
            }
        }
    }

    async fn read_target(
        &self,
        run: &RunContext,
        binding: &Binding,
        target: &RoleRef,
    ) -> Result<ChainRead> {
        let account = target.account().unwrap_or_default();
        let Some(api) = self.account_api(run, account).await? else {
            return Ok(ChainRead::NotReadable(format!(
                "it is in account {account}, and the provider has no credentials for that account"
            )));
        };
        let found = self
            .calls
            .run(run, op::GET_ROLE, || api.get_role(target.name()))
            .await;
        match found {
            Ok(info) if info.arn == target.as_str() => Ok(ChainRead::Read(info)),
            Ok(info) => Ok(ChainRead::NotReadable(format!(
                "the credentials given for account {account} read {} instead: they are another account's",
                info.arn
            ))),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(op::GET_ROLE
                .error(
                    ErrorKind::NotFound,
                    format!(
                        "target role {target} (awsRole.targetRole of service {}) does not exist",
                        binding.workload.service()
                    ),
                )
                .with_fix(format!(
                    "create the role in account {account}, or correct awsRole.targetRole in porter.yaml"
                ))
                .with_source(e)),
            Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::Unauthenticated) => {
                Ok(ChainRead::NotReadable(format!(
                    "the credentials for account {account} may not read it: {e}"
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the association's role may assume the target: its permission policies (managed
    /// and inline) are read and must allow it. A policy that cannot be read leaves the question
    /// open, so nothing is refused then.
    async fn check_chain_permission(
        &self,
        run: &RunContext,
        binding: &Binding,
        role: &RoleInfo,
        target: &RoleRef,
        tags: bool,
    ) -> Result<()> {
        let raw = self.permission_documents(run, role, |_| false).await?;
        let mut docs = Vec::with_capacity(raw.len());
        for (_, doc) in &raw {
            match PolicyDocument::parse(doc) {
                Ok(d) => docs.push(d),
                Err(_) => return Ok(()),
            }
        }
        check_chain_permission(&docs, &role.arn, target.as_str(), tags).map_err(|problem| {
            op::GET_ROLE_POLICY
                .error(
                    ErrorKind::Conflict,
                    format!(
                        "role {} of service {} cannot chain into its target role: {problem}",
                        role.arn,
                        binding.workload.service()
                    ),
                )
                .with_fix(format!(
                    "add this statement to a permission policy of {} (IAM > Roles > {} > Permissions): {}",
                    role.name,
                    role.name,
                    required_chain_permission_statement(target.as_str(), tags)
                ))
        })
    }
}
