//! The kinds the fake serves: a fixed table of built-in ones, and those of every
//! CustomResourceDefinition in the store, read from it at each lookup (there are few, and a
//! CRD written is served at once, with no cache to go stale).
//!
//! A custom resource is stored under its CRD's storage version, whichever version it is
//! written or read through: the versions of a CRD serve the same objects, with the
//! `apiVersion` of the request (the `None` conversion strategy).

use serde_json::Value;

use super::ObjectKey;
use super::store::State;

/// The API version and kind of CustomResourceDefinitions.
const CRD: (&str, &str) = ("apiextensions.k8s.io/v1", "CustomResourceDefinition");

/// The built-in kinds: API version, plural, kind, namespaced.
const BUILT_IN: &[(&str, &str, &str, bool)] = &[
    ("v1", "serviceaccounts", "ServiceAccount", true),
    ("v1", "pods", "Pod", true),
    ("v1", "nodes", "Node", false),
    ("v1", "namespaces", "Namespace", false),
    ("v1", "events", "Event", true),
    ("v1", "configmaps", "ConfigMap", true),
    ("apps/v1", "deployments", "Deployment", true),
    ("apps/v1", "statefulsets", "StatefulSet", true),
    ("apps/v1", "daemonsets", "DaemonSet", true),
    ("apps/v1", "replicasets", "ReplicaSet", true),
    ("batch/v1", "cronjobs", "CronJob", true),
    ("batch/v1", "jobs", "Job", true),
    ("events.k8s.io/v1", "events", "Event", true),
    ("coordination.k8s.io/v1", "leases", "Lease", true),
    (
        "rbac.authorization.k8s.io/v1",
        "clusterroles",
        "ClusterRole",
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
    ),
    ("rbac.authorization.k8s.io/v1", "roles", "Role", true),
    (
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
        "RoleBinding",
        true,
    ),
    (CRD.0, "customresourcedefinitions", CRD.1, false),
];

/// A kind the face serves at one API version.
#[derive(Debug, Clone)]
pub(super) struct Resource {
    /// The API version of the request path, and of what is served.
    pub(super) api_version: String,
    /// The API version its objects are stored under (a CRD's storage version).
    pub(super) storage: String,
    pub(super) kind: String,
    pub(super) plural: String,
    pub(super) namespaced: bool,
    /// Whether it has a status subresource (`…/{name}/status`).
    pub(super) status: bool,
}

impl Resource {
    /// `leases.coordination.k8s.io`; a core kind's plural alone (`pods`), as the API server
    /// names them in messages.
    pub(super) fn qualified(&self) -> String {
        match self.api_version.rsplit_once('/') {
            Some((group, _)) => format!("{}.{group}", self.plural),
            None => self.plural.clone(),
        }
    }

    /// The group (empty for the core group).
    pub(super) fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// The store's key of the object `name` in `namespace`.
    pub(super) fn key(&self, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey::new(
            &self.storage,
            &self.kind,
            namespace.unwrap_or_default(),
            name,
        )
    }

    /// A stored object as served at this version.
    pub(super) fn served(&self, mut object: Value) -> Value {
        if self.storage != self.api_version
            && let Some(map) = object.as_object_mut()
        {
            map.insert("apiVersion".into(), Value::from(self.api_version.as_str()));
        }
        object
    }
}

/// The resource served at `/apis/{api_version}/{plural}` (or `/api/v1/{plural}`).
pub(super) fn find(state: &State, api_version: &str, plural: &str) -> Option<Resource> {
    if let Some((v, p, kind, namespaced)) = BUILT_IN
        .iter()
        .find(|(v, p, _, _)| *v == api_version && *p == plural)
    {
        return Some(Resource {
            api_version: (*v).to_owned(),
            storage: (*v).to_owned(),
            kind: (*kind).to_owned(),
            plural: (*p).to_owned(),
            namespaced: *namespaced,
            status: false,
        });
    }
    let (group, version) = api_version.split_once('/')?;
    state.objects_of(CRD.0, CRD.1).find_map(|crd| {
        let spec = &crd["spec"];
        if spec["group"].as_str() != Some(group) || spec["names"]["plural"].as_str() != Some(plural)
        {
            return None;
        }
        let served = served_version(spec, version)?;
        Some(Resource {
            api_version: api_version.to_owned(),
            storage: format!("{group}/{}", storage_version(spec)?),
            kind: spec["names"]["kind"].as_str()?.to_owned(),
            plural: plural.to_owned(),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            status: has_status(served),
        })
    })
}

/// Whether the custom resource `key` (stored under its storage version) has a status
/// subresource: a write to it keeps its status, and only a write to `/status` changes that.
pub(super) fn status_subresource(state: &State, key: &ObjectKey) -> bool {
    let Some((group, version)) = key.api_version.split_once('/') else {
        return false;
    };
    state.objects_of(CRD.0, CRD.1).any(|crd| {
        let spec = &crd["spec"];
        spec["group"].as_str() == Some(group)
            && spec["names"]["kind"].as_str() == Some(key.kind.as_str())
            && spec["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["name"].as_str() == Some(version) && has_status(v))
    })
}

/// The CRD's version `name`, if it is served.
fn served_version<'a>(spec: &'a Value, name: &str) -> Option<&'a Value> {
    spec["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"].as_str() == Some(name) && v["served"].as_bool() == Some(true))
}

/// The version marked `storage: true`, or the first one.
fn storage_version(spec: &Value) -> Option<&str> {
    let versions = spec["versions"].as_array()?;
    versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .or_else(|| versions.first())?["name"]
        .as_str()
}

fn has_status(version: &Value) -> bool {
    version["subresources"]
        .get("status")
        .is_some_and(|s| !s.is_null())
}
