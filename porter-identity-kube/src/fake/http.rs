//! The fake's face as a Kubernetes API server: the REST paths of the core (`/api/v1`) and named
//! (`/apis/{group}/{version}`) groups, served from the same [`FakeKube`] store, for
//!
//! - the built-in kinds porter-identity and its controller read and write: `v1`
//!   ServiceAccount, Pod, Node, Namespace, Event, ConfigMap; `apps/v1` Deployment,
//!   StatefulSet, DaemonSet, ReplicaSet; `batch/v1` CronJob, Job; `events.k8s.io/v1` Event;
//!   `coordination.k8s.io/v1` Lease; `rbac.authorization.k8s.io/v1` ClusterRole,
//!   ClusterRoleBinding, Role, RoleBinding; `apiextensions.k8s.io/v1`
//!   CustomResourceDefinition ([`super::resources`]);
//! - the custom resources of every CustomResourceDefinition in the store, at each of its
//!   served versions (`spec.group`, `spec.names`, `spec.scope`), with a status subresource
//!   when the version has `subresources.status`. Deleting the CRD leaves its objects.
//!
//! What each method does:
//!
//! - `GET` one object (or its `/status`) or a list (`labelSelector`, `fieldSelector`:
//!   equality terms), in a namespace or across all; a list's `metadata.resourceVersion` is the
//!   store's current version. With `watch=true` it is a watch ([`super::watch`]).
//! - `POST` creates (409 `AlreadyExists` when it exists); without `metadata.name`,
//!   `metadata.generateName` and five random characters name it.
//! - `PUT` replaces an object (or its status): the body is the object, and the `fieldManager`
//!   (`unknown` when not given) owns all of its fields. A body whose `metadata.resourceVersion`
//!   is not the stored one is the API server's 409 `Conflict` ("the object has been
//!   modified"); a missing object is 404.
//! - `PATCH` with `application/apply-patch+yaml` is server-side apply (`fieldManager` is
//!   required, `force=true` takes fields over; a conflict is the API server's 409 with one
//!   `FieldManagerConflict` cause per field); `application/merge-patch+json` and
//!   `application/strategic-merge-patch+json` merge (for the maps and scalars porter-identity
//!   patches, the two agree; a `metadata.resourceVersion` in the patch is checked as by
//!   `PUT`); `application/json-patch+json` is a JSON patch ([`super::patch`]: a failed `test`
//!   or a bad path is 422 `Invalid`, and nothing changes).
//! - `DELETE` removes; an object with `metadata.finalizers` is kept with a
//!   `metadata.deletionTimestamp` (answered 200 with the object), until a write leaves it
//!   without finalizers.
//!
//! With a status subresource, writes to the object leave `status` as it was, and writes to
//! `/status` change only `status`. Every write keeps `metadata.generation` (1 at creation,
//! one more per change outside `metadata` and `status`) and goes to the store's watch log.
//!
//! Every request needs the bearer token of the kubeconfig ([`super::tls`]); errors are
//! `Status` objects. The store's fault knobs (`throttle_next`, `fail_next`, `stall_next`) act
//! here, on the next requests, watches included. Bodies are JSON (what kube-rs sends; JSON
//! is YAML too).

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::resources::Resource;
use super::store::{Fault, Scope, Selector, WriteError, Written};
use super::watch::{self, Watch};
use super::{FakeKube, ObjectKey};

/// How long a watch lasts unless its request says (`timeoutSeconds`).
const WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// The characters of a generated name's suffix, the API server's (no vowels, no look-alikes).
const NAME_SUFFIX: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The router of the face; `token` is the bearer token every request must carry; watches end
/// when `shutdown` turns true (or its sender goes).
pub(super) fn router(
    kube: FakeKube,
    token: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Router {
    Router::new().fallback(handle).with_state(Face {
        kube,
        token,
        shutdown,
    })
}

#[derive(Clone)]
struct Face {
    kube: FakeKube,
    token: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

/// What a request names: the resource, the namespace (`None`: all, or cluster-scoped), the
/// object's name (`None`: the collection) and whether it is the object's `/status`.
struct Target {
    resource: Resource,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn status(code: StatusCode, reason: &str, message: &str, details: Value) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code.as_u16(),
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn not_found(target: &Target, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{name}\" not found", target.resource.plural),
        json!({"name": name, "group": target.resource.group(), "kind": target.resource.plural}),
    )
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A write's answer: the object as served at the request's version, or the refusal.
fn written(
    target: &Target,
    name: &str,
    code: StatusCode,
    result: Result<Written, WriteError>,
) -> Response {
    let error = match result {
        Ok(w) => return json_response(code, &target.resource.served(w.object)),
        Err(e) => e,
    };
    let plural = &target.resource.plural;
    match error {
        WriteError::NotFound => not_found(target, name),
        WriteError::AlreadyExists => status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("{plural} \"{name}\" already exists"),
            json!({"name": name, "kind": plural}),
        ),
        WriteError::Stale => status(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                target.resource.qualified()
            ),
            json!({"name": name, "group": target.resource.group(), "kind": plural}),
        ),
        WriteError::Invalid(message) => status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            &format!("{plural} \"{name}\" is invalid: {message}"),
            json!({"name": name, "group": target.resource.group(), "kind": plural}),
        ),
        WriteError::Apply(conflict) => {
            let causes: Vec<Value> = conflict
                .conflicts
                .iter()
                .map(|c| {
                    json!({
                        "reason": "FieldManagerConflict",
                        "message": format!("conflict with \"{}\"", c.manager),
                        "field": c.field,
                    })
                })
                .collect();
            status(
                StatusCode::CONFLICT,
                "Conflict",
                &conflict.to_string(),
                json!({"name": name, "group": target.resource.group(), "kind": plural, "causes": causes}),
            )
        }
    }
}

/// `/api/v1/...` or `/apis/{group}/{version}/...` → the target: `{plural}[/{name}[/status]]`,
/// after `namespaces/{ns}/` for a namespaced kind (a namespace itself is
/// `/api/v1/namespaces/{name}`).
fn parse(kube: &FakeKube, path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (version, rest): (String, &[&str]) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".into(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let in_namespace = match rest {
        ["namespaces", ns, plural, tail @ ..] => kube
            .resource(&version, plural)
            .filter(|r| r.namespaced)
            .map(|r| (r, Some(*ns), tail)),
        _ => None,
    };
    let (resource, namespace, tail) = match in_namespace {
        Some(found) => found,
        None => match rest {
            [plural, tail @ ..] => (kube.resource(&version, plural)?, None, tail),
            [] => return None,
        },
    };
    let (name, status) = match tail {
        [] => (None, false),
        [name] => (Some(*name), false),
        [name, "status"] if resource.status => (Some(*name), true),
        _ => return None,
    };
    if resource.namespaced != namespace.is_some() && name.is_some() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some(Target {
        resource,
        namespace: match namespace {
            Some(ns) => Some(decode(ns)?),
            None => None,
        },
        name: match name {
            Some(n) => Some(decode(n)?),
            None => None,
        },
        status,
    })
}

fn query(uri: &Uri, key: &str) -> Option<String> {
    let q = uri.query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn bad_request(message: &str) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, json!({}))
}

/// `prefix` and five random characters, as the API server makes a name of `generateName`.
fn generate_name(prefix: &str) -> String {
    let suffix: String = (0..5)
        .map(|_| char::from(NAME_SUFFIX[fastrand::usize(..NAME_SUFFIX.len())]))
        .collect();
    format!("{prefix}{suffix}")
}

async fn handle(
    Shared(face): Shared<Face>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == face.token);
    if !authorized {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized",
            json!({}),
        );
    }
    let _in_flight = face.kube.enter();
    let latency = face.kube.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match face.kube.take_fault(method != Method::GET) {
        Some(Fault::Throttled) => {
            return status(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "too many requests, please try again later",
                json!({"retryAfterSeconds": 1}),
            );
        }
        Some(Fault::Unavailable) => {
            return status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
                json!({}),
            );
        }
        Some(Fault::Stalled(stall)) => tokio::time::sleep(stall).await,
        None => {}
    }
    let Some(target) = parse(&face.kube, uri.path()) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "the server could not find the requested resource ({})",
                uri.path()
            ),
            json!({}),
        );
    };
    let key = |name: &str| target.resource.key(target.namespace.as_deref(), name);
    // A body that is not JSON is answered 400 (a boxed response: clippy's large-error rule).
    let body_json = || -> Result<Value, Box<Response>> {
        serde_json::from_slice(&body)
            .map_err(|e| Box::new(bad_request(&format!("the body is not JSON: {e}"))))
    };
    let scope = if target.status {
        Scope::Status
    } else {
        Scope::Main
    };
    let manager = query(&uri, "fieldManager");
    let updater = || manager.clone().unwrap_or_else(|| "unknown".into());
    match (method, target.name.as_deref()) {
        (Method::GET, Some(name)) => match face.kube.get(&key(name)) {
            Some(object) => json_response(StatusCode::OK, &target.resource.served(object)),
            None => not_found(&target, name),
        },
        (Method::GET, None) => {
            let selector = Selector::new(
                Some(&target.resource.storage),
                &target.resource.kind,
                target.namespace.as_deref(),
                &query(&uri, "labelSelector").unwrap_or_default(),
                &query(&uri, "fieldSelector").unwrap_or_default(),
            );
            if matches!(query(&uri, "watch").as_deref(), Some("true" | "1")) {
                return start_watch(&face, &uri, target.resource, selector);
            }
            let (items, version) = face.kube.select(&selector);
            let items: Vec<Value> = items
                .into_iter()
                .map(|o| target.resource.served(o))
                .collect();
            json_response(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", target.resource.kind),
                    "apiVersion": target.resource.api_version,
                    "metadata": {"resourceVersion": version.to_string()},
                    "items": items,
                }),
            )
        }
        (Method::POST, None) => {
            let body = match body_json() {
                Ok(b) => b,
                Err(r) => return *r,
            };
            let name = match (
                body["metadata"]["name"].as_str(),
                body["metadata"]["generateName"].as_str(),
            ) {
                (Some(name), _) => name.to_owned(),
                // A few tries: a clash of five random characters is rare, two are rarer.
                (None, Some(prefix)) => (0..8)
                    .map(|_| generate_name(prefix))
                    .find(|n| face.kube.get(&key(n)).is_none())
                    .unwrap_or_else(|| generate_name(prefix)),
                (None, None) => {
                    return status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        "metadata.name: Required value: name or generateName is required",
                        json!({}),
                    );
                }
            };
            let result = face.kube.create(&key(&name), &updater(), body);
            written(&target, &name, StatusCode::CREATED, result)
        }
        (Method::PUT, Some(name)) => {
            let body = match body_json() {
                Ok(b) => b,
                Err(r) => return *r,
            };
            if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
                return bad_request("the object's metadata.name must match the request path");
            }
            let result = face.kube.replace(&key(name), &updater(), body, scope);
            written(&target, name, StatusCode::OK, result)
        }
        (Method::PATCH, Some(name)) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .unwrap_or_default()
                .trim();
            let patch = match body_json() {
                Ok(b) => b,
                Err(r) => return *r,
            };
            let result = match content_type {
                "application/apply-patch+yaml" => {
                    return apply(&face.kube, &target, name, manager, &uri, &patch);
                }
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    face.kube.merge_in(&key(name), &updater(), &patch, scope)
                }
                "application/json-patch+json" => {
                    face.kube.json_patch(&key(name), &updater(), &patch, scope)
                }
                other => {
                    return status(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        &format!("the fake does not take patches of type {other:?}"),
                        json!({}),
                    );
                }
            };
            written(&target, name, StatusCode::OK, result)
        }
        (Method::DELETE, Some(name)) if !target.status => {
            match face.kube.delete_object(&key(name)) {
                None => not_found(&target, name),
                // Finalizers hold it: the object, with its deletionTimestamp.
                Some(w) if !w.removed => {
                    json_response(StatusCode::OK, &target.resource.served(w.object))
                }
                Some(_) => json_response(
                    StatusCode::OK,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200}),
                ),
            }
        }
        (method, _) => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("the fake does not serve {method} on {}", uri.path()),
            json!({}),
        ),
    }
}

/// A watch of the collection (`watch=true`); see [`super::watch`].
fn start_watch(face: &Face, uri: &Uri, resource: Resource, selector: Selector) -> Response {
    let since = match query(uri, "resourceVersion").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => return bad_request(&format!("resourceVersion {v:?} is not a version")),
        },
    };
    let timeout = query(uri, "timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(WATCH_TIMEOUT, Duration::from_secs);
    let flag = |name: &str| query(uri, name).as_deref() == Some("true");
    let watch = Watch {
        resource,
        selector,
        since,
        initial_events: flag("sendInitialEvents"),
        bookmarks: flag("allowWatchBookmarks"),
        timeout,
    };
    watch::respond(face.kube.clone(), face.shutdown.clone(), watch)
}

fn apply(
    kube: &FakeKube,
    target: &Target,
    name: &str,
    manager: Option<String>,
    uri: &Uri,
    body: &Value,
) -> Response {
    let Some(manager) = manager.filter(|m| !m.is_empty()) else {
        return bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        );
    };
    // The name may be left to the path (a status apply often is); a different one is refused.
    if body["apiVersion"].as_str() != Some(target.resource.api_version.as_str())
        || body["kind"].as_str() != Some(target.resource.kind.as_str())
        || body["metadata"]["name"].as_str().is_some_and(|n| n != name)
    {
        return bad_request(
            "the applied object's apiVersion, kind and metadata.name must match the request path",
        );
    }
    let force = query(uri, "force").as_deref() == Some("true");
    let scope = if target.status {
        Scope::Status
    } else {
        Scope::Main
    };
    let key: ObjectKey = target.resource.key(target.namespace.as_deref(), name);
    let result = kube.apply_in(&key, &manager, body, force, scope);
    written(target, name, StatusCode::OK, result)
}
