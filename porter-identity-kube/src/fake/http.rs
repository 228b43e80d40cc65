//! The fake's face as a Kubernetes API server: the REST paths of the core (`/api/v1`) and named
//! (`/apis/apps/v1`, `/apis/batch/v1`) groups for the kinds porter-identity reads and writes,
//! served from the same [`FakeKube`] store.
//!
//! - `GET` one object or a list (`labelSelector`, `fieldSelector`: equality terms), in a
//!   namespace or across all;
//! - `POST` creates (409 `AlreadyExists` when it exists);
//! - `PATCH` with `application/apply-patch+yaml` is server-side apply (`fieldManager` is
//!   required, `force=true` takes fields over; a conflict is the API server's 409 with one
//!   `FieldManagerConflict` cause per field); `application/merge-patch+json` and
//!   `application/strategic-merge-patch+json` merge (for the maps and scalars porter-identity
//!   patches, the two agree);
//! - `DELETE` removes.
//!
//! Every request needs the bearer token of the kubeconfig ([`super::tls`]); errors are
//! `Status` objects. The store's fault knobs (`throttle_next`, `fail_next`, `stall_next`) act
//! here, on the next requests. Bodies are JSON (what kube-rs sends; JSON is YAML too).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::store::Fault;
use super::{FakeKube, ObjectKey};

/// The router of the face; `token` is the bearer token every request must carry.
pub(super) fn router(kube: FakeKube, token: String) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Face { kube, token })
}

#[derive(Clone)]
struct Face {
    kube: FakeKube,
    token: String,
}

/// A kind the face serves: its API version, kind, plural and whether it is namespaced.
struct Resource {
    api_version: &'static str,
    kind: &'static str,
    namespaced: bool,
}

const RESOURCES: &[(&str, &str, Resource)] = &[
    (
        "v1",
        "serviceaccounts",
        Resource {
            api_version: "v1",
            kind: "ServiceAccount",
            namespaced: true,
        },
    ),
    (
        "v1",
        "pods",
        Resource {
            api_version: "v1",
            kind: "Pod",
            namespaced: true,
        },
    ),
    (
        "v1",
        "nodes",
        Resource {
            api_version: "v1",
            kind: "Node",
            namespaced: false,
        },
    ),
    (
        "apps/v1",
        "deployments",
        Resource {
            api_version: "apps/v1",
            kind: "Deployment",
            namespaced: true,
        },
    ),
    (
        "apps/v1",
        "statefulsets",
        Resource {
            api_version: "apps/v1",
            kind: "StatefulSet",
            namespaced: true,
        },
    ),
    (
        "apps/v1",
        "daemonsets",
        Resource {
            api_version: "apps/v1",
            kind: "DaemonSet",
            namespaced: true,
        },
    ),
    (
        "apps/v1",
        "replicasets",
        Resource {
            api_version: "apps/v1",
            kind: "ReplicaSet",
            namespaced: true,
        },
    ),
    (
        "batch/v1",
        "cronjobs",
        Resource {
            api_version: "batch/v1",
            kind: "CronJob",
            namespaced: true,
        },
    ),
    (
        "batch/v1",
        "jobs",
        Resource {
            api_version: "batch/v1",
            kind: "Job",
            namespaced: true,
        },
    ),
];

/// What a request names: the resource, the namespace (`None`: all, or cluster-scoped) and the
/// object's name (`None`: the collection).
struct Target {
    resource: &'static Resource,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
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
        &format!("{} \"{name}\" not found", target.plural),
        json!({"name": name, "kind": target.plural}),
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

/// `/api/v1/...` or `/apis/{group}/{version}/...` → the target.
fn parse(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (version, rest): (String, &[&str]) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".into(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        _ => return None,
    };
    let (_, _, resource) = RESOURCES
        .iter()
        .find(|(v, p, _)| *v == version && *p == plural)?;
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
        plural: plural.to_owned(),
        namespace: match namespace {
            Some(ns) => Some(decode(ns)?),
            None => None,
        },
        name: match name {
            Some(n) => Some(decode(n)?),
            None => None,
        },
    })
}

fn query(uri: &Uri, key: &str) -> Option<String> {
    let q = uri.query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
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
    let Some(target) = parse(uri.path()) else {
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
    let key = |name: &str| {
        ObjectKey::new(
            target.resource.api_version,
            target.resource.kind,
            target.namespace.as_deref().unwrap_or_default(),
            name,
        )
    };
    // A body that is not JSON is answered 400 (a boxed response: clippy's large-error rule).
    let body_json = || -> Result<Value, Box<Response>> {
        serde_json::from_slice(&body).map_err(|e| {
            Box::new(status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("the body is not JSON: {e}"),
                json!({}),
            ))
        })
    };
    let manager = query(&uri, "fieldManager");
    match (method, target.name.as_deref()) {
        (Method::GET, Some(name)) => match face.kube.get(&key(name)) {
            Some(object) => json_response(StatusCode::OK, &object),
            None => not_found(&target, name),
        },
        (Method::GET, None) => {
            let items = face.kube.list(
                target.resource.kind,
                target.namespace.as_deref(),
                &query(&uri, "labelSelector").unwrap_or_default(),
                &query(&uri, "fieldSelector").unwrap_or_default(),
            );
            json_response(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", target.resource.kind),
                    "apiVersion": target.resource.api_version,
                    "metadata": {"resourceVersion": ""},
                    "items": items,
                }),
            )
        }
        (Method::POST, None) => {
            let body = match body_json() {
                Ok(b) => b,
                Err(r) => return *r,
            };
            let Some(name) = body["metadata"]["name"].as_str().map(str::to_owned) else {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "metadata.name: Required value: name is required",
                    json!({}),
                );
            };
            if face.kube.get(&key(&name)).is_some() {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    &format!("{} \"{name}\" already exists", target.plural),
                    json!({"name": name, "kind": target.plural}),
                );
            }
            let manager = manager.unwrap_or_else(|| "unknown".into());
            let created = face.kube.update(&key(&name), &manager, body);
            json_response(StatusCode::CREATED, &created)
        }
        (Method::PATCH, Some(name)) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let patch = match body_json() {
                Ok(b) => b,
                Err(r) => return *r,
            };
            match content_type {
                "application/apply-patch+yaml" => {
                    apply(&face.kube, &target, &key(name), manager, &uri, patch)
                }
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    let manager = manager.unwrap_or_else(|| "unknown".into());
                    match face.kube.merge_patch(&key(name), &manager, &patch) {
                        Some(object) => json_response(StatusCode::OK, &object),
                        None => not_found(&target, name),
                    }
                }
                other => status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    &format!("the fake does not take patches of type {other:?}"),
                    json!({}),
                ),
            }
        }
        (Method::DELETE, Some(name)) => {
            if face.kube.delete(&key(name)) {
                json_response(
                    StatusCode::OK,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200}),
                )
            } else {
                not_found(&target, name)
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

fn apply(
    kube: &FakeKube,
    target: &Target,
    key: &ObjectKey,
    manager: Option<String>,
    uri: &Uri,
    body: Value,
) -> Response {
    let Some(manager) = manager.filter(|m| !m.is_empty()) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            json!({}),
        );
    };
    if body["apiVersion"].as_str() != Some(target.resource.api_version)
        || body["kind"].as_str() != Some(target.resource.kind)
        || body["metadata"]["name"].as_str() != Some(key.name.as_str())
    {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the applied object's apiVersion, kind and metadata.name must match the request path",
            json!({}),
        );
    }
    let force = query(uri, "force").as_deref() == Some("true");
    match kube.apply(key, &manager, body, force) {
        Ok(object) => json_response(StatusCode::OK, &object),
        Err(conflict) => {
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
                json!({"name": key.name, "kind": target.plural, "causes": causes}),
            )
        }
    }
}
