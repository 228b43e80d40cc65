//! An in-memory EKS + IAM with the real semantics, for tests and demos without an AWS account
//! (feature `fake`).
//!
//! [`FakeAws`] implements [`EksIamApi`], so the provider runs on it unchanged, and [`serve`]
//! puts the same state behind the EKS REST-JSON API so that the real `aws_sdk_eks::Client`
//! can be tested against it (moto serves IAM and EKS clusters, but not Pod Identity).
//!
//! What it enforces, like EKS: one association per (cluster, namespace, service account),
//! `ResourceInUseException` on a second one, idempotent `clientRequestToken`s, a per-cluster
//! association quota, and on create/update a role that exists and trusts
//! `pods.eks.amazonaws.com` with `sts:AssumeRole` and `sts:TagSession`. Like IAM, it returns
//! policy documents URL-encoded.
//!
//! ```
//! use porter_identity_aws::api::{CreateAssociation, EksIamApi};
//! use porter_identity_aws::fake::{FakeAws, pods_trust_policy};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let aws = FakeAws::new("111122223333", "us-east-1");
//! aws.add_cluster("prod").add_role("shop-api", &pods_trust_policy());
//! let created = aws
//!     .create_pod_identity_association(CreateAssociation {
//!         cluster: "prod".into(),
//!         namespace: "shop".into(),
//!         service_account: "api".into(),
//!         role_arn: aws.role_arn("shop-api"),
//!         client_request_token: "token-1".into(),
//!         ..CreateAssociation::default()
//!     })
//!     .await?;
//! assert!(created.association_id.starts_with("a-"));
//! assert_eq!(aws.write_calls(), 1);
//! # Ok::<(), porter_identity_core::Error>(())
//! # }).unwrap();
//! ```

mod error;
mod http;
mod pods_trust;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use porter_identity_core::{ErrorKind, Operation, Result};

use crate::api::{
    AddonInfo, Association, AssociationPage, AssociationSettings, AssociationSummary,
    AttachedPolicy, ClusterInfo, CreateAssociation, EksIamApi, FargateProfile, FargateSelector,
    OidcProvider, RoleInfo, UpdateAssociation,
};
use crate::operation as op;

pub use http::serve;
pub use porter_identity_core::testing::FakeServer;

use error::AwsError;
use state::{AssociationRecord, CreateInput, State, UpdateInput};

/// A trust policy that lets EKS Pod Identity use a role: principal `pods.eks.amazonaws.com`,
/// actions `sts:AssumeRole` and `sts:TagSession` (the policy the EKS documentation gives).
pub fn pods_trust_policy() -> String {
    // A literal rather than `json!`, to keep the documented member order (Version first).
    r#"{"Version":"2012-10-17","Statement":[{"Sid":"AllowEksAuthToAssumeRoleForPodIdentity","Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#
        .to_owned()
}

/// An in-memory EKS + IAM for one account and region.
///
/// Cheap to clone: clones share the same state, so a test can keep one handle to set up and
/// inspect while the provider (or [`serve`]) uses another. Setup methods take `&self` and
/// return `&Self` to chain; they panic on a setup mistake (an unknown cluster or role), since
/// that is a bug in the test, not a cloud error.
///
/// Operations are counted by their AWS names ([`FakeAws::calls`]); failures can be injected
/// ([`FakeAws::inject_failures`]), latency added ([`FakeAws::set_latency`]) and calls stalled
/// ([`FakeAws::stall_every`]).
#[derive(Clone)]
pub struct FakeAws {
    // A std mutex, never held across an await: every operation is a short critical section.
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FakeAws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // try_lock: Debug may be called while the state is locked (e.g. in a panic message).
        match self.state.try_lock() {
            Ok(state) => {
                let (clusters, roles) = state.counts();
                f.debug_struct("FakeAws")
                    .field("account", &state.account)
                    .field("region", &state.region)
                    .field("clusters", &clusters)
                    .field("roles", &roles)
                    .finish_non_exhaustive()
            }
            Err(_) => f.write_str("FakeAws { <locked> }"),
        }
    }
}

impl FakeAws {
    /// An empty account `account_id` in `region` (no clusters, no roles).
    pub fn new(account_id: &str, region: &str) -> Self {
        FakeAws {
            state: Arc::new(Mutex::new(State::new(account_id, region))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a test thread must not turn every later call into a second panic: the
        // state is only mutated in small, consistent steps, so a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The account id.
    pub fn account_id(&self) -> String {
        self.lock().account.clone()
    }

    /// The region.
    pub fn region(&self) -> String {
        self.lock().region.clone()
    }

    /// The ARN a cluster named `name` has (or would have) in this account.
    pub fn cluster_arn(&self, name: &str) -> String {
        self.lock().cluster_arn(name)
    }

    /// The ARN of the role named `name` in this account: `arn:aws:iam::<account>:role/<name>`.
    pub fn role_arn(&self, name: &str) -> String {
        self.lock().role_arn(name)
    }

    /// See [`pods_trust_policy`].
    pub fn pods_trust_policy() -> String {
        pods_trust_policy()
    }

    // ---- setup ----------------------------------------------------------------------------

    /// Adds an `ACTIVE` cluster `arn:aws:eks:<region>:<account>:cluster/<name>`.
    ///
    /// # Panics
    /// If the cluster exists.
    pub fn add_cluster(&self, name: &str) -> &Self {
        self.lock().add_cluster(name);
        self
    }

    /// Sets a cluster's status (`CREATING`, `ACTIVE`, `DELETING`, `FAILED`, `UPDATING`,
    /// `PENDING`).
    ///
    /// # Panics
    /// If the cluster does not exist.
    pub fn set_cluster_status(&self, name: &str, status: &str) -> &Self {
        self.lock().set_cluster_status(name, status);
        self
    }

    /// Installs an add-on (e.g. [`crate::api::POD_IDENTITY_AGENT_ADDON`]) with `status`
    /// (`ACTIVE`, `DEGRADED`, …), or changes the status of an installed one.
    ///
    /// # Panics
    /// If the cluster does not exist.
    pub fn install_addon(&self, cluster: &str, name: &str, status: &str) -> &Self {
        self.lock().install_addon(cluster, name, status);
        self
    }

    /// Uninstalls an add-on; DescribeAddon then finds none.
    ///
    /// # Panics
    /// If the cluster does not exist.
    pub fn remove_addon(&self, cluster: &str, name: &str) -> &Self {
        self.lock().remove_addon(cluster, name);
        self
    }

    /// Replaces an add-on's `health.issues` with `(code, message)` pairs, e.g.
    /// `("InsufficientNumberOfReplicas", "The add-on is unhealthy …")`.
    ///
    /// # Panics
    /// If the cluster does not exist or the add-on is not installed.
    pub fn set_addon_health_issues(
        &self,
        cluster: &str,
        addon: &str,
        issues: &[(&str, &str)],
    ) -> &Self {
        self.lock().set_addon_health_issues(cluster, addon, issues);
        self
    }

    /// Adds the role `arn:aws:iam::<account>:role/<name>` with a trust policy (JSON, stored as
    /// given; GetRole returns it URL-encoded like IAM).
    ///
    /// # Panics
    /// If the role exists.
    pub fn add_role(&self, name: &str, trust_policy_json: &str) -> &Self {
        let mut state = self.lock();
        let arn = state.role_arn(name);
        state.add_role_with_arn(&arn, trust_policy_json);
        drop(state);
        self
    }

    /// Adds a role by full ARN, e.g. in another account. EKS's checks on create/update find
    /// it; GetRole by name does not when the account differs (IAM only sees its own account).
    ///
    /// # Panics
    /// If `arn` is not a role ARN or the role exists.
    pub fn add_role_with_arn(&self, arn: &str, trust_policy_json: &str) -> &Self {
        self.lock().add_role_with_arn(arn, trust_policy_json);
        self
    }

    /// Replaces a role's trust policy. `role` is a name in this account or a full ARN (as in
    /// every role setup method).
    ///
    /// # Panics
    /// If the role does not exist.
    pub fn set_trust_policy(&self, role: &str, trust_policy_json: &str) -> &Self {
        self.lock().set_trust_policy(role, trust_policy_json);
        self
    }

    /// Deletes a role (by name or ARN; no-op when absent). Associations that point at it stay,
    /// as in AWS.
    pub fn delete_role(&self, role: &str) -> &Self {
        self.lock().delete_role(role);
        self
    }

    /// Attaches the managed policy `arn` (named `name`, with `document_json`) to a role. The
    /// same ARN attached again with another document gets a new default version.
    ///
    /// # Panics
    /// If the role does not exist.
    pub fn attach_managed_policy(
        &self,
        role: &str,
        name: &str,
        arn: &str,
        document_json: &str,
    ) -> &Self {
        self.lock()
            .attach_managed_policy(role, name, arn, document_json);
        self
    }

    /// Adds or replaces an inline policy of a role.
    ///
    /// # Panics
    /// If the role does not exist.
    pub fn put_role_policy(&self, role: &str, policy_name: &str, document_json: &str) -> &Self {
        self.lock()
            .put_role_policy(role, policy_name, document_json);
        self
    }

    /// Creates an association owned by an EKS add-on (`ownerArn` set), as EKS does when an
    /// add-on is installed with a Pod Identity configuration. No role checks, no call counted.
    /// Update and Delete of it fail with `InvalidRequestException`, as it belongs to the add-on.
    ///
    /// # Panics
    /// If the cluster does not exist or the service account already has an association.
    pub fn add_addon_owned_association(
        &self,
        cluster: &str,
        namespace: &str,
        service_account: &str,
        role_arn: &str,
        owner_arn: &str,
    ) -> Association {
        to_association(self.lock().add_addon_owned_association(
            cluster,
            namespace,
            service_account,
            role_arn,
            owner_arn,
        ))
    }

    /// The associations of a cluster, in creation order (empty for an unknown cluster).
    /// Counts no call.
    pub fn associations(&self, cluster: &str) -> Vec<Association> {
        self.lock()
            .associations(cluster)
            .into_iter()
            .map(to_association)
            .collect()
    }

    /// When the association of `namespace/service_account` on `cluster` was created and last
    /// modified (EKS's `createdAt` and `modifiedAt`); `None` without one. Counts no call.
    pub fn association_times(
        &self,
        cluster: &str,
        namespace: &str,
        service_account: &str,
    ) -> Option<(SystemTime, SystemTime)> {
        let at = |secs: f64| {
            Duration::try_from_secs_f64(secs)
                .ok()
                .map(|d| UNIX_EPOCH + d)
        };
        self.lock()
            .associations(cluster)
            .into_iter()
            .find(|a| a.namespace == namespace && a.service_account == service_account)
            .and_then(|a| Some((at(a.created_at)?, at(a.modified_at)?)))
    }

    /// Sets when the association of `namespace/service_account` on `cluster` was created and last
    /// modified: for a test of a link made long ago, or a demo that brings its links back as it
    /// left them (the CLI's `--fake-state`). Whether there is such an association; counts no
    /// call.
    pub fn set_association_times(
        &self,
        cluster: &str,
        namespace: &str,
        service_account: &str,
        created: SystemTime,
        modified: SystemTime,
    ) -> bool {
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        self.lock().set_association_times(
            cluster,
            namespace,
            service_account,
            secs(created),
            secs(modified),
        )
    }

    /// The OIDC issuer URL of a cluster (`https://oidc.eks.<region>.amazonaws.com/id/<ID>`),
    /// which DescribeCluster returns as `identity.oidc.issuer`.
    ///
    /// # Panics
    /// If the cluster does not exist.
    pub fn cluster_oidc_issuer(&self, cluster: &str) -> String {
        self.lock()
            .describe_cluster(cluster)
            .unwrap_or_else(|_| panic!("FakeAws::cluster_oidc_issuer: no cluster `{cluster}`"))
            .oidc_issuer()
    }

    /// Adds an IAM OIDC identity provider for `issuer` accepting `client_ids` (IRSA needs
    /// `sts.amazonaws.com`), as `aws iam create-open-id-connect-provider` does; its ARN.
    pub fn add_oidc_provider(&self, issuer: &str, client_ids: &[&str]) -> String {
        self.lock().add_oidc_provider(issuer, client_ids)
    }

    /// Adds the IAM OIDC provider of a cluster's issuer for IRSA (audience
    /// `sts.amazonaws.com`), as `eksctl utils associate-iam-oidc-provider` does; its ARN.
    ///
    /// # Panics
    /// If the cluster does not exist.
    pub fn add_cluster_oidc_provider(&self, cluster: &str) -> String {
        let issuer = self.cluster_oidc_issuer(cluster);
        self.add_oidc_provider(&issuer, &["sts.amazonaws.com"])
    }

    /// Deletes an IAM OIDC provider (no-op when absent).
    pub fn remove_oidc_provider(&self, arn: &str) -> &Self {
        self.lock().remove_oidc_provider(arn);
        self
    }

    /// Adds an ACTIVE Fargate profile to a cluster: pods of a namespace matching each
    /// selector's pattern (`*` and `?` allowed) with all its labels run on Fargate.
    ///
    /// # Panics
    /// If the cluster does not exist.
    pub fn add_fargate_profile(
        &self,
        cluster: &str,
        name: &str,
        selectors: &[(&str, &[(&str, &str)])],
    ) -> &Self {
        let selectors = selectors
            .iter()
            .map(|(ns, labels)| {
                let labels = labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                ((*ns).to_owned(), labels)
            })
            .collect();
        self.lock().add_fargate_profile(cluster, name, selectors);
        self
    }

    /// Sets the per-cluster association quota (EKS's is 5,000), so tests can reach it cheaply.
    pub fn set_association_limit(&self, limit: usize) -> &Self {
        self.lock().association_limit = limit;
        self
    }

    // ---- knobs ----------------------------------------------------------------------------

    /// Makes the next `count` calls of operation `op` (an AWS name such as `GetRole`; `None`
    /// for any operation) fail with `kind`: `Throttled` answers `ThrottlingException` "Rate
    /// exceeded" (HTTP 429), `Unavailable` a `ServerException` (HTTP 500); other kinds the
    /// nearest AWS code. Injections queue up in the order given; failed calls still count.
    ///
    /// # Panics
    /// If `op` is not an operation the fake knows, so that a typo cannot make a test vacuous.
    pub fn inject_failures(&self, op: Option<&str>, kind: ErrorKind, count: u32) -> &Self {
        self.lock().calls.inject(op, kind, count);
        self
    }

    /// Adds `latency` to every call (slept after the state is updated and the lock released),
    /// so concurrent callers interleave as they would against AWS.
    pub fn set_latency(&self, latency: Duration) -> &Self {
        self.lock().calls.set_latency(latency);
        self
    }

    /// Makes every `every`-th call (all operations counted together; `0` turns it off) answer
    /// only after `stall` more, like an endpoint that hangs now and then. The call takes effect
    /// first, as on a real endpoint whose answer is slow: a stalled create has created.
    pub fn stall_every(&self, every: u64, stall: Duration) -> &Self {
        self.lock().calls.stall_every(every, stall);
        self
    }

    /// Calls so far, by AWS operation name. Each [`EksIamApi`] method counts once (each page
    /// of `ListPodIdentityAssociations`, 100 associations a page, is one call), except
    /// `get_managed_policy_document`, which counts `GetPolicy` and `GetPolicyVersion`; over
    /// HTTP each request counts.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.lock().calls.counts()
    }

    /// Calls of one operation so far.
    pub fn call_count(&self, op: &str) -> u64 {
        self.lock().calls.count(op)
    }

    /// Makes every EKS operation (not IAM's) fail with `kind` for its next `count` calls: the
    /// EKS endpoint down, or throttling, while IAM answers.
    pub fn inject_eks_failures(&self, kind: ErrorKind, count: u32) -> &Self {
        for op in Self::eks_operations() {
            self.inject_failures(Some(op), kind, count);
        }
        self
    }

    /// EKS calls so far (IAM's not counted), failed ones included.
    pub fn eks_calls(&self) -> u64 {
        Self::eks_operations().map(|op| self.call_count(op)).sum()
    }

    fn eks_operations() -> impl Iterator<Item = &'static str> {
        op::ALL
            .into_iter()
            .filter(|o| o.endpoint() == "eks")
            .map(Operation::name)
    }

    /// Create, Update and DeletePodIdentityAssociation calls so far, failed ones included.
    pub fn write_calls(&self) -> u64 {
        self.lock().calls.sum(&state::WRITE_OPERATIONS)
    }

    /// Forgets the calls counted so far (e.g. after setup, before the code under test runs).
    pub fn reset_calls(&self) -> &Self {
        self.lock().calls.reset();
        self
    }

    // ---- the calls ------------------------------------------------------------------------

    /// Runs one AWS call: counts it, answers an injected failure or runs `op` on the state,
    /// then sleeps the latency with the lock released. Shared by both faces, so HTTP requests
    /// count and fail the same way.
    async fn call<T, F>(&self, operation: Operation, op: F) -> Result<T, AwsError>
    where
        F: FnOnce(&mut State) -> Result<T, AwsError> + Send,
        T: Send,
    {
        let (result, latency) = {
            let mut state = self.lock();
            let result = state
                .begin_call(operation.name())
                .and_then(|()| op(&mut state));
            (result, state.calls.delay())
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        result
    }

    /// [`FakeAws::call`] with the error as the provider sees it.
    async fn api_call<T, F>(&self, operation: Operation, op: F) -> Result<T>
    where
        F: FnOnce(&mut State) -> Result<T, AwsError> + Send,
        T: Send,
    {
        self.call(operation, op)
            .await
            .map_err(|e| e.into_error(operation.name()))
    }
}

fn to_association(r: AssociationRecord) -> Association {
    Association {
        association_id: r.id,
        association_arn: r.arn,
        namespace: r.namespace,
        service_account: r.service_account,
        role_arn: r.role_arn,
        settings: AssociationSettings {
            target_role_arn: r.target_role_arn,
            disable_session_tags: r.disable_session_tags,
            policy: r.policy,
        },
        external_id: r.external_id,
        owner_arn: r.owner_arn,
        tags: r.tags,
        changed_at: std::time::Duration::try_from_secs_f64(r.modified_at.max(r.created_at))
            .ok()
            .map(|d| std::time::UNIX_EPOCH + d),
    }
}

fn to_summary(r: AssociationRecord) -> AssociationSummary {
    AssociationSummary {
        association_id: r.id,
        association_arn: r.arn,
        namespace: r.namespace,
        service_account: r.service_account,
        owner_arn: r.owner_arn,
    }
}

#[async_trait]
impl EksIamApi for FakeAws {
    async fn describe_cluster(&self, cluster: &str) -> Result<ClusterInfo> {
        let c = self
            .api_call(op::DESCRIBE_CLUSTER, |s| s.describe_cluster(cluster))
            .await?;
        Ok(ClusterInfo {
            oidc_issuer: Some(c.oidc_issuer()),
            name: c.name,
            arn: c.arn,
            status: c.status,
        })
    }

    async fn describe_addon(&self, cluster: &str, addon: &str) -> Result<Option<AddonInfo>> {
        let addon = self
            .api_call(op::DESCRIBE_ADDON, |s| s.describe_addon(cluster, addon))
            .await?;
        Ok(addon.map(|a| AddonInfo {
            name: a.name,
            status: a.status,
            health_issues: a
                .health_issues
                .into_iter()
                .map(|(code, message)| format!("{code}: {message}"))
                .collect(),
        }))
    }

    async fn get_role(&self, role_name: &str) -> Result<RoleInfo> {
        let role = self
            .api_call(op::GET_ROLE, |s| s.get_role(role_name))
            .await?;
        Ok(RoleInfo {
            name: role.name,
            arn: role.arn,
            assume_role_policy_document: state::url_encode(&role.trust_policy),
        })
    }

    async fn list_pod_identity_associations<'a>(
        &self,
        cluster: &str,
        namespace: Option<&'a str>,
        service_account: Option<&'a str>,
        next_token: Option<String>,
    ) -> Result<AssociationPage> {
        // Pages of 100, as EKS answers without maxResults: each page is a call.
        let page = self
            .api_call(op::LIST_POD_IDENTITY_ASSOCIATIONS, |s| {
                s.list_associations(
                    cluster,
                    namespace,
                    service_account,
                    state::PAGE_SIZE,
                    next_token.as_deref(),
                )
            })
            .await?;
        Ok(AssociationPage {
            associations: page.associations.into_iter().map(to_summary).collect(),
            next_token: page.next_token,
        })
    }

    async fn describe_pod_identity_association(
        &self,
        cluster: &str,
        association_id: &str,
    ) -> Result<Association> {
        self.api_call(op::DESCRIBE_POD_IDENTITY_ASSOCIATION, |s| {
            s.describe_association(cluster, association_id)
        })
        .await
        .map(to_association)
    }

    async fn create_pod_identity_association(
        &self,
        input: CreateAssociation,
    ) -> Result<Association> {
        let input = CreateInput {
            cluster: input.cluster,
            namespace: input.namespace,
            service_account: input.service_account,
            role_arn: input.role_arn,
            client_request_token: Some(input.client_request_token),
            tags: input.tags,
            disable_session_tags: input.settings.disable_session_tags.then_some(true),
            target_role_arn: input.settings.target_role_arn,
            policy: input.settings.policy,
        };
        self.api_call(op::CREATE_POD_IDENTITY_ASSOCIATION, |s| {
            s.create_association(input)
        })
        .await
        .map(to_association)
    }

    async fn update_pod_identity_association(
        &self,
        input: UpdateAssociation,
    ) -> Result<Association> {
        let (cluster, association_id) = (input.cluster, input.association_id);
        let input = UpdateInput {
            role_arn: Some(input.role_arn),
            disable_session_tags: input.disable_session_tags,
            target_role_arn: input.target_role_arn,
            policy: input.policy,
        };
        self.api_call(op::UPDATE_POD_IDENTITY_ASSOCIATION, |s| {
            s.update_association(&cluster, &association_id, input)
        })
        .await
        .map(to_association)
    }

    async fn delete_pod_identity_association(
        &self,
        cluster: &str,
        association_id: &str,
    ) -> Result<()> {
        self.api_call(op::DELETE_POD_IDENTITY_ASSOCIATION, |s| {
            s.delete_association(cluster, association_id)
        })
        .await
        .map(|_| ())
    }

    async fn list_attached_role_policies(&self, role_name: &str) -> Result<Vec<AttachedPolicy>> {
        let attached = self
            .api_call(op::LIST_ATTACHED_ROLE_POLICIES, |s| {
                s.list_attached_role_policies(role_name)
            })
            .await?;
        Ok(attached
            .into_iter()
            .map(|(name, arn)| AttachedPolicy { name, arn })
            .collect())
    }

    async fn get_managed_policy_document(&self, policy_arn: &str) -> Result<String> {
        // Two calls, as against IAM: the default version first, then its document.
        let version = self
            .api_call(op::GET_POLICY, |s| s.get_policy(policy_arn))
            .await?;
        self.api_call(op::GET_POLICY_VERSION, |s| {
            s.get_policy_version(policy_arn, &version)
        })
        .await
    }

    async fn list_role_policies(&self, role_name: &str) -> Result<Vec<String>> {
        self.api_call(op::LIST_ROLE_POLICIES, |s| s.list_role_policies(role_name))
            .await
    }

    async fn get_role_policy(&self, role_name: &str, policy_name: &str) -> Result<String> {
        self.api_call(op::GET_ROLE_POLICY, |s| {
            s.get_role_policy(role_name, policy_name)
        })
        .await
    }

    async fn list_open_id_connect_providers(&self) -> Result<Vec<String>> {
        self.api_call(op::LIST_OPEN_ID_CONNECT_PROVIDERS, |s| {
            Ok(s.list_oidc_providers())
        })
        .await
    }

    async fn get_open_id_connect_provider(&self, arn: &str) -> Result<OidcProvider> {
        let p = self
            .api_call(op::GET_OPEN_ID_CONNECT_PROVIDER, |s| {
                s.get_oidc_provider(arn)
            })
            .await?;
        Ok(OidcProvider {
            arn: p.arn,
            url: p.url,
            client_ids: p.client_ids,
        })
    }

    async fn list_fargate_profiles(&self, cluster: &str) -> Result<Vec<String>> {
        self.api_call(op::LIST_FARGATE_PROFILES, |s| {
            s.list_fargate_profiles(cluster)
        })
        .await
    }

    async fn describe_fargate_profile(&self, cluster: &str, name: &str) -> Result<FargateProfile> {
        let p = self
            .api_call(op::DESCRIBE_FARGATE_PROFILE, |s| {
                s.describe_fargate_profile(cluster, name)
            })
            .await?;
        Ok(FargateProfile {
            name: p.name,
            status: p.status,
            selectors: p
                .selectors
                .into_iter()
                .map(|(namespace, labels)| FargateSelector { namespace, labels })
                .collect(),
        })
    }
}
