use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::{controller, patch, resources};

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
    /// The object without what the server sets (see [`strip_server_fields`]): those are
    /// [`served`] from the fields below.
    object: Value,
    /// Per manager: the paths it owns, and whether it got them by apply or by update.
    owners: BTreeMap<String, (BTreeSet<Path>, &'static str)>,
    resource_version: u64,
    created: u64,
    /// `metadata.creationTimestamp`, whole seconds as the API server keeps it.
    creation: String,
    /// `metadata.generation`: 1 at creation, one more per write that changes the object
    /// outside `metadata` and `status` (what a controller's `observedGeneration` follows).
    generation: u64,
    /// `metadata.deletionTimestamp`: set by a delete that finalizers hold up.
    deletion: Option<String>,
}

impl Stored {
    /// An object about to be created, starting at `creation`.
    fn new(creation: String) -> Self {
        Stored {
            object: json!({}),
            owners: BTreeMap::new(),
            resource_version: 0,
            created: 0,
            creation,
            generation: 1,
            deletion: None,
        }
    }
}

/// The most changes the watch log keeps unless told otherwise
/// ([`FakeKube::set_watch_log_limit`]).
const WATCH_LOG_LIMIT: usize = 100_000;

/// What a watch event says happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The event's `type` on the wire.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change in the watch log: the object as served after it (a deleted one: its last
/// state, at the deletion's version).
#[derive(Debug)]
struct Change {
    version: u64,
    event: EventType,
    key: ObjectKey,
    object: Value,
}

/// The last changes, oldest first, for watches to replay from a resource version.
#[derive(Debug)]
struct Log {
    changes: VecDeque<Change>,
    /// The newest version whose change may be gone from the log: a watch from an older
    /// version cannot be served (410 `Expired`).
    floor: u64,
    limit: usize,
    /// The version of the newest change; watchers wait on it. A channel rather than a
    /// `Notify`: a watcher marks what it has seen before reading the log, so a change made
    /// while it sends is never missed.
    latest: watch::Sender<u64>,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            changes: VecDeque::new(),
            floor: 0,
            limit: WATCH_LOG_LIMIT,
            latest: watch::Sender::new(0),
        }
    }
}

impl Log {
    /// Forgets the oldest changes beyond the limit.
    fn trim(&mut self) {
        while self.changes.len() > self.limit {
            if let Some(gone) = self.changes.pop_front() {
                self.floor = gone.version;
            }
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    objects: BTreeMap<ObjectKey, Stored>,
    version: u64,
    log: Log,
    /// Successful writes per kind, for [`FakeKube::writes_to`].
    writes: BTreeMap<String, u64>,
}

/// Now, as Kubernetes writes times: RFC 3339 in whole seconds, UTC.
pub(super) fn now() -> String {
    seconds(Timestamp::now())
}

/// A time as Kubernetes writes it.
pub(super) fn seconds(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Which part of an object a write goes to: the object, or its `status` subresource
/// (`…/{name}/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    Main,
    Status,
}

/// Whether a write to `scope` may touch `path`. With a status subresource, the object's
/// writes leave `status` alone; a status write touches nothing else.
fn in_scope(path: &[String], scope: Scope, subresource: bool) -> bool {
    let status = path.first().is_some_and(|p| p == "status");
    match scope {
        Scope::Status => status,
        Scope::Main => !(subresource && status),
    }
}

/// A write the API server refuses; nothing is changed.
#[derive(Debug)]
pub(super) enum WriteError {
    /// 404: no such object.
    NotFound,
    /// 409 `AlreadyExists`: a create of an object that is there.
    AlreadyExists,
    /// 409 `Conflict`: the body's `metadata.resourceVersion` is not the stored one.
    Stale,
    /// 422 `Invalid`: a JSON patch that failed a test or names a path that is not there.
    Invalid(String),
    /// 409 `Conflict` of a server-side apply.
    Apply(ApplyConflict),
}

/// What a write left: the object as served, and whether the write removed it (an object
/// being deleted whose last finalizer went).
#[derive(Debug)]
pub(super) struct Written {
    pub(super) object: Value,
    pub(super) removed: bool,
}

/// Which objects a list or a watch wants.
#[derive(Debug, Clone)]
pub(super) struct Selector {
    /// `None`: the kind in every API version (the store's own [`FakeKube::list`]).
    api_version: Option<String>,
    kind: String,
    namespace: Option<String>,
    labels: Vec<(String, String, bool)>,
    fields: Vec<(String, String, bool)>,
}

impl Selector {
    /// Objects of `kind` (in `api_version` if given) in `namespace` (all when `None`)
    /// matching an equality-based label and field selector.
    pub(super) fn new(
        api_version: Option<&str>,
        kind: &str,
        namespace: Option<&str>,
        label_selector: &str,
        field_selector: &str,
    ) -> Self {
        Selector {
            api_version: api_version.map(str::to_owned),
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            labels: parse_selector(label_selector),
            fields: parse_selector(field_selector),
        }
    }

    /// The first key the selector can want, when it names the API version (and so a range
    /// of the store's keys).
    fn first_key(&self) -> Option<ObjectKey> {
        let api_version = self.api_version.as_deref()?;
        Some(ObjectKey::new(
            api_version,
            &self.kind,
            self.namespace.as_deref().unwrap_or_default(),
            "",
        ))
    }

    /// Whether `key` is still within the range that starts at [`first_key`](Self::first_key).
    fn in_range(&self, key: &ObjectKey) -> bool {
        self.api_version.as_deref() == Some(key.api_version.as_str())
            && key.kind == self.kind
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
    }

    fn wants_key(&self, key: &ObjectKey) -> bool {
        key.kind == self.kind
            && self
                .api_version
                .as_ref()
                .is_none_or(|v| *v == key.api_version)
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
    }

    /// Whether it wants `object` (as served) of `key`.
    fn wants(&self, key: &ObjectKey, object: &Value) -> bool {
        self.wants_key(key)
            && self.labels.iter().all(|(label, want, eq)| {
                let have = object["metadata"]["labels"]
                    .get(label)
                    .and_then(Value::as_str);
                (have == Some(want.as_str())) == *eq
            })
            && self.fields.iter().all(|(path, want, eq)| {
                let parts: Path = path.split('.').map(str::to_owned).collect();
                let have = at(object, &parts).and_then(Value::as_str);
                (have == Some(want.as_str())) == *eq
            })
    }
}

/// Whether `object` still has a finalizer.
fn has_finalizers(object: &Value) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

/// The object's fields outside `metadata` and `status`: what its generation counts.
fn outside_metadata(object: &Value) -> BTreeMap<&String, &Value> {
    object
        .as_object()
        .map(|map| {
            map.iter()
                .filter(|(k, _)| *k != "metadata" && *k != "status")
                .collect()
        })
        .unwrap_or_default()
}

/// Drops what the server sets (and serves from the stored object's own fields) from a body:
/// a write cannot set them.
fn strip_server_fields(object: &mut Value) {
    if !object.is_object() {
        *object = json!({});
    }
    for field in ["apiVersion", "kind"] {
        remove(object, &[field.to_owned()]);
    }
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        remove(object, &["metadata".to_owned(), field.to_owned()]);
    }
}

impl State {
    /// The one way a write lands. `change` edits a copy of the object (a new, empty one when
    /// `key` is not there; `creation` is when a new object starts, now when `None`); then the
    /// API server's rules: what the server sets is not the body's to set; with a status
    /// subresource a write to the object keeps its status and a status write changes only
    /// status; the generation counts changes outside metadata and status; a write that
    /// changes nothing makes no new version and no watch event; an object being deleted
    /// that is left without finalizers is removed. Every change goes to the watch log.
    fn commit(
        &mut self,
        key: &ObjectKey,
        scope: Scope,
        creation: Option<&str>,
        change: impl FnOnce(&mut Stored, bool) -> Result<(), WriteError>,
    ) -> Result<Written, WriteError> {
        let before = self.objects.get(key).cloned();
        if scope == Scope::Status && before.is_none() {
            return Err(WriteError::NotFound);
        }
        let subresource = resources::status_subresource(self, key);
        let mut next = before
            .clone()
            .unwrap_or_else(|| Stored::new(creation.map_or_else(now, str::to_owned)));
        change(&mut next, subresource)?;
        strip_server_fields(&mut next.object);
        if subresource || scope == Scope::Status {
            let old = before.as_ref().map(|b| &b.object);
            match scope {
                Scope::Main => put_status(&mut next.object, old.and_then(|o| o.get("status"))),
                Scope::Status => {
                    let status = next.object.get("status").cloned();
                    next.object = old.cloned().unwrap_or_else(|| json!({}));
                    put_status(&mut next.object, status.as_ref());
                }
            }
        }
        next.generation = match &before {
            None => 1,
            Some(b) if outside_metadata(&b.object) != outside_metadata(&next.object) => {
                b.generation + 1
            }
            Some(b) => b.generation,
        };
        *self.writes.entry(key.kind.clone()).or_default() += 1;
        if let Some(b) = &before
            && b.object == next.object
            && b.owners == next.owners
            && b.deletion == next.deletion
        {
            return Ok(Written {
                object: served(key, b),
                removed: false,
            });
        }
        self.version += 1;
        let version = self.version;
        next.resource_version = version;
        if before.is_none() {
            next.created = version;
        }
        let object = served(key, &next);
        if next.deletion.is_some() && !has_finalizers(&next.object) {
            self.objects.remove(key);
            self.record(version, EventType::Deleted, key, object.clone());
            return Ok(Written {
                object,
                removed: true,
            });
        }
        self.objects.insert(key.clone(), next);
        let event = match before {
            None => EventType::Added,
            Some(_) => EventType::Modified,
        };
        self.record(version, event, key, object.clone());
        controller::after_write(self, key, before.as_ref().map(|b| &b.object));
        Ok(Written {
            object,
            removed: false,
        })
    }

    /// Logs a change for watches and wakes them.
    fn record(&mut self, version: u64, event: EventType, key: &ObjectKey, object: Value) {
        self.log.changes.push_back(Change {
            version,
            event,
            key: key.clone(),
            object,
        });
        self.log.trim();
        self.log.latest.send_replace(version);
    }

    /// `NotFound` when `key` is not there; `Stale` when `body` carries a
    /// `metadata.resourceVersion` that is not the stored one (the optimistic check of an
    /// update).
    fn check_version(&self, key: &ObjectKey, body: &Value) -> Result<(), WriteError> {
        let stored = self.objects.get(key).ok_or(WriteError::NotFound)?;
        match body["metadata"]["resourceVersion"].as_str() {
            Some(v) if !v.is_empty() && v != stored.resource_version.to_string() => {
                Err(WriteError::Stale)
            }
            _ => Ok(()),
        }
    }

    /// A delete: an object with finalizers gets its `deletionTimestamp` (once) and stays;
    /// any other is removed. `None` when it is not there.
    fn delete(&mut self, key: &ObjectKey) -> Option<Written> {
        let (finalized, deleting) = self
            .objects
            .get(key)
            .map(|s| (has_finalizers(&s.object), s.deletion.is_some()))?;
        *self.writes.entry(key.kind.clone()).or_default() += 1;
        if finalized && deleting {
            return self.objects.get(key).map(|s| Written {
                object: served(key, s),
                removed: false,
            });
        }
        self.version += 1;
        let version = self.version;
        if finalized {
            let stored = self.objects.get_mut(key)?;
            stored.deletion = Some(now());
            stored.resource_version = version;
            let object = served(key, stored);
            self.record(version, EventType::Modified, key, object.clone());
            return Some(Written {
                object,
                removed: false,
            });
        }
        let mut gone = self.objects.remove(key)?;
        gone.resource_version = version;
        let object = served(key, &gone);
        self.record(version, EventType::Deleted, key, object.clone());
        Some(Written {
            object,
            removed: true,
        })
    }

    pub(super) fn object(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key).map(|s| &s.object)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.objects.keys()
    }

    /// The stored objects of one API version and kind (the CustomResourceDefinitions).
    pub(super) fn objects_of<'a>(
        &'a self,
        api_version: &'a str,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .range(ObjectKey::new(api_version, kind, "", "")..)
            .take_while(move |(k, _)| k.api_version == api_version && k.kind == kind)
            .map(|(_, s)| &s.object)
    }

    pub(super) fn creation(&self, key: &ObjectKey) -> Option<&str> {
        self.objects.get(key).map(|s| s.creation.as_str())
    }

    /// Removes an object a controller deletes (a pod it replaces), for watches too.
    pub(super) fn remove(&mut self, key: &ObjectKey) -> bool {
        let Some(mut gone) = self.objects.remove(key) else {
            return false;
        };
        self.version += 1;
        gone.resource_version = self.version;
        let object = served(key, &gone);
        self.record(self.version, EventType::Deleted, key, object);
        true
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
            generation: 1,
            deletion: None,
        };
        let object = served(key, &stored);
        let event = match self.objects.insert(key.clone(), stored) {
            None => EventType::Added,
            Some(_) => EventType::Modified,
        };
        self.record(self.version, event, key, object);
    }
}

/// Sets (or, `None`, removes) an object's `status`.
fn put_status(object: &mut Value, status: Option<&Value>) {
    if let Some(map) = object.as_object_mut() {
        match status {
            Some(s) => {
                map.insert("status".into(), s.clone());
            }
            None => {
                map.remove("status");
            }
        }
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
                    | "deletionTimestamp"
                    | "deletionGracePeriodSeconds"
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
        match self.apply_in(key, manager, &body, force, Scope::Main) {
            Ok(written) => Ok(written.object),
            Err(WriteError::Apply(conflict)) => Err(conflict),
            // Not reached: only a status apply finds no object, and apply has no other refusal.
            Err(_) => Err(ApplyConflict {
                conflicts: Vec::new(),
            }),
        }
    }

    /// Server-side apply to the object or (`Scope::Status`) its status subresource.
    pub(super) fn apply_in(
        &self,
        key: &ObjectKey,
        manager: &str,
        body: &Value,
        force: bool,
        scope: Scope,
    ) -> Result<Written, WriteError> {
        let creation = body["metadata"]["creationTimestamp"].as_str();
        self.lock()
            .commit(key, scope, creation, |stored, subresource| {
                let applied: BTreeSet<Path> = manager_fields(body)
                    .into_iter()
                    .filter(|p| in_scope(p, scope, subresource))
                    .collect();
                // (manager, field) pairs: another manager owns the field with another value.
                let mut taken: Vec<(String, Path)> = Vec::new();
                for p in &applied {
                    let same = at(&stored.object, p) == at(body, p);
                    for (other, (paths, _)) in &stored.owners {
                        if other != manager && paths.contains(p) && !same {
                            taken.push((other.clone(), p.clone()));
                        }
                    }
                }
                if !taken.is_empty() && !force {
                    let conflicts = taken
                        .iter()
                        .map(|(m, p)| Conflict {
                            field: dotted(p),
                            manager: m.clone(),
                        })
                        .collect();
                    return Err(WriteError::Apply(ApplyConflict { conflicts }));
                }
                // The manager's fields on the other side of a status subresource are not this
                // apply's to drop.
                let (owned_before, elsewhere): (BTreeSet<Path>, BTreeSet<Path>) = stored
                    .owners
                    .get(manager)
                    .map(|(paths, _)| paths.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .partition(|p| in_scope(p, scope, subresource));
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
                    if let Some(v) = at(body, p) {
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
                let mut mine = applied;
                mine.extend(elsewhere);
                stored.owners.insert(manager.to_owned(), (mine, "Apply"));
                Ok(())
            })
    }

    /// A plain update by `manager` (`kubectl edit`, a controller): sets the fields of `body`
    /// and takes their ownership from whoever had them, with no conflict.
    pub fn update(&self, key: &ObjectKey, manager: &str, body: Value) -> Value {
        let creation = body["metadata"]["creationTimestamp"].as_str();
        let written = self
            .lock()
            .commit(key, Scope::Main, creation, |stored, subresource| {
                let fields: BTreeSet<Path> = manager_fields(&body)
                    .into_iter()
                    .filter(|p| in_scope(p, Scope::Main, subresource))
                    .collect();
                for p in &fields {
                    if let Some(v) = at(&body, p) {
                        set(&mut stored.object, p, v.clone());
                    }
                }
                stored.take_by_update(manager, fields, &BTreeSet::new());
                Ok(())
            });
        // An update of the object itself is never refused.
        written.map_or(Value::Null, |w| w.object)
    }

    /// A create (`POST`) by `manager`: `body` is the object.
    pub(super) fn create(
        &self,
        key: &ObjectKey,
        manager: &str,
        body: Value,
    ) -> Result<Written, WriteError> {
        let mut state = self.lock();
        if state.objects.contains_key(key) {
            return Err(WriteError::AlreadyExists);
        }
        let creation = body["metadata"]["creationTimestamp"]
            .as_str()
            .map(str::to_owned);
        state.commit(
            key,
            Scope::Main,
            creation.as_deref(),
            |stored, subresource| {
                let fields = manager_fields(&body)
                    .into_iter()
                    .filter(|p| in_scope(p, Scope::Main, subresource))
                    .collect();
                stored.object = body;
                stored.take_by_update(manager, fields, &BTreeSet::new());
                Ok(())
            },
        )
    }

    /// A replace (`PUT`) by `manager`: `body` is the object (or, `Scope::Status`, its status);
    /// `manager` owns all of its fields. `Stale` when `body` carries another
    /// `metadata.resourceVersion` than the stored one.
    pub(super) fn replace(
        &self,
        key: &ObjectKey,
        manager: &str,
        body: Value,
        scope: Scope,
    ) -> Result<Written, WriteError> {
        let mut state = self.lock();
        state.check_version(key, &body)?;
        state.commit(key, scope, None, |stored, subresource| {
            let mut object = body;
            strip_server_fields(&mut object);
            let fields = manager_fields(&object)
                .into_iter()
                .filter(|p| in_scope(p, scope, subresource))
                .collect();
            let removed = leaf_paths(&stored.object)
                .difference(&leaf_paths(&object))
                .filter(|p| in_scope(p, scope, subresource))
                .cloned()
                .collect();
            stored.object = object;
            stored.take_by_update(manager, fields, &removed);
            Ok(())
        })
    }

    /// A JSON merge patch (RFC 7386) by `manager` of an existing object: `null` removes a
    /// field (and its ownership), anything else is set as by [`update`](Self::update). `None`
    /// when the object does not exist, or when the patch carries a `metadata.resourceVersion`
    /// that is not the stored one (the API server's optimistic check).
    pub fn merge_patch(&self, key: &ObjectKey, manager: &str, patch: &Value) -> Option<Value> {
        self.merge_in(key, manager, patch, Scope::Main)
            .ok()
            .map(|w| w.object)
    }

    /// A merge patch of the object or its status subresource.
    pub(super) fn merge_in(
        &self,
        key: &ObjectKey,
        manager: &str,
        patch: &Value,
        scope: Scope,
    ) -> Result<Written, WriteError> {
        let mut state = self.lock();
        state.check_version(key, patch)?;
        state.commit(key, scope, None, |stored, subresource| {
            let mut removed = BTreeSet::new();
            merge(&mut stored.object, patch, &mut Vec::new(), &mut removed);
            removed.retain(|p| in_scope(p, scope, subresource));
            let fields = manager_fields(patch)
                .into_iter()
                .filter(|p| !at(patch, p).is_some_and(Value::is_null))
                .filter(|p| in_scope(p, scope, subresource))
                .collect::<BTreeSet<_>>();
            stored.take_by_update(manager, fields, &removed);
            Ok(())
        })
    }

    /// A JSON patch (RFC 6902) by `manager` of the object as served (so `test` can check
    /// `metadata.resourceVersion`); the fields it writes become `manager`'s as by an update.
    /// `Invalid` when an operation fails; nothing is changed then.
    pub(super) fn json_patch(
        &self,
        key: &ObjectKey,
        manager: &str,
        ops: &Value,
        scope: Scope,
    ) -> Result<Written, WriteError> {
        let mut state = self.lock();
        let mut doc = served(key, state.objects.get(key).ok_or(WriteError::NotFound)?);
        let touched = patch::apply(&mut doc, ops).map_err(WriteError::Invalid)?;
        state.commit(key, scope, None, |stored, subresource| {
            strip_server_fields(&mut doc);
            let mut fields = BTreeSet::new();
            let mut removed = BTreeSet::new();
            for t in touched {
                if !t.whole {
                    // Inside an array: the array is the field (arrays are atomic).
                    fields.insert(t.path);
                    continue;
                }
                if !t.removed
                    && let Some(value) = at(&doc, &t.path)
                {
                    leaves(value, &mut t.path.clone(), &mut fields);
                }
                removed.insert(t.path);
            }
            fields.retain(|p| {
                at(&doc, p).is_some() && !server_fields(p) && in_scope(p, scope, subresource)
            });
            removed.retain(|p| in_scope(p, scope, subresource));
            stored.object = doc;
            stored.take_by_update(manager, fields, &removed);
            Ok(())
        })
    }

    /// The object as the API server serves it, with `metadata.managedFields`.
    pub fn get(&self, key: &ObjectKey) -> Option<Value> {
        self.lock().objects.get(key).map(|s| served(key, s))
    }

    /// Deletes an object; `false` when it was not there. As the API server does, an object
    /// with `metadata.finalizers` is not removed: it gets a `metadata.deletionTimestamp` (the
    /// first time only) and stays until a write leaves it without finalizers, which removes
    /// it.
    pub fn delete(&self, key: &ObjectKey) -> bool {
        self.delete_object(key).is_some()
    }

    /// A delete, and what it left (see [`delete`](Self::delete)); `None` when the object was
    /// not there.
    pub(super) fn delete_object(&self, key: &ObjectKey) -> Option<Written> {
        self.lock().delete(key)
    }

    /// The current resource version: the counter every change moves on, served as lists'
    /// `metadata.resourceVersion` (watch from it to see what changes next).
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// How many successful writes of objects of `kind` (`ServiceAccount`, a custom kind's
    /// name) the store has taken, through its own methods or the HTTP face: creates,
    /// applies, updates, patches, replaces and deletes, including those that changed nothing
    /// (what a client sent, not what changed). The pods the fake's controllers replace are
    /// not counted. [`reset_requests`](Self::reset_requests) forgets them too.
    pub fn writes_to(&self, kind: &str) -> u64 {
        self.lock().writes.get(kind).copied().unwrap_or_default()
    }

    /// How many changes the watch log keeps (100,000 unless told): a watch from a resource
    /// version older than the oldest kept is answered 410 `Expired`, as the API server
    /// answers once its watch cache has moved on. Takes effect at once.
    pub fn set_watch_log_limit(&self, limit: usize) -> &Self {
        let mut state = self.lock();
        state.log.limit = limit;
        state.log.trim();
        self
    }

    /// A receiver of the newest change's version, to wait for changes on.
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.lock().log.latest.subscribe()
    }

    /// The objects `selector` wants, as served, and the resource version they are at.
    pub(super) fn select(&self, selector: &Selector) -> (Vec<Value>, u64) {
        let state = self.lock();
        // Keys sort by API version, kind, namespace, name: a list of one kind in one API
        // version reads only its own range, so that a store of many kinds (a fleet's pods,
        // events, custom objects) serves each list in the time of its own objects.
        let keys: Box<dyn Iterator<Item = (&ObjectKey, &Stored)>> = match selector.first_key() {
            Some(first) => Box::new(
                state
                    .objects
                    .range(first..)
                    .take_while(|(k, _)| selector.in_range(k)),
            ),
            None => Box::new(state.objects.iter()),
        };
        let objects = keys
            .filter(|(k, _)| selector.wants_key(k))
            .map(|(k, s)| (k, served(k, s)))
            .filter(|(k, o)| selector.wants(k, o))
            .map(|(_, o)| o)
            .collect();
        (objects, state.version)
    }

    /// The changes after resource version `after` that `selector` wants, and the version they
    /// go up to. `Err` with the log's floor when `after` is older than the log keeps.
    pub(super) fn changes_after(
        &self,
        selector: &Selector,
        after: u64,
    ) -> Result<(Vec<(EventType, Value)>, u64), u64> {
        let state = self.lock();
        let log = &state.log;
        if after < log.floor {
            return Err(log.floor);
        }
        let start = log.changes.partition_point(|c| c.version <= after);
        let changes = log
            .changes
            .range(start..)
            .filter(|c| selector.wants(&c.key, &c.object))
            .map(|c| (c.event, c.object.clone()))
            .collect();
        Ok((changes, state.version.max(after)))
    }

    /// The resource served at `api_version` and `plural`: built in, or of a
    /// CustomResourceDefinition in the store.
    pub(super) fn resource(&self, api_version: &str, plural: &str) -> Option<resources::Resource> {
        resources::find(&self.lock(), api_version, plural)
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

    /// Forgets the requests counted so far (e.g. after setup), and the writes per kind of
    /// [`writes_to`](Self::writes_to).
    pub fn reset_requests(&self) -> &Self {
        self.lock().writes.clear();
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

    /// Everything the store holds (objects, field ownership, versions, creation times,
    /// generations, pending deletions) as JSON, for [`restore`](Self::restore) in another
    /// process: how a demo keeps its cluster between runs. The watch log is not kept: a watch
    /// from before the snapshot is answered 410 `Expired` by the restored store.
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
                    "generation": stored.generation,
                    "deletionTimestamp": stored.deletion,
                })
            })
            .collect();
        json!({"version": state.version, "objects": objects})
    }

    /// A store with what [`snapshot`](Self::snapshot) saved. Snapshots of earlier versions
    /// of the fake (without generations or deletion times) restore with generation 1 and no
    /// deletion pending.
    ///
    /// # Errors
    /// When `snapshot` is not one (a message naming what is wrong).
    pub fn restore(snapshot: &Value) -> Result<Self, String> {
        let bad = |what: &str| format!("not a FakeKube snapshot: {what}");
        let version = snapshot["version"]
            .as_u64()
            .ok_or_else(|| bad("no version"))?;
        let mut state = State {
            version,
            ..State::default()
        };
        // The changes before the snapshot are not in the log.
        state.log.floor = version;
        state.log.latest.send_replace(version);
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
                generation: o["generation"].as_u64().unwrap_or(1),
                deletion: o["deletionTimestamp"].as_str().map(str::to_owned),
            };
            state.objects.insert(key, stored);
        }
        Ok(FakeKube {
            state: Arc::new(Mutex::new(state)),
            faults: Arc::default(),
        })
    }

    /// The objects of `kind` (in any API version; a custom kind by its name) in `namespace`
    /// (every namespace when `None`) matching an equality-based label selector (`a=b,c!=d`,
    /// empty for all) and field selector (`spec.serviceAccountName=x,spec.nodeName=y`, dotted
    /// paths).
    pub fn list(
        &self,
        kind: &str,
        namespace: Option<&str>,
        label_selector: &str,
        field_selector: &str,
    ) -> Vec<Value> {
        let selector = Selector::new(None, kind, namespace, label_selector, field_selector);
        self.select(&selector).0
    }
}

/// The object as the API server serves it: the stored object with what the server sets.
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
    set(&mut object, &meta("generation"), json!(stored.generation));
    if let Some(deletion) = &stored.deletion {
        set(&mut object, &meta("deletionTimestamp"), json!(deletion));
    }
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

    fn crd(kube: &FakeKube) {
        kube.update(
            &ObjectKey::new(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "",
                "widgets.example.com",
            ),
            "test",
            json!({"spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}],
            }}),
        );
    }

    fn widget() -> ObjectKey {
        ObjectKey::new("example.com/v1", "Widget", "shop", "w")
    }

    #[test]
    fn generation_counts_spec_changes_and_a_status_subresource_keeps_each_side_to_itself() {
        let kube = FakeKube::new();
        crd(&kube);
        let created = kube.update(
            &widget(),
            "test",
            json!({"spec": {"size": 1}, "status": {"ready": true}}),
        );
        assert_eq!(created["metadata"]["generation"], 1);
        assert!(
            created.get("status").is_none(),
            "status is the subresource's"
        );
        let labelled = kube
            .merge_patch(
                &widget(),
                "test",
                &json!({"metadata": {"labels": {"a": "b"}}}),
            )
            .unwrap();
        assert_eq!(labelled["metadata"]["generation"], 1, "metadata only");
        let status = kube
            .merge_in(
                &widget(),
                "ctl",
                &json!({"spec": {"size": 9}, "status": {"ready": true}}),
                Scope::Status,
            )
            .unwrap()
            .object;
        assert_eq!(status["status"]["ready"], true);
        assert_eq!(
            status["spec"]["size"], 1,
            "a status write changes status only"
        );
        assert_eq!(status["metadata"]["generation"], 1);
        let resized = kube
            .merge_patch(
                &widget(),
                "test",
                &json!({"spec": {"size": 2}, "status": {"ready": false}}),
            )
            .unwrap();
        assert_eq!(resized["metadata"]["generation"], 2);
        assert_eq!(resized["status"]["ready"], true, "kept");

        // Without a status subresource (a built-in here) status is the object's.
        let cm = ObjectKey::new("v1", "ConfigMap", "shop", "c");
        let got = kube.update(&cm, "test", json!({"data": {"a": "1"}, "status": {"x": 1}}));
        assert_eq!(got["status"]["x"], 1);
    }

    #[test]
    fn finalizers_hold_a_delete_until_a_write_removes_the_last_one() {
        let kube = FakeKube::new();
        let cm = ObjectKey::new("v1", "ConfigMap", "shop", "c");
        kube.update(&cm, "test", json!({"metadata": {"finalizers": ["a", "b"]}}));
        assert!(kube.delete(&cm));
        let held = kube.get(&cm).unwrap();
        let since = held["metadata"]["deletionTimestamp"].clone();
        assert!(since.as_str().is_some_and(|t| t.ends_with('Z')), "{held}");
        let version = kube.version();
        assert!(kube.delete(&cm), "still there");
        assert_eq!(kube.version(), version, "a second delete changes nothing");
        kube.merge_patch(&cm, "test", &json!({"metadata": {"finalizers": ["b"]}}))
            .unwrap();
        assert_eq!(
            kube.get(&cm).unwrap()["metadata"]["deletionTimestamp"],
            since
        );
        let last = kube
            .json_patch(
                &cm,
                "test",
                &json!([{"op": "remove", "path": "/metadata/finalizers/0"}]),
                Scope::Main,
            )
            .unwrap();
        assert!(last.removed);
        assert!(kube.get(&cm).is_none());
        assert!(!kube.delete(&cm));

        let plain = ObjectKey::new("v1", "ConfigMap", "shop", "plain");
        kube.update(&plain, "test", json!({"data": {"a": "1"}}));
        assert!(kube.delete(&plain));
        assert!(kube.get(&plain).is_none(), "no finalizers: gone at once");
    }

    #[test]
    fn the_watch_log_replays_changes_in_order_and_forgets_the_oldest() {
        let kube = FakeKube::new();
        let start = kube.version();
        let cm = ObjectKey::new("v1", "ConfigMap", "shop", "c");
        kube.update(&cm, "test", json!({"data": {"a": "1"}}));
        kube.update(&cm, "test", json!({"data": {"a": "2"}}));
        let same = kube.version();
        kube.update(&cm, "test", json!({"data": {"a": "2"}}));
        assert_eq!(
            kube.version(),
            same,
            "a write that changes nothing is no change"
        );
        kube.update(
            &ObjectKey::new("v1", "ConfigMap", "other", "c"),
            "test",
            json!({"data": {"a": "1"}}),
        );
        kube.delete(&cm);
        let selector = Selector::new(Some("v1"), "ConfigMap", Some("shop"), "", "");
        let (changes, version) = kube.changes_after(&selector, start).unwrap();
        let seen: Vec<(&str, &str)> = changes
            .iter()
            .map(|(e, o)| (e.as_str(), o["data"]["a"].as_str().unwrap()))
            .collect();
        assert_eq!(seen, [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]);
        assert_eq!(version, kube.version());
        let by_field = Selector::new(
            Some("v1"),
            "ConfigMap",
            None,
            "",
            "metadata.namespace=shop,metadata.name=c",
        );
        assert_eq!(
            kube.changes_after(&by_field, start).unwrap().0.len(),
            3,
            "the other namespace's is not wanted"
        );
        assert_eq!(
            changes[2].1["metadata"]["resourceVersion"],
            kube.version().to_string(),
            "a deletion is a version of its own"
        );

        kube.set_watch_log_limit(1);
        assert_eq!(
            kube.changes_after(&selector, start).unwrap_err(),
            version - 1
        );
        assert!(kube.changes_after(&selector, version - 1).is_ok());
        let restored = FakeKube::restore(&kube.snapshot()).unwrap();
        assert!(restored.changes_after(&selector, version - 1).is_err());
        assert!(restored.changes_after(&selector, version).is_ok());
    }

    #[test]
    fn writes_are_counted_per_kind_and_the_controllers_pods_are_logged() {
        let kube = FakeKube::new();
        kube.add_service("shop", "shop-api", "api", 2, "2026-01-01T00:00:00Z");
        assert_eq!(kube.writes_to("ServiceAccount"), 1);
        assert_eq!(kube.writes_to("Deployment"), 1);
        assert_eq!(
            kube.writes_to("Pod"),
            0,
            "the controllers' pods are not counted"
        );
        let before = kube.version();
        kube.merge_patch(
            &ObjectKey::new("apps/v1", "Deployment", "shop", "api"),
            "kubectl-rollout",
            &json!({"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}}),
        )
        .unwrap();
        let pods = Selector::new(Some("v1"), "Pod", Some("shop"), "", "");
        let (changes, _) = kube.changes_after(&pods, before).unwrap();
        let events: Vec<&str> = changes.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(events, ["DELETED", "DELETED", "ADDED", "ADDED"]);
        kube.reset_requests();
        assert_eq!(kube.writes_to("Deployment"), 0);
    }

    #[test]
    fn a_snapshot_of_an_earlier_fake_restores_with_generation_one() {
        let old = json!({"version": 3, "objects": [{
            "apiVersion": "v1", "kind": "ServiceAccount", "namespace": "shop", "name": "a",
            "object": {"metadata": {"labels": {"x": "y"}}}, "owners": {},
            "resourceVersion": 3, "created": 1, "creationTimestamp": "2026-01-01T00:00:00Z",
        }]});
        let kube = FakeKube::restore(&old).unwrap();
        let got = kube
            .get(&ObjectKey::new("v1", "ServiceAccount", "shop", "a"))
            .unwrap();
        assert_eq!(got["metadata"]["generation"], 1);
        assert!(got["metadata"].get("deletionTimestamp").is_none());
        assert_eq!(kube.version(), 3);
    }
}
