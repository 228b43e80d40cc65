//! `AppIdentity`: one app's identities, as a namespaced custom resource — the services and
//! their `connections` as porter.yaml writes them, the options a deploy takes, and the status a
//! reconcile leaves.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The API group of porter-identity's custom resources.
pub const GROUP: &str = "identity.porter.run";
/// Their version.
pub const VERSION: &str = "v1alpha1";

/// One app: its services and their identity connections, in one namespace.
///
/// ```yaml
/// apiVersion: identity.porter.run/v1alpha1
/// kind: AppIdentity
/// metadata: {name: shop, namespace: shop}
/// spec:
///   app: shop
///   services:
///     - name: api
///       connections:
///         - type: awsRole
///           role: shop-api
///     - name: worker
///       serviceAccount: shop-jobs
///       connections:
///         - type: gcpServiceAccount
///           serviceAccountEmail: shop-jobs@shop-123456.iam.gserviceaccount.com
///   options: {restart: true}
/// ```
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "identity.porter.run",
    version = "v1alpha1",
    kind = "AppIdentity",
    plural = "appidentities",
    shortname = "appid",
    namespaced,
    status = "AppIdentityStatus",
    printcolumn = r#"{"name":"App","type":"string","jsonPath":".spec.app"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AppIdentitySpec {
    /// The porter app: each service runs as the ServiceAccount `<app>-<service>` unless it
    /// names its own.
    pub app: String,
    /// The app's services.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// What a deploy of the app does beside its links.
    #[serde(default)]
    pub options: DeployOptions,
}

/// One service of an [`AppIdentity`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The service's name (a DNS-1123 label).
    pub name: String,
    /// The ServiceAccount it runs as, when not `<app>-<service>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Its connections, with porter.yaml's field names (`type: awsRole`, `role`, …);
    /// connections of other types are kept and ignored.
    #[serde(default)]
    #[schemars(schema_with = "connections_schema")]
    pub connections: Vec<Map<String, Value>>,
}

/// What a deploy of the app does beside its links.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployOptions {
    /// Restart the workloads whose pods predate their links.
    #[serde(default)]
    pub restart: bool,
    /// Create a ServiceAccount that does not exist (by default a finding says so: a chart or
    /// manifest means to own it).
    #[serde(default)]
    pub create_service_accounts: bool,
    /// Take over an annotation another field manager owns with another value.
    #[serde(default)]
    pub force_conflicts: bool,
}

/// What the last reconcile of an [`AppIdentity`] found and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppIdentityStatus {
    /// The `metadata.generation` the status is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `CloudLinked`, `ClusterReady`, `Degraded`, with reasons and messages that carry
    /// porter-identity's finding codes and fixes.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Per ServiceAccount: what is linked, and what is missing.
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountStatus>,
    /// The links the last reconcile applied, as the spec wrote them: the next reconcile's
    /// previous deploy, so a link dropped from the spec is removed even on a cloud that keeps no
    /// ownership marks.
    #[serde(default)]
    pub applied: Vec<ServiceSpec>,
    /// The changes of the last reconcile that changed something, by kind (a resync that
    /// changed nothing leaves them).
    #[serde(default)]
    pub counts: ChangeCounts,
    /// When the last reconcile that changed the status ran (RFC 3339). The controller writes
    /// the status only when it changed, so that an unchanged resync writes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<String>,
    /// When the links were last verified on the clouds (RFC 3339): at a change of the spec and
    /// once every verify period (`--verify-every`), not at every resync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verify_time: Option<String>,
}

/// A condition of an [`AppIdentity`], as Kubernetes conventions shape them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `CloudLinked`, `ClusterReady` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// What happened, with the finding's code and fix.
    pub message: String,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The generation the condition is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One ServiceAccount's links in an [`AppIdentityStatus`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountStatus {
    /// The ServiceAccount.
    pub name: String,
    /// Its links that hold (`awsRole shop-api`, …).
    #[serde(default)]
    pub linked: Vec<String>,
    /// Its links that do not, each with why.
    #[serde(default)]
    pub missing: Vec<String>,
    /// The last verify's warnings and errors of its links (`error aws.trust.…: … (fix: …)`):
    /// an error makes the app not ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
}

/// A reconcile's changes, by kind.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeCounts {
    /// Links created.
    pub created: u32,
    /// Links changed in place.
    pub updated: u32,
    /// Links already right.
    pub unchanged: u32,
    /// Stale links removed.
    pub removed: u32,
    /// Stale-looking links kept, with their reasons.
    pub kept: u32,
    /// Links that failed.
    pub failed: u32,
}

/// A connection is porter.yaml's object: its `type` and the fields of that type, which the
/// API server keeps as written (the controller validates them, with porter.yaml's rules).
fn connections_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {
                    "type": "string",
                    "description": "awsRole, azureManagedIdentity, gcpServiceAccount, or another type (kept and ignored)"
                }
            },
            "x-kubernetes-preserve-unknown-fields": true
        }
    })
}
