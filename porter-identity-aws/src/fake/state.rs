//! The fake's in-memory EKS and IAM, and the semantics of each operation. Everything here runs
//! under the one lock of [`super::FakeAws`]; nothing here awaits.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use porter_identity_core::Operation;
use porter_identity_core::testing::FakeCalls;

use super::error::{AwsError, Code};
use super::pods_trust;
use crate::operation as op;

/// What IAM leaves unencoded in the policy documents it returns (RFC 3986 unreserved).
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// EKS's quota of Pod Identity associations per cluster.
pub(crate) const DEFAULT_ASSOCIATION_LIMIT: usize = 5_000;

/// ListPodIdentityAssociations' page size when no `maxResults` is given (also its maximum).
pub(crate) const PAGE_SIZE: usize = 100;

/// EKS's cap on tags per resource (`TagMap` max 50 in the model).
const MAX_TAGS: usize = 50;

/// Every operation the fake counts, by its AWS name; [`State::inject`] refuses others so that a
/// typo cannot make an injected failure silently never fire.
pub(crate) const OPERATIONS: [&str; 17] = Operation::names(op::ALL);

/// The write operations ([`super::FakeAws::write_calls`]).
pub(crate) const WRITE_OPERATIONS: [&str; 3] = Operation::names(op::WRITES);

/// Percent-encodes a policy document the way IAM returns it.
pub(crate) fn url_encode(document: &str) -> String {
    utf8_percent_encode(document, RFC3986).to_string()
}

/// Now, in epoch seconds with millisecond precision (how EKS timestamps read on the wire).
fn now() -> f64 {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    // Milliseconds since 1970 fit an f64 exactly for the next quarter-million years.
    #[allow(clippy::cast_precision_loss)]
    let millis = millis as f64;
    millis / 1000.0
}

/// The partition of a region, for the ARNs the fake makes.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The name of a role from its ARN (`…:role/path/name` → `name`).
fn role_name_of(arn: &str) -> Option<&str> {
    let (_, path) = arn.split_once(":role/")?;
    path.rsplit('/').next().filter(|n| !n.is_empty())
}

/// The account of an ARN.
fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4)
}

/// A cluster.
#[derive(Debug, Clone)]
pub(crate) struct ClusterRecord {
    pub(crate) name: String,
    pub(crate) arn: String,
    pub(crate) status: String,
    pub(crate) created_at: f64,
    /// Hex id used in the cluster's endpoint and OIDC issuer URLs.
    pub(crate) endpoint_id: String,
    pub(crate) addons: BTreeMap<String, AddonRecord>,
    /// Fargate profiles by name.
    pub(crate) fargate_profiles: BTreeMap<String, FargateProfileRecord>,
    /// By creation sequence, so listing is in creation order and page tokens stay valid
    /// when associations are deleted between pages.
    associations: BTreeMap<u64, AssociationRecord>,
    by_key: HashMap<(String, String), u64>,
    by_id: HashMap<String, u64>,
}

impl ClusterRecord {
    /// The cluster's OIDC issuer URL, as EKS makes it: `https://oidc.eks.<region>.amazonaws.com/id/<ID>`.
    pub(crate) fn oidc_issuer(&self) -> String {
        let region = self.arn.split(':').nth(3).unwrap_or_default();
        format!(
            "https://oidc.eks.{region}.amazonaws.com/id/{}",
            self.endpoint_id
        )
    }
}

/// A Fargate profile: which pods (namespace pattern and labels) run on Fargate.
#[derive(Debug, Clone)]
pub(crate) struct FargateProfileRecord {
    pub(crate) name: String,
    pub(crate) cluster: String,
    pub(crate) arn: String,
    pub(crate) status: String,
    pub(crate) selectors: Vec<(String, BTreeMap<String, String>)>,
    pub(crate) created_at: f64,
}

/// An IAM OIDC identity provider.
#[derive(Debug, Clone)]
pub(crate) struct OidcProviderRecord {
    pub(crate) arn: String,
    /// The issuer without `https://`, as IAM stores it.
    pub(crate) url: String,
    pub(crate) client_ids: Vec<String>,
}

/// An installed add-on.
#[derive(Debug, Clone)]
pub(crate) struct AddonRecord {
    pub(crate) name: String,
    pub(crate) cluster: String,
    pub(crate) arn: String,
    pub(crate) status: String,
    pub(crate) version: String,
    /// `(code, message)` pairs.
    pub(crate) health_issues: Vec<(String, String)>,
    pub(crate) created_at: f64,
    pub(crate) modified_at: f64,
}

/// A Pod Identity association, with everything the HTTP face serves.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AssociationRecord {
    seq: u64,
    pub(crate) cluster: String,
    pub(crate) id: String,
    pub(crate) arn: String,
    pub(crate) namespace: String,
    pub(crate) service_account: String,
    pub(crate) role_arn: String,
    pub(crate) owner_arn: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) created_at: f64,
    pub(crate) modified_at: f64,
    pub(crate) disable_session_tags: bool,
    pub(crate) target_role_arn: Option<String>,
    /// Made by EKS when a target role is set, kept while it stays.
    pub(crate) external_id: Option<String>,
    pub(crate) policy: Option<String>,
}

/// An IAM role.
#[derive(Debug, Clone)]
pub(crate) struct RoleRecord {
    pub(crate) name: String,
    pub(crate) arn: String,
    /// Stored decoded; encoded when returned.
    pub(crate) trust_policy: String,
    /// Attached managed policy ARNs, in attachment order.
    attached: Vec<String>,
    inline: BTreeMap<String, String>,
}

/// A customer- or AWS-managed policy.
#[derive(Debug, Clone)]
struct ManagedPolicy {
    name: String,
    document: String,
    /// Bumped when a test attaches the same ARN with another document.
    version: u32,
}

/// The input of CreatePodIdentityAssociation, as either face receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CreateInput {
    pub(crate) cluster: String,
    pub(crate) namespace: String,
    pub(crate) service_account: String,
    pub(crate) role_arn: String,
    pub(crate) client_request_token: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) disable_session_tags: Option<bool>,
    pub(crate) target_role_arn: Option<String>,
    pub(crate) policy: Option<String>,
}

impl CreateInput {
    /// The input without its token: what must match for a repeated token to be a retry.
    fn fingerprint(&self) -> CreateInput {
        CreateInput {
            client_request_token: None,
            ..self.clone()
        }
    }
}

/// The input of UpdatePodIdentityAssociation; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UpdateInput {
    pub(crate) role_arn: Option<String>,
    pub(crate) disable_session_tags: Option<bool>,
    pub(crate) target_role_arn: Option<String>,
    pub(crate) policy: Option<String>,
}

/// What a used client request token answered, kept so a retry gets the same answer.
#[derive(Debug, Clone)]
struct TokenUse {
    input: CreateInput,
    answer: AssociationRecord,
}

/// A page of ListPodIdentityAssociations.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub(crate) associations: Vec<AssociationRecord>,
    pub(crate) next_token: Option<String>,
}

/// The whole fake cloud.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) account: String,
    pub(crate) region: String,
    clusters: BTreeMap<String, ClusterRecord>,
    /// By lower-cased ARN: IAM role names are case-insensitive.
    roles: BTreeMap<String, RoleRecord>,
    policies: BTreeMap<String, ManagedPolicy>,
    /// By ARN.
    oidc_providers: BTreeMap<String, OidcProviderRecord>,
    tokens: HashMap<String, TokenUse>,
    pub(crate) association_limit: usize,
    /// Counters, injected failures, latency and stalls.
    pub(crate) calls: FakeCalls,
    next_seq: u64,
    id_seed: u64,
}

impl State {
    pub(crate) fn new(account: &str, region: &str) -> Self {
        State {
            account: account.to_owned(),
            region: region.to_owned(),
            clusters: BTreeMap::new(),
            roles: BTreeMap::new(),
            policies: BTreeMap::new(),
            oidc_providers: BTreeMap::new(),
            tokens: HashMap::new(),
            association_limit: DEFAULT_ASSOCIATION_LIMIT,
            calls: FakeCalls::new("FakeAws", &OPERATIONS),
            next_seq: 1,
            // Ids differ between fakes, like real ones, without a random-number dependency.
            id_seed: RandomState::new().hash_one(account),
        }
    }

    pub(crate) fn partition(&self) -> &'static str {
        partition(&self.region)
    }

    pub(crate) fn cluster_arn(&self, name: &str) -> String {
        format!(
            "arn:{}:eks:{}:{}:cluster/{name}",
            self.partition(),
            self.region,
            self.account
        )
    }

    pub(crate) fn role_arn(&self, name: &str) -> String {
        format!("arn:{}:iam::{}:role/{name}", self.partition(), self.account)
    }

    // ---- calls, failures ------------------------------------------------------------------

    /// Counts a call and answers with an injected failure when one matches.
    pub(crate) fn begin_call(&mut self, op: &str) -> Result<(), AwsError> {
        self.calls.begin(op).map_err(AwsError::injected)
    }

    // ---- setup ----------------------------------------------------------------------------

    pub(crate) fn add_cluster(&mut self, name: &str) {
        assert!(
            !self.clusters.contains_key(name),
            "FakeAws::add_cluster: cluster `{name}` already exists"
        );
        let arn = self.cluster_arn(name);
        let endpoint_id = format!("{:016X}{:016X}", self.mix(0x0c1), self.mix(0x0c2));
        self.clusters.insert(
            name.to_owned(),
            ClusterRecord {
                name: name.to_owned(),
                arn,
                status: "ACTIVE".to_owned(),
                created_at: now(),
                endpoint_id,
                addons: BTreeMap::new(),
                fargate_profiles: BTreeMap::new(),
                associations: BTreeMap::new(),
                by_key: HashMap::new(),
                by_id: HashMap::new(),
            },
        );
    }

    fn setup_cluster(&mut self, name: &str, what: &str) -> &mut ClusterRecord {
        match self.clusters.get_mut(name) {
            Some(c) => c,
            None => panic!("FakeAws::{what}: no cluster `{name}`; add it with add_cluster first"),
        }
    }

    pub(crate) fn set_cluster_status(&mut self, name: &str, status: &str) {
        self.setup_cluster(name, "set_cluster_status").status = status.to_owned();
    }

    pub(crate) fn install_addon(&mut self, cluster: &str, name: &str, status: &str) {
        let suffix = self.uuid_like();
        let arn = format!(
            "arn:{}:eks:{}:{}:addon/{cluster}/{name}/{suffix}",
            self.partition(),
            self.region,
            self.account,
        );
        let now = now();
        let c = self.setup_cluster(cluster, "install_addon");
        let addon = c
            .addons
            .entry(name.to_owned())
            .or_insert_with(|| AddonRecord {
                name: name.to_owned(),
                cluster: cluster.to_owned(),
                arn,
                status: String::new(),
                version: "v1.3.4-eksbuild.1".to_owned(),
                health_issues: Vec::new(),
                created_at: now,
                modified_at: now,
            });
        status.clone_into(&mut addon.status);
        addon.modified_at = now;
    }

    pub(crate) fn remove_addon(&mut self, cluster: &str, name: &str) {
        self.setup_cluster(cluster, "remove_addon")
            .addons
            .remove(name);
    }

    pub(crate) fn set_addon_health_issues(
        &mut self,
        cluster: &str,
        name: &str,
        issues: &[(&str, &str)],
    ) {
        let c = self.setup_cluster(cluster, "set_addon_health_issues");
        let Some(addon) = c.addons.get_mut(name) else {
            panic!(
                "FakeAws::set_addon_health_issues: add-on `{name}` is not installed in `{cluster}`"
            )
        };
        addon.health_issues = issues
            .iter()
            .map(|(code, message)| ((*code).to_owned(), (*message).to_owned()))
            .collect();
    }

    pub(crate) fn add_role_with_arn(&mut self, arn: &str, trust_policy: &str) {
        let Some(name) = role_name_of(arn) else {
            panic!("FakeAws::add_role_with_arn: `{arn}` is not an IAM role ARN")
        };
        let key = arn.to_ascii_lowercase();
        assert!(
            !self.roles.contains_key(&key),
            "FakeAws: role `{arn}` already exists; use set_trust_policy to change it"
        );
        self.roles.insert(
            key,
            RoleRecord {
                name: name.to_owned(),
                arn: arn.to_owned(),
                trust_policy: trust_policy.to_owned(),
                attached: Vec::new(),
                inline: BTreeMap::new(),
            },
        );
    }

    /// The key of a role given by name (in the fake's account) or by ARN.
    fn role_key(&self, name_or_arn: &str) -> Option<String> {
        if name_or_arn.starts_with("arn:") {
            let key = name_or_arn.to_ascii_lowercase();
            return self.roles.contains_key(&key).then_some(key);
        }
        self.roles
            .iter()
            .find(|(_, r)| {
                account_of(&r.arn) == Some(self.account.as_str())
                    && r.name.eq_ignore_ascii_case(name_or_arn)
            })
            .map(|(k, _)| k.clone())
    }

    fn setup_role(&mut self, name_or_arn: &str, what: &str) -> &mut RoleRecord {
        let key = self.role_key(name_or_arn);
        match key.and_then(|k| self.roles.get_mut(&k)) {
            Some(r) => r,
            None => panic!("FakeAws::{what}: no role `{name_or_arn}`; add it with add_role first"),
        }
    }

    pub(crate) fn set_trust_policy(&mut self, role: &str, trust_policy: &str) {
        trust_policy.clone_into(&mut self.setup_role(role, "set_trust_policy").trust_policy);
    }

    pub(crate) fn delete_role(&mut self, role: &str) {
        if let Some(key) = self.role_key(role) {
            self.roles.remove(&key);
        }
    }

    pub(crate) fn attach_managed_policy(
        &mut self,
        role: &str,
        name: &str,
        arn: &str,
        document: &str,
    ) {
        let r = self.setup_role(role, "attach_managed_policy");
        if !r.attached.iter().any(|a| a == arn) {
            r.attached.push(arn.to_owned());
        }
        let policy = self
            .policies
            .entry(arn.to_owned())
            .or_insert_with(|| ManagedPolicy {
                name: name.to_owned(),
                document: document.to_owned(),
                version: 1,
            });
        if policy.document != document {
            document.clone_into(&mut policy.document);
            policy.version += 1;
        }
    }

    pub(crate) fn put_role_policy(&mut self, role: &str, policy_name: &str, document: &str) {
        self.setup_role(role, "put_role_policy")
            .inline
            .insert(policy_name.to_owned(), document.to_owned());
    }

    pub(crate) fn add_addon_owned_association(
        &mut self,
        cluster: &str,
        namespace: &str,
        service_account: &str,
        role_arn: &str,
        owner_arn: &str,
    ) -> AssociationRecord {
        let key = (namespace.to_owned(), service_account.to_owned());
        if let Some(c) = self.clusters.get(cluster) {
            assert!(
                !c.by_key.contains_key(&key),
                "FakeAws::add_addon_owned_association: {namespace}/{service_account} already has an association in `{cluster}`"
            );
        }
        self.setup_cluster(cluster, "add_addon_owned_association");
        let mut record = self.new_association(
            cluster,
            namespace,
            service_account,
            role_arn,
            BTreeMap::new(),
        );
        record.owner_arn = Some(owner_arn.to_owned());
        self.insert_association(record.clone());
        record
    }

    pub(crate) fn associations(&self, cluster: &str) -> Vec<AssociationRecord> {
        self.clusters
            .get(cluster)
            .map(|c| c.associations.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Sets when the association of `namespace/service_account` was created and last modified
    /// (epoch seconds); whether there is one.
    pub(crate) fn set_association_times(
        &mut self,
        cluster: &str,
        namespace: &str,
        service_account: &str,
        created_at: f64,
        modified_at: f64,
    ) -> bool {
        let Some(record) = self.clusters.get_mut(cluster).and_then(|c| {
            c.associations
                .values_mut()
                .find(|a| a.namespace == namespace && a.service_account == service_account)
        }) else {
            return false;
        };
        record.created_at = created_at;
        record.modified_at = modified_at;
        true
    }

    // ---- ids ------------------------------------------------------------------------------

    /// SplitMix64's finaliser: a bijection on u64, so distinct inputs give distinct ids.
    fn mix(&self, n: u64) -> u64 {
        let mut z = (n ^ self.id_seed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// `a-` and 17 lowercase alphanumerics, like EKS. The last 13 characters encode a
    /// bijection of the sequence number (36^13 > 2^64), so ids never collide.
    fn association_id(&self, seq: u64) -> String {
        let head = base36(self.mix(seq.rotate_left(32) ^ 0x5eed) % 36u64.pow(4), 4);
        format!("a-{head}{}", base36(self.mix(seq), 13))
    }

    fn uuid_like(&mut self) -> String {
        let seq = self.next_seq();
        let a = self.mix(seq);
        let b = self.mix(!seq);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    // ---- EKS ------------------------------------------------------------------------------

    fn cluster(&self, name: &str) -> Result<&ClusterRecord, AwsError> {
        self.clusters
            .get(name)
            .ok_or_else(|| AwsError::not_found(format!("No cluster found for name: {name}.")))
    }

    fn cluster_mut(&mut self, name: &str) -> Result<&mut ClusterRecord, AwsError> {
        self.clusters
            .get_mut(name)
            .ok_or_else(|| AwsError::not_found(format!("No cluster found for name: {name}.")))
    }

    pub(crate) fn describe_cluster(&self, name: &str) -> Result<ClusterRecord, AwsError> {
        self.cluster(name).cloned()
    }

    /// `Ok(None)` when the cluster exists but the add-on is not installed.
    pub(crate) fn describe_addon(
        &self,
        cluster: &str,
        addon: &str,
    ) -> Result<Option<AddonRecord>, AwsError> {
        Ok(self.cluster(cluster)?.addons.get(addon).cloned())
    }

    fn new_association(
        &mut self,
        cluster: &str,
        namespace: &str,
        service_account: &str,
        role_arn: &str,
        tags: BTreeMap<String, String>,
    ) -> AssociationRecord {
        let seq = self.next_seq();
        let id = self.association_id(seq);
        let now = now();
        AssociationRecord {
            seq,
            cluster: cluster.to_owned(),
            arn: format!(
                "arn:{}:eks:{}:{}:podidentityassociation/{cluster}/{id}",
                self.partition(),
                self.region,
                self.account
            ),
            id,
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
            role_arn: role_arn.to_owned(),
            owner_arn: None,
            tags,
            created_at: now,
            modified_at: now,
            disable_session_tags: false,
            target_role_arn: None,
            external_id: None,
            policy: None,
        }
    }

    fn insert_association(&mut self, record: AssociationRecord) {
        if let Some(c) = self.clusters.get_mut(&record.cluster) {
            c.by_key.insert(
                (record.namespace.clone(), record.service_account.clone()),
                record.seq,
            );
            c.by_id.insert(record.id.clone(), record.seq);
            c.associations.insert(record.seq, record);
        }
    }

    /// EKS's checks of the role: it exists, and its trust policy lets Pod Identity use it.
    fn check_role(&self, role_arn: &str) -> Result<(), AwsError> {
        if role_name_of(role_arn).is_none() {
            return Err(AwsError::invalid_parameter(format!(
                "The role ARN {role_arn} is not a valid IAM role ARN."
            )));
        }
        let Some(role) = self.roles.get(&role_arn.to_ascii_lowercase()) else {
            return Err(AwsError::invalid_parameter(format!(
                "Role provided in the request does not exist: {role_arn}."
            )));
        };
        let missing = pods_trust::missing_actions(&role.trust_policy);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(AwsError::invalid_parameter(format!(
                "Trust policy of role {role_arn} does not allow {} to perform {}. Trust policy \
                 of the role provided is invalid. Follow the official documentation to resolve \
                 the issue.",
                pods_trust::PODS_PRINCIPAL,
                missing.join(" and ")
            )))
        }
    }

    /// EKS's checks of the target role, session tags and session policy. It cannot read a
    /// target role in another account, so only its ARN is checked; a session policy must be
    /// JSON and needs session tags off.
    fn check_settings(
        target_role_arn: Option<&str>,
        disable_session_tags: bool,
        policy: Option<&str>,
    ) -> Result<(), AwsError> {
        if let Some(target) = target_role_arn.filter(|t| !t.is_empty())
            && (role_name_of(target).is_none() || account_of(target).is_none_or(|a| a.len() != 12))
        {
            return Err(AwsError::invalid_parameter(format!(
                "The target role ARN {target} is not a valid IAM role ARN."
            )));
        }
        if let Some(policy) = policy.filter(|p| !p.is_empty()) {
            if serde_json::from_str::<serde_json::Value>(policy).is_err() {
                return Err(AwsError::invalid_parameter(
                    "The policy is not valid JSON.".to_owned(),
                ));
            }
            if !disable_session_tags {
                return Err(AwsError::invalid_parameter(
                    "disableSessionTags must be true when a policy is specified.".to_owned(),
                ));
            }
        }
        Ok(())
    }

    fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
        if tags.len() > MAX_TAGS {
            return Err(AwsError::invalid_parameter(format!(
                "Too many tags: {} given, at most {MAX_TAGS} are allowed.",
                tags.len()
            )));
        }
        match tags
            .keys()
            .find(|k| k.is_empty() || k.len() > 128 || k.to_ascii_lowercase().starts_with("aws:"))
        {
            Some(key) => Err(AwsError::invalid_parameter(format!(
                "Tag key `{key}` is not valid: keys are 1 to 128 characters and may not start \
                 with `aws:`."
            ))),
            None => Ok(()),
        }
    }

    pub(crate) fn create_association(
        &mut self,
        input: CreateInput,
    ) -> Result<AssociationRecord, AwsError> {
        self.cluster(&input.cluster)?;
        for (member, value) in [
            ("namespace", &input.namespace),
            ("serviceAccount", &input.service_account),
            ("roleArn", &input.role_arn),
        ] {
            if value.is_empty() {
                return Err(AwsError::invalid_parameter(format!(
                    "{member} must not be empty."
                )));
            }
        }
        Self::check_tags(&input.tags)?;
        Self::check_settings(
            input.target_role_arn.as_deref(),
            input.disable_session_tags.unwrap_or(false),
            input.policy.as_deref(),
        )?;
        let token = input.client_request_token.clone().filter(|t| !t.is_empty());
        if let Some((token, used)) = token.as_ref().and_then(|t| Some((t, self.tokens.get(t)?))) {
            // A retry with the same token gets the first answer, even if the association
            // changed or went since; another input with it is a client bug.
            return if used.input == input.fingerprint() {
                Ok(used.answer.clone())
            } else {
                Err(AwsError::invalid_request(format!(
                    "Client request token {token} was already used with different parameters."
                )))
            };
        }
        self.check_role(&input.role_arn)?;
        let limit = self.association_limit;
        let c = self.cluster(&input.cluster)?;
        let key = (input.namespace.clone(), input.service_account.clone());
        if let Some(existing) = c.by_key.get(&key).and_then(|s| c.associations.get(s)) {
            return Err(AwsError::new(
                Code::ResourceInUse,
                format!("Association already exists: {}", existing.id),
            ));
        }
        if c.associations.len() >= limit {
            return Err(AwsError::new(
                Code::ResourceLimitExceeded,
                format!(
                    "Cluster {} already has the maximum of {limit} Pod Identity associations.",
                    input.cluster
                ),
            ));
        }
        let mut record = self.new_association(
            &input.cluster,
            &input.namespace,
            &input.service_account,
            &input.role_arn,
            input.tags.clone(),
        );
        record.disable_session_tags = input.disable_session_tags.unwrap_or(false);
        record.target_role_arn = input.target_role_arn.clone().filter(|t| !t.is_empty());
        if record.target_role_arn.is_some() {
            record.external_id = Some(self.uuid_like());
        }
        record.policy = input.policy.clone().filter(|p| !p.is_empty());
        self.insert_association(record.clone());
        if let Some(token) = token {
            self.tokens.insert(
                token,
                TokenUse {
                    input: input.fingerprint(),
                    answer: record.clone(),
                },
            );
        }
        Ok(record)
    }

    fn association_seq(&self, cluster: &str, id: &str) -> Result<u64, AwsError> {
        self.cluster(cluster)?
            .by_id
            .get(id)
            .copied()
            .ok_or_else(|| {
                AwsError::not_found(format!(
                    "No Pod Identity association found for id {id} in cluster {cluster}."
                ))
            })
    }

    pub(crate) fn describe_association(
        &self,
        cluster: &str,
        id: &str,
    ) -> Result<AssociationRecord, AwsError> {
        let seq = self.association_seq(cluster, id)?;
        self.cluster(cluster)?
            .associations
            .get(&seq)
            .cloned()
            .ok_or_else(|| AwsError::not_found(format!("No Pod Identity association {id}.")))
    }

    /// Associations that an add-on owns are changed through the add-on, never directly.
    fn check_not_owned(record: &AssociationRecord) -> Result<(), AwsError> {
        match &record.owner_arn {
            Some(owner) => Err(AwsError::invalid_request(format!(
                "Pod Identity association {} is owned by {owner} and can only be changed \
                 through that add-on.",
                record.id
            ))),
            None => Ok(()),
        }
    }

    pub(crate) fn update_association(
        &mut self,
        cluster: &str,
        id: &str,
        input: UpdateInput,
    ) -> Result<AssociationRecord, AwsError> {
        let current = self.describe_association(cluster, id)?;
        Self::check_not_owned(&current)?;
        if let Some(role_arn) = &input.role_arn {
            self.check_role(role_arn)?;
        }
        // The settings as they will be: a field not sent stays, "" removes.
        let after = |sent: &Option<String>, now: &Option<String>| match sent {
            Some(v) if v.is_empty() => None,
            Some(v) => Some(v.clone()),
            None => now.clone(),
        };
        let target = after(&input.target_role_arn, &current.target_role_arn);
        let policy = after(&input.policy, &current.policy);
        let disable = input
            .disable_session_tags
            .unwrap_or(current.disable_session_tags);
        Self::check_settings(target.as_deref(), disable, policy.as_deref())?;
        let external_id = match (&target, &current.target_role_arn) {
            (None, _) => None,
            (Some(_), Some(_)) => current.external_id.clone(),
            (Some(_), None) => Some(self.uuid_like()),
        };
        let seq = current.seq;
        let c = self.cluster_mut(cluster)?;
        let Some(record) = c.associations.get_mut(&seq) else {
            return Err(AwsError::not_found(format!(
                "No Pod Identity association {id}."
            )));
        };
        if let Some(role_arn) = input.role_arn {
            record.role_arn = role_arn;
        }
        record.disable_session_tags = disable;
        record.target_role_arn = target;
        record.external_id = external_id;
        record.policy = policy;
        record.modified_at = now();
        Ok(record.clone())
    }

    pub(crate) fn delete_association(
        &mut self,
        cluster: &str,
        id: &str,
    ) -> Result<AssociationRecord, AwsError> {
        let current = self.describe_association(cluster, id)?;
        Self::check_not_owned(&current)?;
        let c = self.cluster_mut(cluster)?;
        c.by_id.remove(&current.id);
        c.by_key
            .remove(&(current.namespace.clone(), current.service_account.clone()));
        c.associations.remove(&current.seq);
        Ok(current)
    }

    /// One page of ListPodIdentityAssociations. `next_token` is the creation sequence of the
    /// first association of the next page.
    pub(crate) fn list_associations(
        &self,
        cluster: &str,
        namespace: Option<&str>,
        service_account: Option<&str>,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<Page, AwsError> {
        let c = self.cluster(cluster)?;
        let start = match next_token.filter(|t| !t.is_empty()) {
            None => 0,
            Some(token) => decode_page_token(token).ok_or_else(|| {
                AwsError::invalid_parameter(format!("The nextToken {token} is not valid."))
            })?,
        };
        let mut matching = c
            .associations
            .range(start..)
            .map(|(_, a)| a)
            .filter(|a| namespace.is_none_or(|ns| ns.is_empty() || a.namespace == ns))
            .filter(|a| service_account.is_none_or(|sa| sa.is_empty() || a.service_account == sa));
        let associations: Vec<AssociationRecord> =
            matching.by_ref().take(max_results).cloned().collect();
        let next_token = matching.next().map(|a| encode_page_token(a.seq));
        Ok(Page {
            associations,
            next_token,
        })
    }

    // ---- IAM ------------------------------------------------------------------------------

    /// GetRole looks in the fake's own account only, like IAM called with the cluster
    /// account's credentials: a role added with another account's ARN is not found by name.
    fn role_by_name(&self, name: &str) -> Result<&RoleRecord, AwsError> {
        self.role_key(name)
            .filter(|_| !name.starts_with("arn:"))
            .and_then(|k| self.roles.get(&k))
            .ok_or_else(|| {
                AwsError::no_such_entity(format!("The role with name {name} cannot be found."))
            })
    }

    pub(crate) fn get_role(&self, name: &str) -> Result<RoleRecord, AwsError> {
        self.role_by_name(name).cloned()
    }

    // ---- IAM OIDC providers and Fargate profiles --------------------------------------------

    /// Adds an OIDC provider for `issuer` (with or without `https://`); its ARN.
    pub(crate) fn add_oidc_provider(&mut self, issuer: &str, client_ids: &[&str]) -> String {
        let url = issuer.trim_start_matches("https://").to_owned();
        let arn = format!(
            "arn:{}:iam::{}:oidc-provider/{url}",
            self.partition(),
            self.account
        );
        self.oidc_providers.insert(
            arn.clone(),
            OidcProviderRecord {
                arn: arn.clone(),
                url,
                client_ids: client_ids.iter().map(|c| (*c).to_owned()).collect(),
            },
        );
        arn
    }

    pub(crate) fn remove_oidc_provider(&mut self, arn: &str) {
        self.oidc_providers.remove(arn);
    }

    pub(crate) fn list_oidc_providers(&self) -> Vec<String> {
        self.oidc_providers.keys().cloned().collect()
    }

    pub(crate) fn get_oidc_provider(&self, arn: &str) -> Result<OidcProviderRecord, AwsError> {
        self.oidc_providers.get(arn).cloned().ok_or_else(|| {
            AwsError::new(
                Code::NoSuchEntity,
                format!("OpenIDConnect Provider not found for arn {arn}"),
            )
        })
    }

    /// Adds an ACTIVE Fargate profile with `selectors` (namespace pattern, labels).
    pub(crate) fn add_fargate_profile(
        &mut self,
        cluster: &str,
        name: &str,
        selectors: Vec<(String, BTreeMap<String, String>)>,
    ) {
        let id = self.uuid_like();
        let arn = format!(
            "arn:{}:eks:{}:{}:fargateprofile/{cluster}/{name}/{id}",
            self.partition(),
            self.region,
            self.account
        );
        let c = self.setup_cluster(cluster, "add_fargate_profile");
        c.fargate_profiles.insert(
            name.to_owned(),
            FargateProfileRecord {
                name: name.to_owned(),
                cluster: cluster.to_owned(),
                arn,
                status: "ACTIVE".to_owned(),
                selectors,
                created_at: now(),
            },
        );
    }

    pub(crate) fn list_fargate_profiles(&self, cluster: &str) -> Result<Vec<String>, AwsError> {
        Ok(self
            .cluster(cluster)?
            .fargate_profiles
            .keys()
            .cloned()
            .collect())
    }

    pub(crate) fn describe_fargate_profile(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<FargateProfileRecord, AwsError> {
        self.cluster(cluster)?
            .fargate_profiles
            .get(name)
            .cloned()
            .ok_or_else(|| {
                AwsError::not_found(format!("No Fargate Profile found with name: {name}."))
            })
    }

    pub(crate) fn list_attached_role_policies(
        &self,
        role: &str,
    ) -> Result<Vec<(String, String)>, AwsError> {
        let role = self.role_by_name(role)?;
        Ok(role
            .attached
            .iter()
            .map(|arn| {
                let name = self.policies.get(arn).map_or_else(
                    || arn.rsplit('/').next().unwrap_or_default().to_owned(),
                    |p| p.name.clone(),
                );
                (name, arn.clone())
            })
            .collect())
    }

    /// GetPolicy: the default version id.
    pub(crate) fn get_policy(&self, arn: &str) -> Result<String, AwsError> {
        self.policies
            .get(arn)
            .map(|p| format!("v{}", p.version))
            .ok_or_else(|| {
                AwsError::no_such_entity(format!(
                    "Policy {arn} does not exist or is not attachable."
                ))
            })
    }

    /// GetPolicyVersion: the document, URL-encoded as IAM returns it.
    pub(crate) fn get_policy_version(&self, arn: &str, version: &str) -> Result<String, AwsError> {
        self.policies
            .get(arn)
            .filter(|p| format!("v{}", p.version) == version)
            .map(|p| url_encode(&p.document))
            .ok_or_else(|| {
                AwsError::no_such_entity(format!(
                    "Policy {arn} version {version} does not exist or is not attachable."
                ))
            })
    }

    pub(crate) fn list_role_policies(&self, role: &str) -> Result<Vec<String>, AwsError> {
        Ok(self.role_by_name(role)?.inline.keys().cloned().collect())
    }

    pub(crate) fn get_role_policy(&self, role: &str, policy: &str) -> Result<String, AwsError> {
        self.role_by_name(role)?
            .inline
            .get(policy)
            .map(|d| url_encode(d))
            .ok_or_else(|| {
                AwsError::no_such_entity(format!(
                    "The role policy with name {policy} cannot be found."
                ))
            })
    }

    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.clusters.len(), self.roles.len())
    }
}

/// `n` in lowercase base 36, left-padded with zeros to `width` digits.
fn base36(mut n: u64, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[usize::try_from(n % 36).unwrap_or(0)];
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Page tokens look opaque, as EKS asks clients to treat them.
fn encode_page_token(seq: u64) -> String {
    format!("fake-pit-{seq:016x}")
}

fn decode_page_token(token: &str) -> Option<u64> {
    u64::from_str_radix(token.strip_prefix("fake-pit-")?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn association_ids_look_like_eks_and_never_collide() {
        let state = State::new("111122223333", "us-east-1");
        let ids: std::collections::HashSet<String> =
            (1..=20_000).map(|seq| state.association_id(seq)).collect();
        assert_eq!(ids.len(), 20_000);
        for id in ids.iter().take(50) {
            let rest = id.strip_prefix("a-").unwrap_or_default();
            assert_eq!(rest.len(), 17, "{id}");
            assert!(
                rest.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
                "{id}"
            );
        }
    }

    #[test]
    fn documents_are_encoded_like_iam() {
        assert_eq!(
            url_encode(r#"{"Action": "s3:Get*"}"#),
            "%7B%22Action%22%3A%20%22s3%3AGet%2A%22%7D"
        );
    }

    #[test]
    fn role_names_come_from_arns_with_paths() {
        assert_eq!(role_name_of("arn:aws:iam::1:role/a/b/name"), Some("name"));
        assert_eq!(role_name_of("arn:aws:iam::1:user/name"), None);
        assert_eq!(partition("cn-north-1"), "aws-cn");
    }
}
