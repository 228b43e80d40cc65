//! IRSA mode of the provider: plan, bind and verify of a binding whose pods get their role
//! through the `eks.amazonaws.com/role-arn` annotation (see [`crate::irsa`] for the rules).
//! No IAM or EKS write, but one: a Pod Identity association porter-identity made for the same
//! service account (the binding's mode changed) is deleted, since the pods must get one role.

use std::sync::Arc;

use porter_identity_core::{
    AwsRoleMode, BindChange, BindOutcome, Binding, ErrorKind, Finding, Plan, PlanAction, Result,
    RoleRef, RunContext, ServiceAccountPatch, Severity, VerifyReport,
};

use crate::api::{AssociationSummary, EksIamApi, RoleInfo};
use crate::codes;
use crate::irsa::{self, IrsaTrust};
use crate::operation as op;
use crate::ownership::{self, Owner};
use crate::policy::PolicyDocument;
use crate::provider::{AwsPodIdentityProvider, chain_of};

/// One IRSA read kept for the provider's lifetime once it passed.
#[derive(Debug, Clone)]
pub(crate) enum IrsaRead {
    /// A role as GetRole returned it, with its trust policy read once (an app's workloads
    /// share a few roles, and a trust policy listing many subjects is not read per workload).
    Role(RoleInfo, Arc<std::result::Result<PolicyDocument, String>>),
    /// The OIDC provider of the cluster's issuer exists and accepts `sts.amazonaws.com`.
    OidcProvider,
}

/// Something to say about an IRSA link that works (or may).
#[derive(Debug, Clone)]
enum IrsaNote {
    /// The role is in an account the provider cannot read.
    NotChecked(String),
    /// The role trusts a wildcard (or any) subject.
    Wildcard(String),
}

impl IrsaNote {
    fn text(&self) -> &str {
        match self {
            IrsaNote::NotChecked(t) | IrsaNote::Wildcard(t) => t,
        }
    }

    /// Its verify finding.
    fn finding(&self) -> Finding {
        let (severity, code, fix) = match self {
            IrsaNote::NotChecked(_) => (
                Severity::Info,
                codes::IRSA_NOT_CHECKED,
                "nothing to do if the role and the account hold what the message says",
            ),
            IrsaNote::Wildcard(_) => (
                Severity::Warning,
                codes::IRSA_WILDCARD_SUBJECT,
                "narrow the role's trust policy to the statement above",
            ),
        };
        Finding::new(severity, code, self.text(), fix)
    }
}

/// What the IRSA checks of one binding found.
pub(crate) struct IrsaChecked {
    /// The role, when it could be read.
    role_arn: String,
    /// What the deploy log and verify are told beside the annotation, if anything.
    note: Option<IrsaNote>,
}

impl AwsPodIdentityProvider {
    /// The binding's mode: its connection's, else the provider's.
    pub(crate) fn mode_of(&self, binding: &Binding) -> AwsRoleMode {
        Self::role_and_options(binding)
            .ok()
            .and_then(|(_, o)| o.mode)
            .unwrap_or(self.mode)
    }

    /// The ServiceAccount patch of an IRSA link: the annotation.
    fn irsa_patch(role_arn: &str, note: Option<IrsaNote>) -> ServiceAccountPatch {
        let mut patch = ServiceAccountPatch::default();
        patch
            .annotations
            .insert(irsa::ROLE_ARN_ANNOTATION.to_owned(), role_arn.to_owned());
        patch.notes.push(format!(
            "IRSA: the ServiceAccount carries {}={role_arn}; pods started before it was set get no credentials until restarted",
            irsa::ROLE_ARN_ANNOTATION
        ));
        patch.notes.extend(note.map(|n| n.text().to_owned()));
        patch
    }

    /// The IRSA checks, before anything is asked of the cluster: the role exists, the IAM OIDC
    /// provider of the cluster's issuer exists in the role's account and accepts
    /// `sts.amazonaws.com`, and the role trusts it for exactly this service account (a wildcard
    /// is a note). A role in an account the provider cannot read is a note too.
    pub(crate) async fn check_irsa(
        &self,
        run: &RunContext,
        binding: &Binding,
        fresh: bool,
    ) -> Result<IrsaChecked> {
        let (role, options) = Self::role_and_options(binding)?;
        options.check_mode(AwsRoleMode::Irsa)?;
        let cluster = self.cluster_info(run).await?;
        let cluster_account = cluster.account().unwrap_or_default().to_owned();
        let partition = cluster.partition().unwrap_or("aws").to_owned();
        let Some(issuer) = cluster.oidc_issuer.clone() else {
            return Err(op::DESCRIBE_CLUSTER
                .error(
                    ErrorKind::Conflict,
                    format!("cluster {} has no OIDC issuer: IRSA cannot work", self.cluster),
                )
                .with_fix("use an EKS cluster of version 1.13 or later (every current one has an issuer), or use mode: podIdentity"));
        };
        let account = role.account().unwrap_or(&cluster_account).to_owned();
        let w = &binding.workload;
        let subject = irsa::subject(w.namespace().as_str(), w.service_account().as_str());
        let provider_arn = irsa::provider_arn(&partition, &account, &issuer);
        let statement = irsa::required_statement(&provider_arn, &issuer, &subject);
        let api = self.account_api(run, &account).await?;
        let arn_of = |name: &str| format!("arn:{partition}:iam::{account}:role/{name}");
        let Some(api) = api else {
            let role_arn = role
                .arn()
                .map_or_else(|| arn_of(role.name()), str::to_owned);
            return Ok(IrsaChecked {
                note: Some(IrsaNote::NotChecked(format!(
                    "role {role_arn} was not checked from here (it is in account {account}, and the provider has no credentials for that account); its trust policy needs {statement}, and account {account} the IAM OIDC provider of {issuer}"
                ))),
                role_arn,
            });
        };
        // The role and the OIDC provider are read once per provider (each service account's
        // trust is then checked against the role as read), so IRSA costs no IAM call per
        // workload; a role whose trust refuses a workload is read again next time, to see a fix.
        let role_key = format!("{account}/{}", role.name());
        if fresh {
            // Verify reads afresh.
            self.irsa_reads.forget(&role_key);
            self.irsa_reads.forget(&provider_arn);
        }
        let role_cell = self.irsa_reads.cell(&role_key);
        let oidc_cell = self.irsa_reads.cell(&provider_arn);
        let (info, _) = futures_util::future::try_join(
            role_cell.get_or_try_init(|| async {
                self.irsa_role(run, &api, role, binding, &statement)
                    .await
                    .map(|info| {
                        let doc = PolicyDocument::parse(&info.assume_role_policy_document)
                            .map_err(|e| e.to_string());
                        IrsaRead::Role(info, Arc::new(doc))
                    })
            }),
            oidc_cell.get_or_try_init(|| async {
                self.check_oidc_provider(run, &api, &provider_arn, &issuer)
                    .await
                    .map(|()| IrsaRead::OidcProvider)
            }),
        )
        .await?;
        let IrsaRead::Role(info, doc) = info.clone() else {
            unreachable!("a role key holds a role");
        };
        let refused = |e| {
            self.irsa_reads.forget(&role_key);
            e
        };
        let doc = doc
            .as_ref()
            .as_ref()
            .map_err(|e| {
                op::GET_ROLE
                    .error(
                        ErrorKind::Conflict,
                        format!("the trust policy of role {} cannot be read: {e}", info.arn),
                    )
                    .with_fix(format!("make its trust policy hold {statement}"))
            })
            .map_err(refused)?;
        match irsa::check_trust(doc, &provider_arn, &issuer, &subject) {
            Ok(IrsaTrust::Exact) => Ok(IrsaChecked {
                role_arn: info.arn,
                note: None,
            }),
            Ok(IrsaTrust::Wildcard(pattern)) => Ok(IrsaChecked {
                note: Some(IrsaNote::Wildcard(format!(
                    "role {} trusts {pattern} of cluster {}'s issuer, not only {subject}: every service account that matches may assume it; narrow its trust policy to {statement}",
                    info.arn, self.cluster
                ))),
                role_arn: info.arn,
            }),
            Err(problem) => Err(refused(op::GET_ROLE
                .error(
                    ErrorKind::Conflict,
                    format!(
                        "role {} cannot be used by {w} with IRSA: {problem}",
                        info.arn
                    ),
                )
                .with_fix(format!(
                    "add this statement to the role's trust policy (IAM > Roles > {} > Trust relationships): {statement}",
                    info.name
                )))),
        }
    }

    async fn irsa_role(
        &self,
        run: &RunContext,
        api: &Arc<dyn EksIamApi>,
        role: &RoleRef,
        binding: &Binding,
        statement: &str,
    ) -> Result<RoleInfo> {
        match self
            .calls
            .run(run, op::GET_ROLE, || api.get_role(role.name()))
            .await
        {
            Ok(info) => match role.arn() {
                Some(arn) if info.arn != arn => Err(op::GET_ROLE
                    .error(
                        ErrorKind::InvalidInput,
                        format!("role {:?} is {}, not {arn}", role.name(), info.arn),
                    )
                    .with_fix("correct awsRole.role in porter.yaml to the role's ARN as IAM shows it")),
                _ => Ok(info),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => Err(op::GET_ROLE
                .error(
                    ErrorKind::NotFound,
                    format!(
                        "IAM role {:?} (awsRole.role of service {}) does not exist",
                        role.name(),
                        binding.workload.service()
                    ),
                )
                .with_fix(format!(
                    "create the role with a trust policy holding {statement}, or correct awsRole.role in porter.yaml"
                ))
                .with_source(e)),
            Err(e) => Err(e),
        }
    }

    /// The IAM OIDC provider of `issuer` exists and accepts `sts.amazonaws.com`.
    async fn check_oidc_provider(
        &self,
        run: &RunContext,
        api: &Arc<dyn EksIamApi>,
        provider_arn: &str,
        issuer: &str,
    ) -> Result<()> {
        let providers = self
            .calls
            .run(run, op::LIST_OPEN_ID_CONNECT_PROVIDERS, || {
                api.list_open_id_connect_providers()
            })
            .await?;
        if !providers.iter().any(|p| p == provider_arn) {
            return Err(op::LIST_OPEN_ID_CONNECT_PROVIDERS
                .error(
                    ErrorKind::NotFound,
                    format!(
                        "account {} has no IAM OIDC provider for cluster {}'s issuer {issuer}: IRSA tokens cannot be exchanged",
                        provider_arn.split(':').nth(4).unwrap_or_default(),
                        self.cluster
                    ),
                )
                .with_fix(irsa::create_provider_commands(issuer, &self.cluster)));
        }
        let provider = self
            .calls
            .run(run, op::GET_OPEN_ID_CONNECT_PROVIDER, || {
                api.get_open_id_connect_provider(provider_arn)
            })
            .await?;
        if !provider.client_ids.iter().any(|c| c == irsa::AUDIENCE) {
            return Err(op::GET_OPEN_ID_CONNECT_PROVIDER
                .error(
                    ErrorKind::Conflict,
                    format!(
                        "the IAM OIDC provider {provider_arn} does not accept audience {} (it accepts {})",
                        irsa::AUDIENCE,
                        if provider.client_ids.is_empty() {
                            "none".to_owned()
                        } else {
                            provider.client_ids.join(", ")
                        }
                    ),
                )
                .with_fix(format!(
                    "aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {provider_arn} --client-id {}",
                    irsa::AUDIENCE
                )));
        }
        Ok(())
    }

    /// The association of the service account, when IRSA is to replace it: porter-identity's
    /// own for this workload (deleted), or `Err` for anyone else's (both would give the pods
    /// credentials, and which wins depends on the SDK).
    async fn association_to_replace(
        &self,
        run: &RunContext,
        binding: &Binding,
        found: Option<AssociationSummary>,
    ) -> Result<Option<crate::api::Association>> {
        let Some(summary) = found else {
            return Ok(None);
        };
        let operation = op::DELETE_POD_IDENTITY_ASSOCIATION;
        if let Some(owner) = &summary.owner_arn {
            return Err(self.addon_owned(binding, owner, operation));
        }
        let a = match self.describe(run, &summary.association_id).await {
            Ok(a) => a,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !Owner::of(&a.tags).proves(&binding.workload) {
            return Err(operation
                .error(
                    ErrorKind::Conflict,
                    format!(
                        "{} also has a Pod Identity association (to {}) that porter-identity did not make: with IRSA beside it the pods would get two roles",
                        binding.workload,
                        chain_of(&a)
                    ),
                )
                .with_fix(format!(
                    "delete it (aws eks delete-pod-identity-association --cluster-name {} --association-id {}) or bind this service with mode: podIdentity",
                    self.cluster, a.association_id
                )));
        }
        ownership::check(binding, &a, &self.cluster, operation)?;
        Ok(Some(a))
    }

    pub(crate) async fn plan_irsa(
        &self,
        run: &RunContext,
        binding: &Binding,
        found: Option<AssociationSummary>,
    ) -> Result<Plan> {
        let checked = self.check_irsa(run, binding, false).await?;
        let replaced = self.association_to_replace(run, binding, found).await?;
        let w = &binding.workload;
        let annotate = format!(
            "annotate ServiceAccount {w} with {}={} (IRSA; no AWS write)",
            irsa::ROLE_ARN_ANNOTATION,
            checked.role_arn
        );
        let (action, description) = match &replaced {
            Some(a) => (
                PlanAction::Update {
                    current: chain_of(a),
                },
                format!(
                    "delete the Pod Identity association of {w} to {}, and {annotate}",
                    chain_of(a)
                ),
            ),
            None => (PlanAction::Unchanged, annotate),
        };
        Ok(Plan::new(
            action,
            description,
            Self::irsa_patch(&checked.role_arn, checked.note),
        ))
    }

    pub(crate) async fn bind_irsa(
        &self,
        run: &RunContext,
        binding: &Binding,
        found: Option<AssociationSummary>,
    ) -> Result<BindOutcome> {
        let checked = self.check_irsa(run, binding, false).await?;
        let replaced = self.association_to_replace(run, binding, found).await?;
        let change = match replaced {
            Some(a) => {
                self.delete(run, &a.association_id, &a.association_arn)
                    .await?;
                BindChange::Updated {
                    previous: format!("Pod Identity association to {}", chain_of(&a)),
                }
            }
            None => BindChange::Unchanged,
        };
        let patch = Self::irsa_patch(&checked.role_arn, checked.note);
        Ok(BindOutcome::new(change, checked.role_arn, patch))
    }

    /// Verify of an IRSA binding: the cluster (not the Pod Identity agent), the role, the OIDC
    /// provider and the trust, as findings; the role's permissions linted; a Pod Identity
    /// association beside it flagged.
    pub(crate) async fn verify_irsa(
        &self,
        run: &RunContext,
        binding: &Binding,
    ) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        if self
            .verify_cluster(run, &mut report, false)
            .await?
            .is_none()
        {
            return Ok(report);
        }
        match self.check_irsa(run, binding, true).await {
            Ok(checked) => {
                if let Some(note) = &checked.note {
                    report.push(note.finding());
                }
                report.service_account_patch = Self::irsa_patch(&checked.role_arn, None);
            }
            Err(e) => {
                let code = match e.operation() {
                    Some(o) if o == op::LIST_OPEN_ID_CONNECT_PROVIDERS.name() => {
                        codes::IRSA_OIDC_PROVIDER_MISSING
                    }
                    Some(o) if o == op::GET_OPEN_ID_CONNECT_PROVIDER.name() => {
                        codes::IRSA_AUDIENCE_MISSING
                    }
                    _ if e.kind() == ErrorKind::NotFound => codes::ROLE_NOT_FOUND,
                    _ if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::InvalidInput) => {
                        codes::IRSA_TRUST_MISSING
                    }
                    _ => return Err(e),
                };
                report.push(Finding::from_error(code, &e));
            }
        }
        if let Some(summary) = self.association_of(run, &binding.workload).await? {
            report.push(Finding::new(
                Severity::Warning,
                codes::IRSA_WITH_ASSOCIATION,
                format!(
                    "{} is bound with IRSA but also has a Pod Identity association ({})",
                    binding.workload, summary.association_id
                ),
                "run bind: it deletes porter-identity's own association; delete another's by hand, or bind with mode: podIdentity",
            ));
        }
        Ok(report)
    }

    /// What a missing agent or a Fargate profile means for a Pod Identity binding: its fix
    /// names IRSA mode.
    pub(crate) fn irsa_instead() -> &'static str {
        "or bind the service with IRSA instead (`mode: irsa` on its awsRole connection), which needs no agent"
    }
}
