use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::controller;

/// An object's identity: API version, kind, namespace (empty for cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// `v1`, `apps/v1`, `batch/v1`.
    pub api_version: String,
    /// `ServiceAccount`, `Deployment`, `Pod`, `Node`, …
    pub kind: String,
    /// Its namespace; empty for cluster-scoped kinds.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectKey {
    /// A key.
    pub fn new(api_version: &str, kind: &str, namespace: &str, name: &str) -> Self {
        ObjectKey {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One field that another manager owns with another value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Conflict {
    /// The field, as a dotted path (`.metadata.annotations.x`).
    pub field: String,
    /// The manager that owns it.
    pub manager: String,
}

/// A refused server-side apply: the API server's 409 `Conflict`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplyConflict {
    /// Every conflicting field.
    pub conflicts: Vec<Conflict>,
}

impl fmt::Display for ApplyConflict {
    /// The API server's wording: `Apply failed with 1 conflict: conflict with "helm": .metadata.annotations.x`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Apply failed with {} conflict", self.conflicts.len())?;
        if self.conflicts.len() != 1 {
            f.write_str("s")?;
        }
        let parts: Vec<String> = self
            .conflicts
            .iter()
            .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
            .collect();
        write!(f, ": {}", parts.join(", "))
    }
}

type Path = Vec<String>;

/// The leaf paths of `value` (objects recurse; everything else, arrays included, is a leaf). An
/// empty object owns nothing: applying `annotations: {}` leaves other managers' keys alone.
fn leaves(value: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(k.clone());
                leaves(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

fn leaf_paths(value: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    leaves(value, &mut Vec::new(), &mut out);
    out
}

fn at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

fn set(value: &mut Value, path: &[String], leaf: Value) {
    let mut cur = value;
    for (i, k) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == path.len() {
            map.insert(k.clone(), leaf);
            return;
        }
        cur = map
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Removes the field at `path`, and the objects it leaves empty.
fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if let Some(Value::Object(map)) = parents.iter().try_fold(&mut *value, |v, k| v.get_mut(k)) {
        map.remove(last);
    }
    if !parents.is_empty()
        && at(value, parents).is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
    {
        remove(value, parents);
    }
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

/// `fieldsV1` of a set of paths: `{"f:metadata": {"f:annotations": {"f:x": {}}}}`.
fn fields_v1(paths: &BTreeSet<Path>) -> Value {
    let mut out = Value::Object(Map::new());
    for p in paths {
        let prefixed: Path = p.iter().map(|k| format!("f:{k}")).collect();
        set(&mut out, &prefixed, json!({}));
    }
    out
}

/// An object and who owns which of its fields.
#[derive(Debug, Clone)]
struct Stored {
    object: Value,
    /// Per manager: the paths it owns, and whether it got them by apply or by update.
    owners: BTreeMap<String, (BTreeSet<Path>, &'static str)>,
    resource_version: u64,
    created: u64,
    /// `metadata.creationTimestamp`, whole seconds as the API server keeps it.
    creation: String,
}

#[derive(Debug, Default)]
pub(super) struct State {
    objects: BTreeMap<ObjectKey, Stored>,
    version: u64,
}

/// Now, as Kubernetes writes times: RFC 3339 in whole seconds, UTC.
pub(super) fn now() -> String {
    seconds(Timestamp::now())
}

/// A time as Kubernetes writes it.
pub(super) fn seconds(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl State {
    /// The object a write goes to (created empty if new), and the write's resource version.
    /// A new object starts now, or at the `metadata.creationTimestamp` of `body` when it has
    /// one: the fake keeps it (the API server would not) so that tests can make objects that
    /// started in the past.
    fn write(&mut self, key: &ObjectKey, body: &Value) -> (&mut Stored, u64) {
        self.version += 1;
        let version = self.version;
        let stored = self.objects.entry(key.clone()).or_insert_with(|| Stored {
            object: json!({}),
            owners: BTreeMap::new(),
            resource_version: version,
            created: version,
            creation: body["metadata"]["creationTimestamp"]
                .as_str()
                .map_or_else(now, str::to_owned),
        });
        (stored, version)
    }

    pub(super) fn object(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key).map(|s| &s.object)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.objects.keys()
    }

    pub(super) fn creation(&self, key: &ObjectKey) -> Option<&str> {
        self.objects.get(key).map(|s| s.creation.as_str())
    }

    pub(super) fn remove(&mut self, key: &ObjectKey) -> bool {
        self.objects.remove(key).is_some()
    }

    /// Stores an object a controller made (a pod): owned by `manager`, starting at `creation`.
    pub(super) fn put(&mut self, key: &ObjectKey, manager: &str, object: Value, creation: String) {
        self.version += 1;
        let fields = manager_fields(&object);
        let stored = Stored {
            object,
            owners: BTreeMap::from([(manager.to_owned(), (fields, "Update"))]),
            resource_version: self.version,
            created: self.version,
            creation,
        };
        self.objects.insert(key.clone(), stored);
    }
}

impl Stored {
    /// An update's ownership: `manager` takes `fields` from whoever had them (no conflict),
    /// and nobody owns what was `removed` any more.
    fn take_by_update(&mut self, manager: &str, fields: BTreeSet<Path>, removed: &BTreeSet<Path>) {
        for (other, (paths, _)) in self.owners.iter_mut() {
            paths.retain(|p| !removed.iter().any(|r| p.starts_with(r)));
            if other != manager {
                paths.retain(|p| !fields.contains(p));
            }
        }
        self.owners.retain(|_, (paths, _)| !paths.is_empty());
        if !fields.is_empty() {
            let entry = self
                .owners
                .entry(manager.to_owned())
                .or_insert_with(|| (BTreeSet::new(), "Update"));
            entry.0.extend(fields);
        }
    }
}

/// The fields of `body` a manager can own (not those the server sets).
fn manager_fields(body: &Value) -> BTreeSet<Path> {
    leaf_paths(body)
        .into_iter()
        .filter(|p| !server_fields(p))
        .collect()
}

/// The in-memory store. Cheap to clone: clones share the state.
#[derive(Debug, Clone, Default)]
pub struct FakeKube {
    state: Arc<Mutex<State>>,
    faults: Arc<Mutex<Faults>>,
}

/// What the HTTP face does to the next requests instead of answering them at once.
#[derive(Debug, Default)]
struct Faults {
    throttled: u32,
    unavailable: u32,
    stalled: u32,
    stall: std::time::Duration,
    requests: u64,
    /// Requests that write (every method but GET).
    writes: u64,
    /// Added to every request before it is served.
    latency: std::time::Duration,
    in_flight: u32,
    max_in_flight: u32,
}

/// One request being served by the HTTP face: counted in flight until dropped.
pub(super) struct InFlight(Arc<Mutex<Faults>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut f = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f.in_flight = f.in_flight.saturating_sub(1);
    }
}

/// A fault the HTTP face applies to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// 429 `TooManyRequests` with `retryAfterSeconds: 1`, as API Priority and Fairness answers.
    Throttled,
    /// 503 `ServiceUnavailable`.
    Unavailable,
    /// Answer after this long.
    Stalled(std::time::Duration),
}

/// The fields the server sets itself, never owned by a manager.
fn server_fields(path: &[String]) -> bool {
    matches!(
        path.first().map(String::as_str),
        Some("apiVersion" | "kind")
    ) || (path.first().map(String::as_str) == Some("metadata")
        && matches!(
            path.get(1).map(String::as_str),
            Some(
                "name"
                    | "namespace"
                    | "uid"
                    | "resourceVersion"
                    | "creationTimestamp"
                    | "managedFields"
                    | "generation"
            )
        ))
}

impl FakeKube {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Server-side apply of `body` by `manager`: creates the object or merges into it. A field
    /// another manager owns with another value is a conflict, unless `force` (then this manager
    /// takes it over). Fields this manager applied before and no longer applies are removed
    /// when no other manager owns them. Returns the object as stored.
    ///
    /// # Errors
    /// [`ApplyConflict`] naming every conflicting field and its manager; nothing is changed.
    pub fn apply(
        &self,
        key: &ObjectKey,
        manager: &str,
        body: Value,
        force: bool,
    ) -> Result<Value, ApplyConflict> {
        let mut state = self.lock();
        let before = state.object(key).cloned();
        let (stored, version) = state.write(key, &body);
        let applied = manager_fields(&body);
        // (manager, field) pairs: another manager owns the field with another value.
        let mut taken: Vec<(String, Path)> = Vec::new();
        for p in &applied {
            let same = at(&stored.object, p) == at(&body, p);
            for (other, (paths, _)) in &stored.owners {
                if other != manager && paths.contains(p) && !same {
                    taken.push((other.clone(), p.clone()));
                }
            }
        }
        let conflicts: Vec<Conflict> = taken
            .iter()
            .map(|(m, p)| Conflict {
                field: dotted(p),
                manager: m.clone(),
            })
            .collect();
        if !conflicts.is_empty() && !force {
            if before.is_none() {
                state.remove(key);
            }
            return Err(ApplyConflict { conflicts });
        }
        let owned_before = stored
            .owners
            .get(manager)
            .map(|(paths, _)| paths.clone())
            .unwrap_or_default();
        for dropped in owned_before.difference(&applied) {
            let shared = stored
                .owners
                .iter()
                .any(|(m, (paths, _))| m != manager && paths.contains(dropped));
            if !shared {
                remove(&mut stored.object, dropped);
            }
        }
        for p in &applied {
            if let Some(v) = at(&body, p) {
                set(&mut stored.object, p, v.clone());
            }
        }
        // Forced: the fields taken from other managers are this manager's alone.
        for (other, p) in &taken {
            if let Some((paths, _)) = stored.owners.get_mut(other) {
                paths.remove(p);
            }
        }
        stored.owners.retain(|_, (paths, _)| !paths.is_empty());
        stored.owners.insert(manager.to_owned(), (applied, "Apply"));
        stored.resource_version = version;
        let served = Self::served(key, stored);
        controller::after_write(&mut state, key, before.as_ref());
        Ok(served)
    }

    /// A plain update by `manager` (`kubectl edit`, a controller): sets the fields of `body`
    /// and takes their ownership from whoever had them, with no conflict.
    pub fn update(&self, key: &ObjectKey, manager: &str, body: Value) -> Value {
        let mut state = self.lock();
        let before = state.object(key).cloned();
        let (stored, version) = state.write(key, &body);
        let fields = manager_fields(&body);
        for p in &fields {
            if let Some(v) = at(&body, p) {
                set(&mut stored.object, p, v.clone());
            }
        }
        stored.take_by_update(manager, fields, &BTreeSet::new());
        stored.resource_version = version;
        let served = Self::served(key, stored);
        controller::after_write(&mut state, key, before.as_ref());
        served
    }

    /// A JSON merge patch (RFC 7386) by `manager` of an existing object: `null` removes a
    /// field (and its ownership), anything else is set as by [`update`](Self::update). `None`
    /// when the object does not exist.
    pub fn merge_patch(&self, key: &ObjectKey, manager: &str, patch: &Value) -> Option<Value> {
        let mut state = self.lock();
        let before = state.object(key).cloned()?;
        let (stored, version) = state.write(key, patch);
        let mut removed = BTreeSet::new();
        merge(&mut stored.object, patch, &mut Vec::new(), &mut removed);
        let fields = manager_fields(patch)
            .into_iter()
            .filter(|p| !at(patch, p).is_some_and(Value::is_null))
            .collect::<BTreeSet<_>>();
        stored.take_by_update(manager, fields, &removed);
        stored.resource_version = version;
        let served = Self::served(key, stored);
        controller::after_write(&mut state, key, Some(&before));
        Some(served)
    }

    /// The object as the API server serves it, with `metadata.managedFields`.
    pub fn get(&self, key: &ObjectKey) -> Option<Value> {
        self.lock().objects.get(key).map(|s| Self::served(key, s))
    }

    /// Deletes an object; `false` when it was not there.
    pub fn delete(&self, key: &ObjectKey) -> bool {
        self.lock().remove(key)
    }

    /// A node of GKE node pool `pool` (label `cloud.google.com/gke-nodepool`). Workloads
    /// created after it have pods on it (round robin over the nodes).
    pub fn add_node(&self, name: &str, pool: &str) -> &Self {
        self.update(
            &ObjectKey::new("v1", "Node", "", name),
            "kubelet",
            json!({"metadata": {"labels": {crate::diagnose::GKE_NODE_POOL_LABEL: pool}}}),
        );
        self
    }

    /// What a chart makes for a service: the ServiceAccount `service_account` (no
    /// annotations) and the Deployment `deployment` of `replicas` pods running as it, both
    /// created by field manager `helm` at `started` (RFC 3339; its pods start then too).
    pub fn add_service(
        &self,
        namespace: &str,
        service_account: &str,
        deployment: &str,
        replicas: u32,
        started: &str,
    ) -> &Self {
        self.update(
            &ObjectKey::new("v1", "ServiceAccount", namespace, service_account),
            "helm",
            json!({"metadata": {"creationTimestamp": started, "labels": {"app.kubernetes.io/managed-by": "Helm"}}}),
        );
        self.update(
            &ObjectKey::new("apps/v1", "Deployment", namespace, deployment),
            "helm",
            json!({
                "metadata": {"creationTimestamp": started},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": deployment}},
                    "template": {
                        "metadata": {"labels": {"app": deployment}},
                        "spec": {
                            "serviceAccountName": service_account,
                            "containers": [{"name": deployment, "image": format!("registry.example.com/{deployment}:1")}],
                        },
                    },
                },
            }),
        );
        self
    }

    /// What the app's chart made `ago` before now: per service of `manifest` with an identity
    /// connection, its ServiceAccount (named as porter-identity names it) and a Deployment of
    /// two pods running as it, in `namespace` (see [`add_service`](Self::add_service)).
    ///
    /// # Errors
    /// When the app, namespace or a service name is not a valid Kubernetes name.
    pub fn add_app(
        &self,
        manifest: &porter_identity_core::AppManifest,
        app: &str,
        namespace: &str,
        ago: std::time::Duration,
    ) -> porter_identity_core::Result<&Self> {
        let started = Timestamp::now()
            .checked_sub(k8s_openapi::jiff::SignedDuration::try_from(ago).unwrap_or_default())
            .unwrap_or_else(|_| Timestamp::now());
        let started = seconds(started);
        let mut seen = BTreeSet::new();
        for binding in manifest.bindings(app, namespace)? {
            let w = &binding.workload;
            if seen.insert(w.service_account().to_string()) {
                self.add_service(
                    namespace,
                    w.service_account().as_str(),
                    w.service().as_str(),
                    2,
                    &started,
                );
            }
        }
        Ok(self)
    }

    /// The next `n` requests to the HTTP face are answered 429 `TooManyRequests` with
    /// `retryAfterSeconds: 1`, as an API server under load answers.
    pub fn throttle_next(&self, n: u32) -> &Self {
        self.faults().throttled = n;
        self
    }

    /// The next `n` requests to the HTTP face are answered 503.
    pub fn fail_next(&self, n: u32) -> &Self {
        self.faults().unavailable = n;
        self
    }

    /// The next `n` requests to the HTTP face are answered only after `stall`.
    pub fn stall_next(&self, n: u32, stall: std::time::Duration) -> &Self {
        let mut faults = self.faults();
        faults.stalled = n;
        faults.stall = stall;
        self
    }

    /// How many requests the HTTP face has had (authorized ones, faults included).
    pub fn requests(&self) -> u64 {
        self.faults().requests
    }

    /// How many of them were writes (a patch, a create, a delete: every method but GET).
    pub fn writes(&self) -> u64 {
        self.faults().writes
    }

    /// Forgets the requests counted so far (e.g. after setup).
    pub fn reset_requests(&self) -> &Self {
        let mut f = self.faults();
        f.requests = 0;
        f.writes = 0;
        f.max_in_flight = f.in_flight;
        self
    }

    /// Every request to the HTTP face is answered `latency` later, as a remote API server is.
    pub fn set_latency(&self, latency: std::time::Duration) -> &Self {
        self.faults().latency = latency;
        self
    }

    /// The latency every request gets.
    pub(super) fn latency(&self) -> std::time::Duration {
        self.faults().latency
    }

    /// The most authorized requests the HTTP face has served at once (stalls included): what
    /// a client's concurrency bound let through.
    pub fn max_in_flight(&self) -> u32 {
        self.faults().max_in_flight
    }

    /// Counts a request in flight until the guard is dropped.
    pub(super) fn enter(&self) -> InFlight {
        let mut f = self.faults();
        f.in_flight += 1;
        f.max_in_flight = f.max_in_flight.max(f.in_flight);
        InFlight(Arc::clone(&self.faults))
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a request and takes the fault it gets, if any (throttling first, then 503s, then
    /// stalls).
    pub(super) fn take_fault(&self, write: bool) -> Option<Fault> {
        let mut f = self.faults();
        f.requests += 1;
        if write {
            f.writes += 1;
        }
        if f.throttled > 0 {
            f.throttled -= 1;
            Some(Fault::Throttled)
        } else if f.unavailable > 0 {
            f.unavailable -= 1;
            Some(Fault::Unavailable)
        } else if f.stalled > 0 {
            f.stalled -= 1;
            Some(Fault::Stalled(f.stall))
        } else {
            None
        }
    }

    /// Everything the store holds (objects, field ownership, versions, creation times) as
    /// JSON, for [`restore`](Self::restore) in another process: how a demo keeps its cluster
    /// between runs.
    pub fn snapshot(&self) -> Value {
        let state = self.lock();
        let objects: Vec<Value> = state
            .objects
            .iter()
            .map(|(key, stored)| {
                let owners: Map<String, Value> = stored
                    .owners
                    .iter()
                    .map(|(manager, (paths, operation))| {
                        (
                            manager.clone(),
                            json!({"operation": operation, "fields": paths}),
                        )
                    })
                    .collect();
                json!({
                    "apiVersion": key.api_version, "kind": key.kind,
                    "namespace": key.namespace, "name": key.name,
                    "object": stored.object, "owners": owners,
                    "resourceVersion": stored.resource_version, "created": stored.created,
                    "creationTimestamp": stored.creation,
                })
            })
            .collect();
        json!({"version": state.version, "objects": objects})
    }

    /// A store with what [`snapshot`](Self::snapshot) saved.
    ///
    /// # Errors
    /// When `snapshot` is not one (a message naming what is wrong).
    pub fn restore(snapshot: &Value) -> Result<Self, String> {
        let bad = |what: &str| format!("not a FakeKube snapshot: {what}");
        let mut state = State {
            objects: BTreeMap::new(),
            version: snapshot["version"]
                .as_u64()
                .ok_or_else(|| bad("no version"))?,
        };
        for o in snapshot["objects"]
            .as_array()
            .ok_or_else(|| bad("no objects"))?
        {
            let text = |field: &str| {
                o[field]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(&format!("an object without {field}")))
            };
            let key = ObjectKey {
                api_version: text("apiVersion")?,
                kind: text("kind")?,
                namespace: text("namespace")?,
                name: text("name")?,
            };
            let mut owners = BTreeMap::new();
            for (manager, owned) in o["owners"].as_object().ok_or_else(|| bad("no owners"))? {
                let operation = match owned["operation"].as_str() {
                    Some("Apply") => "Apply",
                    _ => "Update",
                };
                let paths: BTreeSet<Path> = serde_json::from_value(owned["fields"].clone())
                    .map_err(|e| bad(&e.to_string()))?;
                owners.insert(manager.clone(), (paths, operation));
            }
            let stored = Stored {
                object: o["object"].clone(),
                owners,
                resource_version: o["resourceVersion"].as_u64().unwrap_or_default(),
                created: o["created"].as_u64().unwrap_or_default(),
                creation: text("creationTimestamp")?,
            };
            state.objects.insert(key, stored);
        }
        Ok(FakeKube {
            state: Arc::new(Mutex::new(state)),
            faults: Arc::default(),
        })
    }

    /// The objects of `kind` in `namespace` (every namespace when `None`) matching an
    /// equality-based label selector (`a=b,c!=d`, empty for all) and field selector
    /// (`spec.serviceAccountName=x,spec.nodeName=y`, dotted paths).
    pub fn list(
        &self,
        kind: &str,
        namespace: Option<&str>,
        label_selector: &str,
        field_selector: &str,
    ) -> Vec<Value> {
        let labels = parse_selector(label_selector);
        let fields = parse_selector(field_selector);
        self.lock()
            .objects
            .iter()
            .filter(|(k, _)| k.kind == kind && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(k, s)| Self::served(k, s))
            .filter(|o| {
                labels.iter().all(|(key, want, eq)| {
                    let have = o["metadata"]["labels"].get(key).and_then(Value::as_str);
                    (have == Some(want.as_str())) == *eq
                })
            })
            .filter(|o| {
                fields.iter().all(|(path, want, eq)| {
                    let parts: Path = path.split('.').map(str::to_owned).collect();
                    let have = at(o, &parts).and_then(Value::as_str);
                    (have == Some(want.as_str())) == *eq
                })
            })
            .collect()
    }

    fn served(key: &ObjectKey, stored: &Stored) -> Value {
        let mut object = stored.object.clone();
        set(&mut object, &["apiVersion".into()], json!(key.api_version));
        set(&mut object, &["kind".into()], json!(key.kind));
        let meta = |field: &str| vec!["metadata".to_owned(), field.to_owned()];
        set(&mut object, &meta("name"), json!(key.name));
        if !key.namespace.is_empty() {
            set(&mut object, &meta("namespace"), json!(key.namespace));
        }
        set(
            &mut object,
            &meta("resourceVersion"),
            json!(stored.resource_version.to_string()),
        );
        set(
            &mut object,
            &meta("creationTimestamp"),
            json!(stored.creation),
        );
        set(
            &mut object,
            &meta("uid"),
            json!(format!("00000000-0000-4000-8000-{:012}", stored.created)),
        );
        let managed: Vec<Value> = stored
            .owners
            .iter()
            .map(|(manager, (paths, operation))| {
                json!({
                    "manager": manager,
                    "operation": operation,
                    "apiVersion": key.api_version,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fields_v1(paths),
                })
            })
            .collect();
        set(&mut object, &meta("managedFields"), Value::Array(managed));
        object
    }
}

/// Merges `patch` into `target` (RFC 7386); the paths a `null` removed go to `removed`.
fn merge(target: &mut Value, patch: &Value, path: &mut Path, removed: &mut BTreeSet<Path>) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (k, v) in fields {
        path.push(k.clone());
        if v.is_null() {
            if let Some(map) = target.as_object_mut() {
                map.remove(k);
            }
            removed.insert(path.clone());
        } else if let Some(map) = target.as_object_mut() {
            let slot = map.entry(k.clone()).or_insert(Value::Null);
            merge(slot, v, path, removed);
        }
        path.pop();
    }
}

/// `a=b,c!=d` (also `a==b`) → `[(a, b, true), (c, d, false)]`.
fn parse_selector(selector: &str) -> Vec<(String, String, bool)> {
    selector
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                Some((k.trim().to_owned(), v.trim().to_owned(), false))
            } else {
                let (k, v) = term.split_once("==").or_else(|| term.split_once('='))?;
                Some((k.trim().to_owned(), v.trim().to_owned(), true))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::api::core::v1::ServiceAccount;

    use super::*;
    use crate::apply::{FIELD_MANAGER, annotation_conflicts};
    use crate::fake::{Conflict, FakeKube, ObjectKey};

    fn sa() -> ObjectKey {
        ObjectKey::new("v1", "ServiceAccount", "shop", "shop-api")
    }

    #[test]
    fn apply_creates_then_merges_and_owns_what_it_applied() {
        let kube = FakeKube::new();
        kube.apply(
            &sa(),
            FIELD_MANAGER,
            json!({"metadata": {"annotations": {"a": "1"}}}),
            false,
        )
        .unwrap();
        kube.update(
            &sa(),
            "kubectl-edit",
            json!({"metadata": {"labels": {"team": "x"}}}),
        );
        let got = kube.get(&sa()).unwrap();
        assert_eq!(got["metadata"]["annotations"]["a"], "1");
        assert_eq!(got["metadata"]["labels"]["team"], "x");
        let managers: Vec<&str> = got["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["kubectl-edit", FIELD_MANAGER]);
    }

    #[test]
    fn another_managers_value_conflicts_unless_forced_and_the_same_value_is_shared() {
        let kube = FakeKube::new();
        kube.update(
            &sa(),
            "helm",
            json!({"metadata": {"annotations": {"a": "old", "b": "same"}}}),
        );
        let e = kube
            .apply(
                &sa(),
                FIELD_MANAGER,
                json!({"metadata": {"annotations": {"a": "new", "b": "same"}}}),
                false,
            )
            .unwrap_err();
        assert_eq!(
            e.conflicts,
            [Conflict {
                field: ".metadata.annotations.a".into(),
                manager: "helm".into()
            }]
        );
        assert_eq!(
            e.to_string(),
            "Apply failed with 1 conflict: conflict with \"helm\": .metadata.annotations.a"
        );
        assert_eq!(
            kube.get(&sa()).unwrap()["metadata"]["annotations"]["a"],
            "old",
            "nothing changed"
        );

        // What the client library reads off managedFields agrees with the server.
        let served: ServiceAccount = serde_json::from_value(kube.get(&sa()).unwrap()).unwrap();
        let mut patch = porter_identity_core::ServiceAccountPatch::default();
        patch.annotations.insert("a".into(), "new".into());
        assert_eq!(annotation_conflicts(&served, &patch)[0].manager, "helm");

        let forced = kube
            .apply(
                &sa(),
                FIELD_MANAGER,
                json!({"metadata": {"annotations": {"a": "new", "b": "same"}}}),
                true,
            )
            .unwrap();
        assert_eq!(forced["metadata"]["annotations"]["a"], "new");
        let served: ServiceAccount = serde_json::from_value(forced).unwrap();
        assert!(
            annotation_conflicts(&served, &patch).is_empty(),
            "the forced field is ours now"
        );
    }

    #[test]
    fn a_field_no_longer_applied_is_removed_unless_someone_else_owns_it() {
        let kube = FakeKube::new();
        kube.apply(
            &sa(),
            FIELD_MANAGER,
            json!({"metadata": {"annotations": {"a": "1", "b": "2"}}}),
            false,
        )
        .unwrap();
        kube.apply(
            &sa(),
            "other",
            json!({"metadata": {"annotations": {"b": "2"}}}),
            false,
        )
        .unwrap();
        let got = kube
            .apply(
                &sa(),
                FIELD_MANAGER,
                json!({"metadata": {"labels": {"x": "y"}}}),
                false,
            )
            .unwrap();
        assert!(got["metadata"]["annotations"].get("a").is_none(), "{got}");
        assert_eq!(
            got["metadata"]["annotations"]["b"], "2",
            "shared with `other`"
        );
    }

    #[test]
    fn a_snapshot_restores_objects_ownership_and_creation_times() {
        let kube = FakeKube::new();
        kube.update(
            &sa(),
            "helm",
            json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z", "annotations": {"a": "1"}}}),
        );
        let restored = FakeKube::restore(&kube.snapshot()).unwrap();
        assert_eq!(restored.get(&sa()), kube.get(&sa()));
        let conflict = restored
            .apply(
                &sa(),
                FIELD_MANAGER,
                json!({"metadata": {"annotations": {"a": "2"}}}),
                false,
            )
            .unwrap_err();
        assert_eq!(conflict.conflicts[0].manager, "helm", "ownership came back");
        assert!(FakeKube::restore(&json!({"objects": []})).is_err());
    }

    #[test]
    fn an_app_gets_a_service_account_named_as_porter_identity_names_it_and_two_old_pods() {
        let manifest = porter_identity_core::AppManifest::from_yaml_str(
            "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: r\n      - type: gcpServiceAccount\n        serviceAccountEmail: api-sa@p-123456.iam.gserviceaccount.com\n  - name: web\n",
        )
        .unwrap();
        let kube = FakeKube::new();
        let long_app = "a".repeat(60);
        kube.add_app(
            &manifest,
            &long_app,
            "shop",
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
        let accounts = kube.list("ServiceAccount", Some("shop"), "", "");
        assert_eq!(accounts.len(), 1, "one per service with a connection, once");
        let name = accounts[0]["metadata"]["name"].as_str().unwrap();
        let want = porter_identity_core::ServiceAccountName::for_service(&long_app, "api").unwrap();
        assert_eq!(name, want.as_str(), "hashed as the providers name it");
        let pods = kube.list(
            "Pod",
            Some("shop"),
            "",
            &format!("spec.serviceAccountName={name}"),
        );
        assert_eq!(pods.len(), 2);
        let started: Timestamp = pods[0]["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(Timestamp::now().duration_since(started).as_secs() >= 3599);
        assert!(
            kube.add_app(&manifest, "Bad App", "shop", std::time::Duration::ZERO)
                .is_err()
        );
    }

    #[test]
    fn lists_filter_by_namespace_labels_and_fields() {
        let kube = FakeKube::new();
        for (ns, name, sa, node, app) in [
            ("shop", "api-1", "shop-api", "n1", "api"),
            ("shop", "api-2", "shop-api", "n2", "api"),
            ("shop", "web-1", "default", "n1", "web"),
            ("other", "api-1", "shop-api", "n1", "api"),
        ] {
            kube.update(
                &ObjectKey::new("v1", "Pod", ns, name),
                "kubelet",
                json!({"metadata": {"labels": {"app": app}}, "spec": {"serviceAccountName": sa, "nodeName": node}}),
            );
        }
        let names = |ns: Option<&str>, labels: &str, fields: &str| -> Vec<String> {
            kube.list("Pod", ns, labels, fields)
                .iter()
                .map(|p| {
                    format!(
                        "{}/{}",
                        p["metadata"]["namespace"].as_str().unwrap(),
                        p["metadata"]["name"].as_str().unwrap()
                    )
                })
                .collect()
        };
        assert_eq!(
            names(Some("shop"), "app=api", ""),
            ["shop/api-1", "shop/api-2"]
        );
        assert_eq!(names(Some("shop"), "app!=api", ""), ["shop/web-1"]);
        assert_eq!(
            names(
                None,
                "",
                "spec.nodeName=n1,spec.serviceAccountName=shop-api"
            ),
            ["other/api-1", "shop/api-1"]
        );
        assert!(names(Some("shop"), "app=none", "").is_empty());
    }
}
