//! The fake's state and its rules, shared by the in-memory face and the HTTP face. Policies
//! are kept and exchanged as the JSON IAM speaks, so the HTTP face serves them as they are and
//! the in-memory face converts them with the official types.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use porter_identity_core::testing::FakeCalls;
use porter_identity_core::{ErrorKind, Operation};
use serde_json::{Value, json};

use crate::names::{WORKLOAD_IDENTITY_USER, parse_member};
use crate::operation as op;

/// The operations the fake counts, by the names the provider uses.
pub(crate) const OPERATIONS: [&str; 8] = Operation::names(op::ALL);

/// A Google API error: HTTP status, `error.status` and `error.message`, as the HTTP face sends
/// it and as the client's mapper reads it (the in-memory face maps it with the same function).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GcpError {
    pub(crate) http: u16,
    pub(crate) status: &'static str,
    pub(crate) message: String,
    /// A `google.rpc.RetryInfo` detail's `retryDelay` (`"0.3s"`), as quota errors carry.
    pub(crate) retry_delay: Option<&'static str>,
}

impl GcpError {
    pub(crate) fn new(http: u16, status: &'static str, message: impl Into<String>) -> Self {
        GcpError {
            http,
            status,
            message: message.into(),
            retry_delay: None,
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NOT_FOUND", message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_ARGUMENT", message)
    }

    /// The error body Google APIs send.
    pub(crate) fn body(&self) -> String {
        let mut error = json!({"code": self.http, "message": self.message, "status": self.status});
        if let Some(delay) = self.retry_delay {
            error["details"] = json!([{
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": delay,
            }]);
        }
        json!({ "error": error }).to_string()
    }

    /// What a test asked for with `inject_failures`.
    pub(crate) fn injected(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Throttled => GcpError {
                retry_delay: Some(QUOTA_RETRY_DELAY),
                ..Self::new(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute'.",
                )
            },
            ErrorKind::Unavailable => {
                Self::new(503, "UNAVAILABLE", "The service is currently unavailable.")
            }
            ErrorKind::Conflict => Self::new(409, "ABORTED", STALE_ETAG),
            ErrorKind::PermissionDenied => Self::new(
                403,
                "PERMISSION_DENIED",
                "Permission 'iam.serviceAccounts.setIamPolicy' denied on resource (or it may not exist).",
            ),
            ErrorKind::Unauthenticated => Self::new(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            ),
            ErrorKind::NotFound => Self::not_found("Not found (injected)."),
            _ => Self::new(500, "INTERNAL", "Internal error encountered."),
        }
    }
}

/// The `retryDelay` an injected throttling error asks for.
pub(crate) const QUOTA_RETRY_DELAY: &str = "0.3s";

/// IAM's message for a stale etag.
pub(crate) const STALE_ETAG: &str = "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.";

/// One binding of a policy.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BindingRecord {
    pub(crate) role: String,
    pub(crate) members: Vec<String>,
    pub(crate) condition: Option<Value>,
}

/// An IAM policy as stored: a new etag on every write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PolicyRecord {
    pub(crate) version: i64,
    pub(crate) bindings: Vec<BindingRecord>,
    pub(crate) audit_configs: Vec<Value>,
    pub(crate) etag: u64,
}

impl PolicyRecord {
    fn new(etag: u64) -> Self {
        PolicyRecord {
            version: 1,
            bindings: Vec::new(),
            audit_configs: Vec::new(),
            etag,
        }
    }

    pub(crate) fn etag_b64(&self) -> String {
        STANDARD.encode(self.etag.to_be_bytes())
    }

    fn has_conditions(&self) -> bool {
        self.bindings.iter().any(|b| b.condition.is_some())
    }

    /// The policy as IAM answers it: empty lists left out.
    pub(crate) fn to_json(&self) -> Value {
        let mut out = json!({"version": self.version, "etag": self.etag_b64()});
        if !self.bindings.is_empty() {
            out["bindings"] = self
                .bindings
                .iter()
                .map(|b| {
                    let mut v = json!({"role": b.role, "members": b.members});
                    if let Some(c) = &b.condition {
                        v["condition"] = c.clone();
                    }
                    v
                })
                .collect();
        }
        if !self.audit_configs.is_empty() {
            out["auditConfigs"] = Value::Array(self.audit_configs.clone());
        }
        out
    }

    /// Adds `member` to the unconditional binding of `role` (setup and the interloper).
    pub(crate) fn grant(&mut self, role: &str, member: &str) {
        match self
            .bindings
            .iter_mut()
            .find(|b| b.role == role && b.condition.is_none())
        {
            Some(b) if b.members.iter().any(|m| m == member) => {}
            Some(b) => b.members.push(member.to_owned()),
            None => self.bindings.push(BindingRecord {
                role: role.to_owned(),
                members: vec![member.to_owned()],
                condition: None,
            }),
        }
    }
}

/// A GKE cluster.
#[derive(Debug, Clone)]
pub(crate) struct ClusterRecord {
    pub(crate) project: String,
    pub(crate) location: String,
    pub(crate) name: String,
    pub(crate) workload_pool: Option<String>,
    /// (name, mode) with mode `GKE_METADATA`, `GCE_METADATA` or `MODE_UNSPECIFIED`.
    pub(crate) node_pools: Vec<(String, String)>,
}

/// A service account.
#[derive(Debug, Clone)]
pub(crate) struct ServiceAccountRecord {
    pub(crate) email: String,
    pub(crate) project: String,
    pub(crate) unique_id: String,
    pub(crate) disabled: bool,
    pub(crate) policy: PolicyRecord,
    /// Key ids of user-managed keys.
    pub(crate) user_keys: Vec<String>,
}

/// The whole fake cloud.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) calls: FakeCalls,
    pub(crate) clusters: BTreeMap<String, ClusterRecord>,
    pub(crate) service_accounts: BTreeMap<String, ServiceAccountRecord>,
    pub(crate) project_policies: BTreeMap<String, PolicyRecord>,
    /// Pools that exist without a GKE cluster of the fake (fleet pools).
    pub(crate) extra_pools: Vec<String>,
    /// How many more setIamPolicy calls find that someone else wrote since their read.
    pub(crate) interlopers: u32,
    pub(crate) interloper_writes: u64,
    /// Node-pool updates made (their operations' numbers).
    pub(crate) operations: u64,
    next_etag: u64,
    next_id: u64,
}

impl State {
    pub(crate) fn new() -> Self {
        State {
            calls: FakeCalls::new("FakeGcp", &OPERATIONS),
            clusters: BTreeMap::new(),
            service_accounts: BTreeMap::new(),
            project_policies: BTreeMap::new(),
            extra_pools: Vec::new(),
            interlopers: 0,
            interloper_writes: 0,
            operations: 0,
            next_etag: 1,
            next_id: 100_000_000_000_000_000,
        }
    }

    fn etag(&mut self) -> u64 {
        self.next_etag += 1;
        self.next_etag
    }

    pub(crate) fn begin_call(&mut self, op: &str) -> Result<(), GcpError> {
        self.calls.begin(op).map_err(GcpError::injected)
    }

    // ---- setup ------------------------------------------------------------------------------

    pub(crate) fn add_cluster(&mut self, project: &str, location: &str, name: &str, pool: bool) {
        let key = cluster_key(project, location, name);
        assert!(!self.clusters.contains_key(&key), "cluster {key} exists");
        self.clusters.insert(
            key,
            ClusterRecord {
                project: project.into(),
                location: location.into(),
                name: name.into(),
                workload_pool: pool.then(|| format!("{project}.svc.id.goog")),
                node_pools: vec![("default-pool".into(), "GKE_METADATA".into())],
            },
        );
    }

    pub(crate) fn cluster_mut(
        &mut self,
        project: &str,
        location: &str,
        name: &str,
    ) -> &mut ClusterRecord {
        let key = cluster_key(project, location, name);
        self.clusters
            .get_mut(&key)
            .unwrap_or_else(|| panic!("no cluster {key} in the fake"))
    }

    pub(crate) fn add_service_account(&mut self, email: &str) {
        assert!(
            !self.service_accounts.contains_key(email),
            "service account {email} exists"
        );
        let project = email
            .split_once('@')
            .and_then(|(_, d)| d.strip_suffix(".iam.gserviceaccount.com"))
            .unwrap_or_else(|| panic!("{email} is not a user-managed service account email"))
            .to_owned();
        self.next_id += 1;
        let etag = self.etag();
        self.service_accounts.insert(
            email.to_owned(),
            ServiceAccountRecord {
                email: email.to_owned(),
                project,
                unique_id: self.next_id.to_string(),
                disabled: false,
                policy: PolicyRecord::new(etag),
                user_keys: Vec::new(),
            },
        );
    }

    pub(crate) fn account_mut(&mut self, email: &str) -> &mut ServiceAccountRecord {
        self.service_accounts
            .get_mut(email)
            .unwrap_or_else(|| panic!("no service account {email} in the fake"))
    }

    /// A change made by someone else (setup): a new etag.
    pub(crate) fn touch_policy(&mut self, email: &str, edit: impl FnOnce(&mut PolicyRecord)) {
        let etag = self.etag();
        let policy = &mut self.account_mut(email).policy;
        edit(policy);
        policy.etag = etag;
    }

    pub(crate) fn project_policy_mut(&mut self, project: &str) -> &mut PolicyRecord {
        let etag = self.etag();
        self.project_policies
            .entry(project.to_owned())
            .or_insert_with(|| PolicyRecord::new(etag))
    }

    // ---- operations -------------------------------------------------------------------------

    /// A node pool: its name and mode.
    pub(crate) fn node_pool(
        &self,
        project: &str,
        location: &str,
        cluster: &str,
        pool: &str,
    ) -> Result<(String, String), GcpError> {
        let c = self.get_cluster(project, location, cluster)?;
        c.node_pools
            .into_iter()
            .find(|(n, _)| n == pool)
            .ok_or_else(|| {
                GcpError::not_found(format!(
                    "Not found: projects/{project}/locations/{location}/clusters/{cluster}/nodePools/{pool}."
                ))
            })
    }

    /// nodePools.update of the metadata mode: the version and image type must be the pool's
    /// own (the fake's nodes never change them), or the update is refused as a change the
    /// caller did not mean. Returns the operation's name.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update_node_pool(
        &mut self,
        project: &str,
        location: &str,
        cluster: &str,
        pool: &str,
        version: &str,
        image_type: &str,
        mode: &str,
    ) -> Result<String, GcpError> {
        self.node_pool(project, location, cluster, pool)?;
        if version != super::NODE_VERSION || image_type != super::IMAGE_TYPE {
            return Err(GcpError::invalid(format!(
                "the fake's node pools run {} on {}: an update to {version} on {image_type} would upgrade or re-image the nodes",
                super::NODE_VERSION,
                super::IMAGE_TYPE
            )));
        }
        let pools = &mut self.cluster_mut(project, location, cluster).node_pools;
        if let Some((_, m)) = pools.iter_mut().find(|(n, _)| n == pool) {
            *m = mode.to_owned();
        }
        self.operations += 1;
        Ok(format!("operation-{}", self.operations))
    }

    pub(crate) fn get_cluster(
        &self,
        project: &str,
        location: &str,
        name: &str,
    ) -> Result<ClusterRecord, GcpError> {
        self.clusters
            .get(&cluster_key(project, location, name))
            .cloned()
            .ok_or_else(|| {
                GcpError::not_found(format!(
                    "Not found: projects/{project}/locations/{location}/clusters/{name}."
                ))
            })
    }

    pub(crate) fn account(&self, email: &str) -> Result<&ServiceAccountRecord, GcpError> {
        self.service_accounts.get(email).ok_or_else(|| {
            GcpError::not_found(format!(
                "Service account projects/{}/serviceAccounts/{email} does not exist.",
                project_of(email)
            ))
        })
    }

    /// The service account as named in a URL, `projects/<project>/serviceAccounts/<email>`:
    /// through the `-` wildcard a missing one is a 403, as IAM answers (its discovery document
    /// says so); through its project, a 404.
    pub(crate) fn account_in(
        &self,
        project: &str,
        email: &str,
        operation: &str,
    ) -> Result<&ServiceAccountRecord, GcpError> {
        match self.service_accounts.get(email) {
            Some(sa) if project == "-" || project == sa.project => Ok(sa),
            None if project == "-" => Err(GcpError::new(
                403,
                "PERMISSION_DENIED",
                format!(
                    "Permission 'iam.serviceAccounts.{}' denied on resource (or it may not exist).",
                    operation.rsplit('.').next().unwrap_or(operation)
                ),
            )),
            _ => Err(GcpError::not_found(format!(
                "Service account projects/{project}/serviceAccounts/{email} does not exist."
            ))),
        }
    }

    /// getIamPolicy: a policy with conditions needs `requestedPolicyVersion` 3.
    pub(crate) fn get_policy(
        &self,
        email: &str,
        requested_version: i64,
    ) -> Result<Value, GcpError> {
        let policy = &self.account(email)?.policy;
        if policy.has_conditions() && requested_version < 3 {
            return Err(GcpError::invalid(format!(
                "The policy of projects/{}/serviceAccounts/{email} has conditional role bindings: request policy version 3 (options.requestedPolicyVersion).",
                project_of(email)
            )));
        }
        Ok(policy.to_json())
    }

    /// setIamPolicy with IAM's rules: the etag must be current, members well formed and their
    /// workload identity pools existing, conditions only in version 3; empty bindings are
    /// dropped; audit configs change only when the update mask names them.
    pub(crate) fn set_policy(&mut self, email: &str, body: &Value) -> Result<Value, GcpError> {
        self.account(email)?;
        if self.interlopers > 0 {
            // Someone else's read-modify-write lands between this caller's read and write.
            self.interlopers -= 1;
            self.interloper_writes += 1;
            let n = self.interloper_writes;
            self.touch_policy(email, |p| {
                p.grant(
                    "roles/iam.serviceAccountTokenCreator",
                    &format!("user:interloper-{n}@example.com"),
                );
            });
        }
        let policy = body
            .get("policy")
            .ok_or_else(|| GcpError::invalid("Invalid JSON payload: `policy` is required."))?;
        let current = &self.account(email)?.policy;
        if let Some(etag) = policy.get("etag").and_then(Value::as_str)
            && etag != current.etag_b64()
        {
            return Err(GcpError::new(409, "ABORTED", STALE_ETAG));
        }
        let version = policy.get("version").and_then(Value::as_i64).unwrap_or(1);
        let mut bindings = Vec::new();
        for b in policy
            .get("bindings")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let role = b.get("role").and_then(Value::as_str).unwrap_or_default();
            if !role.starts_with("roles/") && !role.starts_with("projects/") {
                return Err(GcpError::invalid(format!(
                    "Role {role:?} is not a valid role name."
                )));
            }
            let members: Vec<String> = b
                .get("members")
                .and_then(Value::as_array)
                .map(|ms| {
                    ms.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            for m in &members {
                self.check_member(m)?;
            }
            let condition = b.get("condition").cloned().filter(|c| !c.is_null());
            if condition.is_some() && version < 3 {
                return Err(GcpError::invalid(
                    "Conditions are only supported in policy version 3: set the policy's version to 3.",
                ));
            }
            if !members.is_empty() {
                bindings.push(BindingRecord {
                    role: role.to_owned(),
                    members,
                    condition,
                });
            }
        }
        let mask = body.get("updateMask").and_then(Value::as_str).unwrap_or("");
        let audit = mask
            .split(',')
            .any(|p| p.trim() == "auditConfigs")
            .then(|| {
                policy
                    .get("auditConfigs")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            });
        let etag = self.etag();
        let record = &mut self.account_mut(email).policy;
        record.version = version.max(1);
        record.bindings = bindings;
        if let Some(audit) = audit {
            record.audit_configs = audit;
        }
        record.etag = etag;
        Ok(record.to_json())
    }

    fn pool_exists(&self, pool: &str) -> bool {
        self.extra_pools.iter().any(|p| p == pool)
            || self
                .clusters
                .values()
                .any(|c| c.workload_pool.as_deref() == Some(pool))
    }

    /// IAM's member rules: a known type prefix; a Workload Identity member's pool must exist.
    fn check_member(&self, member: &str) -> Result<(), GcpError> {
        if member == "allUsers" || member == "allAuthenticatedUsers" {
            return Ok(());
        }
        if let Some(rest) = member.strip_prefix("serviceAccount:")
            && rest.contains('[')
        {
            let Some((pool, _, _)) = parse_member(member) else {
                return Err(GcpError::invalid(format!(
                    "Invalid service account ({rest})."
                )));
            };
            if !self.pool_exists(pool) {
                return Err(GcpError::invalid(format!(
                    "Identity Pool does not exist ({pool}). Please check that you specified a valid resource name as returned in the `name` attribute in the configuration API."
                )));
            }
            return Ok(());
        }
        let known = [
            "user:",
            "serviceAccount:",
            "group:",
            "domain:",
            "deleted:",
            "principal://",
            "principalSet://",
        ];
        match known.iter().find(|p| member.starts_with(*p)) {
            Some(prefix) if member.len() > prefix.len() => Ok(()),
            _ => Err(GcpError::invalid(format!(
                "Invalid argument: member {member} is of an unknown type. Please set a valid type prefix for the member."
            ))),
        }
    }

    pub(crate) fn project_policy(&self, project: &str) -> Value {
        self.project_policies
            .get(project)
            .map_or_else(|| PolicyRecord::new(1).to_json(), PolicyRecord::to_json)
    }
}

fn project_of(email: &str) -> &str {
    email
        .split_once('@')
        .and_then(|(_, d)| d.strip_suffix(".iam.gserviceaccount.com"))
        .unwrap_or("-")
}

fn cluster_key(project: &str, location: &str, name: &str) -> String {
    format!("{project}/{location}/{name}")
}

/// `roles/iam.workloadIdentityUser`, re-exported for the fake's setup helpers.
pub(crate) const WIU: &str = WORKLOAD_IDENTITY_USER;

#[cfg(test)]
mod tests {
    use super::*;

    const SA: &str = "app-sa@demo-project.iam.gserviceaccount.com";

    fn state() -> State {
        let mut s = State::new();
        s.add_cluster("demo-project", "us-central1", "prod", true);
        s.add_service_account(SA);
        s
    }

    fn set(s: &mut State, etag: &str, bindings: Value) -> Result<Value, GcpError> {
        s.set_policy(
            SA,
            &json!({"policy": {"version": 3, "etag": etag, "bindings": bindings}}),
        )
    }

    #[test]
    fn a_stale_etag_is_a_409_aborted() {
        let mut s = state();
        let read = s.get_policy(SA, 3).expect("read");
        let etag = read["etag"].as_str().expect("etag").to_owned();
        let member = "serviceAccount:demo-project.svc.id.goog[shop/api]";
        let written =
            set(&mut s, &etag, json!([{"role": WIU, "members": [member]}])).expect("write");
        assert_ne!(written["etag"], read["etag"], "a write makes a new etag");
        let e = set(&mut s, &etag, json!([])).expect_err("stale");
        assert_eq!((e.http, e.status), (409, "ABORTED"));
        assert_eq!(
            s.get_policy(SA, 3).expect("read")["bindings"][0]["members"][0],
            member
        );
    }

    #[test]
    fn empty_bindings_are_dropped_and_members_checked() {
        let mut s = state();
        let etag = s.get_policy(SA, 3).expect("read")["etag"]
            .as_str()
            .expect("etag")
            .to_owned();
        let out = set(&mut s, &etag, json!([{"role": WIU, "members": []}])).expect("write");
        assert!(out.get("bindings").is_none(), "{out}");
        let etag = out["etag"].as_str().expect("etag").to_owned();
        let e =
            set(&mut s, &etag, json!([{"role": WIU, "members": ["bob"]}])).expect_err("bad member");
        assert_eq!(e.status, "INVALID_ARGUMENT");
        let e = set(
            &mut s,
            &etag,
            json!([{"role": WIU, "members": ["serviceAccount:other-project.svc.id.goog[a/b]"]}]),
        )
        .expect_err("unknown pool");
        assert!(
            e.message
                .starts_with("Identity Pool does not exist (other-project.svc.id.goog)"),
            "{e:?}"
        );
    }

    #[test]
    fn conditions_need_version_3_both_ways() {
        let mut s = state();
        let etag = s.get_policy(SA, 3).expect("read")["etag"]
            .as_str()
            .expect("etag")
            .to_owned();
        let cond = json!({"title": "t", "expression": "true"});
        let e = s
            .set_policy(SA, &json!({"policy": {"version": 1, "etag": etag, "bindings": [{"role": WIU, "members": ["user:a@example.com"], "condition": cond}]}}))
            .expect_err("version 1 with a condition");
        assert_eq!(e.status, "INVALID_ARGUMENT");
        set(
            &mut s,
            &etag,
            json!([{"role": WIU, "members": ["user:a@example.com"], "condition": cond}]),
        )
        .expect("v3");
        assert!(
            s.get_policy(SA, 1).is_err(),
            "version 1 read of a conditional policy"
        );
        assert!(s.get_policy(SA, 3).is_ok());
    }

    #[test]
    fn the_interloper_writes_between_read_and_write() {
        let mut s = state();
        s.interlopers = 1;
        let etag = s.get_policy(SA, 3).expect("read")["etag"]
            .as_str()
            .expect("etag")
            .to_owned();
        let e = set(&mut s, &etag, json!([])).expect_err("someone else wrote");
        assert_eq!(e.status, "ABORTED");
        let now = s.get_policy(SA, 3).expect("read");
        assert_eq!(
            now["bindings"][0]["members"][0],
            "user:interloper-1@example.com"
        );
    }
}
