//! `verify` of the AWS provider: the cluster, the Pod Identity agent, the role, its trust
//! policy, the association (and who owns it), and the least-privilege lint of the role.

use std::collections::HashMap;

use futures_util::stream::{self, StreamExt};
use porter_identity_core::provider::wildcard_match;
use porter_identity_core::{
    AwsRoleMode, Binding, ErrorKind, Finding, Result, RoleRef, RunContext, Severity, VerifyReport,
};

use crate::api::AssociationSettings;
use crate::api::{
    AssociationSummary, AttachedPolicy, ClusterInfo, FargateProfile, POD_IDENTITY_AGENT_ADDON,
    RoleInfo,
};
use crate::operation as op;
use crate::ownership::{self, Owner};
use crate::provider::AwsPodIdentityProvider;
use crate::target_role::ChainCheck;
use crate::{codes, lint, trust};

/// How many DescribePodIdentityAssociation calls verify makes at once for the shared-role lint.
const DESCRIBE_CONCURRENCY: usize = 8;

impl AwsPodIdentityProvider {
    /// The whole diagnosis of one binding.
    /// `fargate`: the cluster's Fargate profiles, read once for the whole verify batch.
    pub(crate) async fn verify_binding(
        &self,
        run: &RunContext,
        binding: &Binding,
        fargate: &Result<Vec<FargateProfile>>,
    ) -> Result<VerifyReport> {
        let role = Self::role_ref(binding)?;
        if self.mode_of(binding) == AwsRoleMode::Irsa {
            return self.verify_irsa(run, binding).await;
        }
        let mut report = VerifyReport::default();
        let Some(cluster) = self.verify_cluster(run, &mut report, true).await? else {
            return Ok(report);
        };
        self.verify_fargate(binding, fargate, &mut report)?;
        let info = self
            .verify_role(run, role, binding, Some(&cluster), &mut report)
            .await?;
        self.verify_association(run, binding, info.as_ref(), &mut report)
            .await?;
        Ok(report)
    }

    /// The verify checks of the role: existence, account, trust, permissions lint.
    async fn verify_role(
        &self,
        run: &RunContext,
        role: &RoleRef,
        binding: &Binding,
        cluster: Option<&ClusterInfo>,
        report: &mut VerifyReport,
    ) -> Result<Option<RoleInfo>> {
        if let (Some(arn), Some(cluster)) = (role.arn(), cluster)
            && let Err(e) = self.check_account(cluster, arn)
        {
            report.push(Finding::from_error(codes::ROLE_CROSS_ACCOUNT, &e));
            return Ok(None);
        }
        let info = match self.get_role(run, role, binding).await {
            Ok(info) => info,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput) => {
                report.push(Finding::from_error(codes::ROLE_NOT_FOUND, &e));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if let Some(cluster) = cluster
            && let Err(e) = self.check_account(cluster, &info.arn)
        {
            report.push(Finding::from_error(codes::ROLE_CROSS_ACCOUNT, &e));
        }
        for finding in
            trust::check_trust_policy_raw(&info.assume_role_policy_document).findings(&info.arn)
        {
            report.push(finding);
        }
        self.lint_permissions(run, &info, report).await?;
        Ok(Some(info))
    }

    async fn lint_permissions(
        &self,
        run: &RunContext,
        role: &RoleInfo,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let mut flagged = Vec::new();
        let docs = self
            .permission_documents(run, role, |policy| {
                // A broad managed policy is its own finding: its document would repeat it in
                // other words, so it is not read.
                match lint::lint_attached_policy(policy) {
                    Some(finding) => {
                        flagged.push(finding);
                        true
                    }
                    None => false,
                }
            })
            .await?;
        for finding in flagged {
            report.push(finding);
        }
        for (name, doc) in &docs {
            for finding in lint::lint_policy_raw(name, doc) {
                report.push(finding);
            }
        }
        Ok(())
    }

    /// The permission policies of `role`, as (name, document as IAM returns it): the attached
    /// managed policies (except those `skip` says), then the inline ones.
    pub(crate) async fn permission_documents(
        &self,
        run: &RunContext,
        role: &RoleInfo,
        mut skip: impl FnMut(&AttachedPolicy) -> bool + Send,
    ) -> Result<Vec<(String, String)>> {
        let attached = self
            .calls
            .run(run, op::LIST_ATTACHED_ROLE_POLICIES, || {
                self.api.list_attached_role_policies(&role.name)
            })
            .await?;
        let mut docs = Vec::new();
        for policy in &attached {
            if skip(policy) {
                continue;
            }
            let doc = self
                .calls
                .run(run, op::GET_POLICY_VERSION, || {
                    self.api.get_managed_policy_document(&policy.arn)
                })
                .await?;
            docs.push((policy.name.clone(), doc));
        }
        let inline = self
            .calls
            .run(run, op::LIST_ROLE_POLICIES, || {
                self.api.list_role_policies(&role.name)
            })
            .await?;
        for name in &inline {
            let doc = self
                .calls
                .run(run, op::GET_ROLE_POLICY, || {
                    self.api.get_role_policy(&role.name, name)
                })
                .await?;
            docs.push((name.clone(), doc));
        }
        Ok(docs)
    }

    /// Fargate profiles that select the binding's namespace: Fargate pods get no Pod Identity
    /// credentials. Every pod of the namespace when a selector names no labels (error), else
    /// those with its labels (warning: this side cannot see the pods' labels).
    /// The cluster's Fargate profiles (ListFargateProfiles, then DescribeFargateProfile of
    /// each): read once per verify batch, not per binding.
    pub(crate) async fn fargate_profiles(&self, run: &RunContext) -> Result<Vec<FargateProfile>> {
        let names = self
            .calls
            .run(run, op::LIST_FARGATE_PROFILES, || {
                self.api.list_fargate_profiles(&self.cluster)
            })
            .await?;
        let mut profiles = Vec::with_capacity(names.len());
        for name in &names {
            match self
                .calls
                .run(run, op::DESCRIBE_FARGATE_PROFILE, || {
                    self.api.describe_fargate_profile(&self.cluster, name)
                })
                .await
            {
                Ok(p) => profiles.push(p),
                // Deleted between the list and the describe.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(profiles)
    }

    /// Fargate profiles that select the binding's namespace: Fargate pods get no Pod Identity
    /// credentials. Every pod of the namespace when a selector names no labels (error), else
    /// those with its labels (warning: this side cannot see the pods' labels). Profiles that
    /// could not be read for lack of permission are an info finding, not a failed verify.
    fn verify_fargate(
        &self,
        binding: &Binding,
        fargate: &Result<Vec<FargateProfile>>,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let profiles = match fargate {
            Ok(profiles) => profiles,
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                report.push(Finding::new(
                    Severity::Info,
                    codes::FARGATE_NOT_READ,
                    format!("the cluster's Fargate profiles were not read: {e}"),
                    "grant eks:ListFargateProfiles and eks:DescribeFargateProfile to check whether Fargate runs the pods (Pod Identity does not serve them)",
                ));
                return Ok(());
            }
            Err(e) => return Err(e.clone()),
        };
        let namespace = binding.workload.namespace().as_str();
        for profile in profiles {
            for selector in &profile.selectors {
                if !wildcard_match(&selector.namespace, namespace) {
                    continue;
                }
                let (severity, which) = if selector.labels.is_empty() {
                    (Severity::Error, "every pod of namespace".to_owned())
                } else {
                    let labels: Vec<String> = selector
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    (
                        Severity::Warning,
                        format!("pods labelled {} in namespace", labels.join(", ")),
                    )
                };
                report.push(Finding::new(
                    severity,
                    codes::FARGATE_SELECTED,
                    format!(
                        "Fargate profile {} of cluster {} runs {which} {namespace} (selector {:?}) on Fargate, where EKS Pod Identity gives no credentials: {} would get none there",
                        profile.name, self.cluster, selector.namespace, binding.workload
                    ),
                    format!(
                        "bind service {} with IRSA (`mode: irsa` on its awsRole connection), or keep its pods off Fargate",
                        binding.workload.service()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The target role's checks, as findings: not checked from here (info), missing, not
    /// trusting the association's role, or not assumable by it (errors).
    async fn verify_chain(
        &self,
        run: &RunContext,
        binding: &Binding,
        role: &RoleInfo,
        external_id: Option<&str>,
        report: &mut VerifyReport,
    ) -> Result<()> {
        match self
            .check_chain(run, binding, role, external_id, true)
            .await
        {
            Ok(ChainCheck::NotChecked(note)) => report.push(Finding::new(
                Severity::Info,
                codes::TARGET_ROLE_NOT_CHECKED,
                note,
                "nothing to do if the target role's trust policy has the statement above",
            )),
            Ok(ChainCheck::None | ChainCheck::Checked) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                report.push(Finding::from_error(codes::TARGET_ROLE_NOT_FOUND, &e));
            }
            Err(e) if e.kind() == ErrorKind::Conflict => {
                let code = if e.operation() == Some(op::GET_ROLE_POLICY.name()) {
                    codes::TARGET_ROLE_NOT_ASSUMABLE
                } else {
                    codes::TARGET_ROLE_UNTRUSTED
                };
                report.push(Finding::from_error(code, &e));
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// The connection's session policy, linted with the rules of role policies: it narrows
    /// the role, but a wide one narrows nothing.
    fn lint_session_policy(&self, binding: &Binding, report: &mut VerifyReport) -> Result<()> {
        let (_, options) = Self::role_and_options(binding)?;
        if let Some(policy) = &options.session_policy {
            let name = format!("session policy of {}", binding.workload);
            for finding in lint::lint_policy_raw(&name, policy) {
                report.push(finding);
            }
        }
        Ok(())
    }

    /// Every (namespace, service account) of the cluster associated with `role_arn`.
    async fn service_accounts_of_role(
        &self,
        run: &RunContext,
        role_arn: &str,
    ) -> Result<Vec<(String, String)>> {
        let all = self.list_all(run, None, None).await?;
        let known: HashMap<String, String> = self.known_roles();
        let roles: Vec<Result<(AssociationSummary, String)>> = stream::iter(all)
            .map(|s| {
                let cached = known.get(&s.association_id).cloned();
                async move {
                    let role = match cached {
                        Some(r) => r,
                        None => self.describe(run, &s.association_id).await?.role_arn,
                    };
                    Ok((s, role))
                }
            })
            .buffer_unordered(DESCRIBE_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::new();
        for r in roles {
            match r {
                Ok((s, role)) if role == role_arn => out.push((s.namespace, s.service_account)),
                Ok(_) => {}
                // Deleted between list and describe: not sharing anything any more.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        out.sort();
        Ok(out)
    }

    /// The cluster exists and is ACTIVE; with `agent`, the Pod Identity agent is installed and
    /// healthy (IRSA needs no agent).
    pub(crate) async fn verify_cluster(
        &self,
        run: &RunContext,
        report: &mut VerifyReport,
        agent: bool,
    ) -> Result<Option<ClusterInfo>> {
        // Verify reads the cluster afresh: a cached status may be old.
        let fresh = match self.describe_cluster(run).await {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                report.push(Finding::from_error(codes::CLUSTER_NOT_FOUND, &e));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if fresh.status != "ACTIVE" {
            report.push(Finding::error(
                codes::CLUSTER_NOT_ACTIVE,
                format!("cluster {} is {}, not ACTIVE", self.cluster, fresh.status),
                "wait for the cluster to become ACTIVE, or repair it in the EKS console",
            ));
        }
        if !agent {
            return Ok(Some(fresh));
        }
        let addon = self
            .calls
            .run(run, op::DESCRIBE_ADDON, || {
                self.api
                    .describe_addon(&self.cluster, POD_IDENTITY_AGENT_ADDON)
            })
            .await?;
        match addon {
            None => report.push(Finding::error(
                codes::AGENT_MISSING,
                format!(
                    "the {POD_IDENTITY_AGENT_ADDON} add-on is not installed in cluster {}: no pod gets Pod Identity credentials",
                    self.cluster
                ),
                format!(
                    "aws eks create-addon --cluster-name {} --addon-name {POD_IDENTITY_AGENT_ADDON}, {}",
                    self.cluster,
                    Self::irsa_instead()
                ),
            )),
            Some(a) if a.status != "ACTIVE" || !a.health_issues.is_empty() => {
                let severity = if a.status == "ACTIVE" || a.status == "UPDATING" {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                let issues = if a.health_issues.is_empty() {
                    String::new()
                } else {
                    format!("; health issues: {}", a.health_issues.join("; "))
                };
                report.push(Finding::new(
                    severity,
                    codes::AGENT_DEGRADED,
                    format!("the {POD_IDENTITY_AGENT_ADDON} add-on is {}{issues}", a.status),
                    format!(
                        "inspect it with `aws eks describe-addon --cluster-name {} --addon-name {POD_IDENTITY_AGENT_ADDON}` and update or re-install it",
                        self.cluster
                    ),
                ));
            }
            Some(_) => {}
        }
        Ok(Some(fresh))
    }

    async fn verify_association(
        &self,
        run: &RunContext,
        binding: &Binding,
        role: Option<&RoleInfo>,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let w = &binding.workload;
        self.lint_session_policy(binding, report)?;
        let Some(summary) = self.association_of(run, w).await? else {
            report.push(Finding::error(
                codes::ASSOCIATION_MISSING,
                format!(
                    "no Pod Identity association for {} in cluster {}: its pods get no AWS credentials",
                    binding.workload, self.cluster
                ),
                "run bind for this service",
            ));
            if let Some(role) = role {
                self.verify_chain(run, binding, role, None, report).await?;
            }
            return Ok(());
        };
        if let Some(owner) = &summary.owner_arn {
            report.push(Finding::error(
                codes::ASSOCIATION_ADDON_OWNED,
                format!(
                    "the association of {} is owned by {owner}; porter-identity will not change it",
                    binding.workload
                ),
                format!(
                    "give service {} its own service account",
                    binding.workload.service()
                ),
            ));
            return Ok(());
        }
        let a = self.describe(run, &summary.association_id).await?;
        let owner = Owner::of(&a.tags);
        if owner != Owner::Unmarked && !owner.is(w) {
            let e = ownership::conflict(
                binding,
                &owner,
                &self.cluster,
                op::DESCRIBE_POD_IDENTITY_ASSOCIATION,
            );
            report.push(Finding::from_error(codes::ASSOCIATION_OTHER_OWNER, &e));
            return Ok(());
        }
        // Pod Identity needs nothing on the ServiceAccount; when the association last changed
        // tells the cluster side which pods predate it.
        report.service_account_patch = Self::patch_of(false, Some(&a));
        let Some(role) = role else {
            return Ok(());
        };
        if a.role_arn != role.arn {
            report.push(Finding::error(
                codes::ASSOCIATION_WRONG_ROLE,
                format!(
                    "the association of {} points at {}, not at {}",
                    binding.workload, a.role_arn, role.arn
                ),
                "run bind for this service to point it at the role in porter.yaml",
            ));
            return Ok(());
        }
        let wanted = Self::wanted_settings(binding)?;
        if !a.settings.same_as(&wanted) {
            report.push(Finding::error(
                codes::ASSOCIATION_SETTINGS_DIFFER,
                format!(
                    "the association of {} asks {} of EKS, not {} as porter.yaml says",
                    binding.workload,
                    describe_settings(&a.settings),
                    describe_settings(&wanted)
                ),
                "run bind for this service to change the association in place",
            ));
        }
        let external_id = (a.settings.target_role_arn == wanted.target_role_arn)
            .then_some(a.external_id.as_deref())
            .flatten();
        self.verify_chain(run, binding, role, external_id, report)
            .await?;
        let sharing = self.service_accounts_of_role(run, &role.arn).await?;
        if let Some(finding) = lint::lint_shared_role(&role.arn, &sharing) {
            report.push(finding);
        }
        Ok(())
    }
}

/// An association's settings in words, for a finding.
fn describe_settings(s: &AssociationSettings) -> String {
    let target = s
        .target_role_arn
        .as_deref()
        .map_or("no target role".to_owned(), |t| format!("target role {t}"));
    let tags = if s.disable_session_tags {
        "session tags off"
    } else {
        "session tags on"
    };
    let policy = if s.policy.is_some() {
        "a session policy"
    } else {
        "no session policy"
    };
    format!("{target}, {tags}, {policy}")
}
