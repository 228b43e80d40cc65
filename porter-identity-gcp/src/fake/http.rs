//! The fake's HTTP face: the v1 REST API of IAM (`projects.serviceAccounts.get`,
//! `getIamPolicy`, `setIamPolicy`, `keys.list`), of GKE (`projects.locations.clusters.get`)
//! and the v3 `projects.getIamPolicy` of Resource Manager, served from the same state as the
//! in-memory face. One server stands for all three APIs: point each endpoint variable at it.
//!
//! Paths and JSON members follow `testdata/api-examples/`. The official clients add
//! `$alt=json;enum-encoding=int`: then enums travel as numbers, both ways, as Google's servers
//! do. Requests need a bearer token shaped like a JWT (the service-account credentials sign
//! one), unless [`FakeGcp::allow_anonymous`]: otherwise 401 `UNAUTHENTICATED`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use porter_identity_core::testing::FakeServer;
use serde_json::{Value, json};

use super::FakeGcp;
use super::state::GcpError;
use crate::operation as op;

/// Serves `fake` over HTTP on `addr` (use `127.0.0.1:0` for a free port) until the returned
/// [`FakeServer`] is shut down or dropped. Must be called within a Tokio runtime. Its
/// [`url`](FakeServer::url) is the endpoint of all three APIs
/// (`CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM`, `…_CONTAINER`, `…_CLOUDRESOURCEMANAGER`).
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(fake: FakeGcp, addr: SocketAddr) -> std::io::Result<FakeServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let router = Router::new().fallback(handle).with_state(fake);
    Ok(FakeServer::spawn(addr, |stop| async move {
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(%error, "fake Google Cloud HTTP server stopped with an error");
        }
    }))
}

/// What a request asks for, read from its method and path.
#[derive(Debug)]
enum Route {
    Cluster {
        project: String,
        location: String,
        name: String,
    },
    ServiceAccount {
        project: String,
        email: String,
    },
    GetPolicy {
        project: String,
        email: String,
    },
    SetPolicy {
        project: String,
        email: String,
    },
    Keys {
        project: String,
        email: String,
    },
    ProjectPolicy {
        project: String,
    },
    NodePool {
        project: String,
        location: String,
        cluster: String,
        pool: String,
        update: bool,
    },
}

impl Route {
    fn operation(&self) -> &'static str {
        match self {
            Route::Cluster { .. } => op::CLUSTERS_GET.name(),
            Route::ServiceAccount { .. } => op::SERVICE_ACCOUNTS_GET.name(),
            Route::GetPolicy { .. } => op::GET_IAM_POLICY.name(),
            Route::SetPolicy { .. } => op::SET_IAM_POLICY.name(),
            Route::Keys { .. } => op::SERVICE_ACCOUNTS_KEYS_LIST.name(),
            Route::ProjectPolicy { .. } => op::PROJECTS_GET_IAM_POLICY.name(),
            Route::NodePool { update: false, .. } => op::NODE_POOLS_GET.name(),
            Route::NodePool { update: true, .. } => op::NODE_POOLS_UPDATE.name(),
        }
    }
}

fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the route; `Err` for a path the fake does not serve.
fn route(method: &Method, path: &str) -> Result<Route, GcpError> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let unknown = || GcpError::not_found(format!("The fake does not serve {method} {path}."));
    // `projects/<p>/serviceAccounts/<email>` with `<p>` `-` or the project.
    match (method.as_str(), s.as_slice()) {
        (
            method,
            [
                "v1",
                "projects",
                project,
                "locations",
                location,
                "clusters",
                cluster,
                rest @ ..,
            ],
        ) => {
            let (project, location, cluster) = (
                (*project).to_owned(),
                (*location).to_owned(),
                (*cluster).to_owned(),
            );
            match (method, rest) {
                ("GET", []) => Ok(Route::Cluster {
                    project,
                    location,
                    name: cluster,
                }),
                ("GET" | "PUT", ["nodePools", pool]) => Ok(Route::NodePool {
                    project,
                    location,
                    cluster,
                    pool: (*pool).into(),
                    update: method == "PUT",
                }),
                _ => Err(unknown()),
            }
        }
        ("GET", ["v1", "projects", project, "serviceAccounts", email]) => {
            Ok(Route::ServiceAccount {
                project: (*project).into(),
                email: (*email).into(),
            })
        }
        ("GET", ["v1", "projects", project, "serviceAccounts", email, "keys"]) => Ok(Route::Keys {
            project: (*project).into(),
            email: (*email).into(),
        }),
        ("POST", ["v1", "projects", project, "serviceAccounts", last]) => {
            if let Some(email) = last.strip_suffix(":getIamPolicy") {
                Ok(Route::GetPolicy {
                    project: (*project).into(),
                    email: email.into(),
                })
            } else if let Some(email) = last.strip_suffix(":setIamPolicy") {
                Ok(Route::SetPolicy {
                    project: (*project).into(),
                    email: email.into(),
                })
            } else {
                Err(unknown())
            }
        }
        ("POST", ["v3", "projects", last]) => last
            .strip_suffix(":getIamPolicy")
            .map(|p| Route::ProjectPolicy { project: p.into() })
            .ok_or_else(unknown),
        _ => Err(unknown()),
    }
}

/// The query parameters, decoded (`+` is a space only in values that are form-encoded; Google
/// clients percent-encode).
fn query(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn error_response(e: &GcpError) -> Response {
    let status = StatusCode::from_u16(e.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        e.body(),
    )
        .into_response()
}

fn json_response(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// A bearer token shaped like a JWT whose payload names its issuer.
fn authorised(headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let parts: Vec<&str> = token.split('.').collect();
    let [_, payload, signature] = parts.as_slice() else {
        return false;
    };
    !signature.is_empty()
        && URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            .is_some_and(|claims| claims.get("iss").and_then(Value::as_str).is_some())
}

/// `enum-encoding=int` in `$alt`: the client wants enums as numbers.
fn int_enums(params: &[(String, String)]) -> bool {
    params
        .iter()
        .any(|(k, v)| k == "$alt" && v.split(';').any(|p| p == "enum-encoding=int"))
}

fn mode_json(mode: &str, ints: bool) -> Value {
    if !ints {
        return json!(mode);
    }
    json!(match mode {
        "GCE_METADATA" => 1,
        "GKE_METADATA" => 2,
        _ => 0,
    })
}

async fn handle(
    Shared(fake): Shared<FakeGcp>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = match route(&method, uri.path()) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    if !fake.anonymous_allowed() && !authorised(&headers) {
        return error_response(&GcpError::new(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ));
    }
    let params = query(&uri);
    let ints = int_enums(&params);
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error_response(&GcpError::invalid(format!(
                    "Invalid JSON payload received. {e}"
                )));
            }
        }
    };
    let op = route.operation();
    let answer = match route {
        Route::Cluster { project, location, name } => fake
            .call(op, |s| s.get_cluster(&project, &location, &name))
            .await
            .map(|c| {
                json!({
                    "name": c.name,
                    "location": c.location,
                    "selfLink": format!("https://container.googleapis.com/v1/projects/{}/locations/{}/clusters/{}", c.project, c.location, c.name),
                    "workloadIdentityConfig": c.workload_pool.map(|p| json!({"workloadPool": p})).unwrap_or(json!({})),
                    "nodePools": c.node_pools.iter().map(|(n, m)| json!({
                        "name": n,
                        "config": {"workloadMetadataConfig": {"mode": mode_json(m, ints)}},
                    })).collect::<Vec<_>>(),
                })
            }),
        Route::NodePool { project, location, cluster, pool, update: false } => fake
            .call(op, |s| s.node_pool(&project, &location, &cluster, &pool))
            .await
            .map(|(name, mode)| {
                json!({
                    "name": name,
                    "version": super::NODE_VERSION,
                    "config": {
                        "imageType": super::IMAGE_TYPE,
                        "workloadMetadataConfig": {"mode": mode_json(&mode, ints)},
                    },
                    "selfLink": format!("https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{cluster}/nodePools/{name}"),
                })
            }),
        Route::NodePool { project, location, cluster, pool, update: true } => {
            let mode = match &body["workloadMetadataConfig"]["mode"] {
                Value::Number(n) if n.as_u64() == Some(2) => "GKE_METADATA",
                Value::Number(n) if n.as_u64() == Some(1) => "GCE_METADATA",
                Value::String(m) if m == "GKE_METADATA" || m == "GCE_METADATA" => {
                    if m == "GKE_METADATA" { "GKE_METADATA" } else { "GCE_METADATA" }
                }
                _ => {
                    return error_response(&GcpError::invalid(
                        "the fake takes node-pool updates of workloadMetadataConfig.mode only".to_owned(),
                    ));
                }
            };
            let version = body["nodeVersion"].as_str().unwrap_or_default().to_owned();
            let image = body["imageType"].as_str().unwrap_or_default().to_owned();
            fake.call(op, |s| {
                s.update_node_pool(&project, &location, &cluster, &pool, &version, &image, mode)
            })
            .await
            .map(|operation| {
                json!({
                    "name": operation,
                    "zone": location,
                    "operationType": if ints { json!(4) } else { json!("UPGRADE_NODES") },
                    "status": if ints { json!(2) } else { json!("RUNNING") },
                    "selfLink": format!("https://container.googleapis.com/v1/projects/{project}/locations/{location}/operations/{operation}"),
                    "targetLink": format!("https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{cluster}/nodePools/{pool}"),
                })
            })
        }
        Route::ServiceAccount { project, email } => fake
            .call(op, |s| s.account_in(&project, &email, op).cloned())
            .await
            .map(|sa| {
                json!({
                    "name": format!("projects/{}/serviceAccounts/{}", sa.project, sa.email),
                    "projectId": sa.project,
                    "uniqueId": sa.unique_id,
                    "email": sa.email,
                    "oauth2ClientId": sa.unique_id,
                    "disabled": sa.disabled,
                })
            }),
        Route::GetPolicy { project, email } => {
            // The version comes as a query parameter (IAM's discovery document) or in the body.
            let version = params
                .iter()
                .find(|(k, _)| k == "options.requestedPolicyVersion")
                .and_then(|(_, v)| v.parse::<i64>().ok())
                .or_else(|| body.pointer("/options/requestedPolicyVersion").and_then(Value::as_i64))
                .unwrap_or(0);
            fake.call(op, |s| {
                s.account_in(&project, &email, op)?;
                s.get_policy(&email, version)
            })
            .await
        }
        Route::SetPolicy { project, email } => {
            fake.call(op, |s| {
                s.account_in(&project, &email, op)?;
                s.set_policy(&email, &body)
            })
            .await
        }
        Route::Keys { project, email } => {
            let wanted: Vec<&str> = params
                .iter()
                .filter(|(k, _)| k == "keyTypes")
                .map(|(_, v)| v.as_str())
                .collect();
            let user = wanted.is_empty() || wanted.iter().any(|t| *t == "USER_MANAGED" || *t == "1");
            let system = wanted.is_empty() || wanted.iter().any(|t| *t == "SYSTEM_MANAGED" || *t == "2");
            fake.call(op, |s| s.account_in(&project, &email, op).cloned()).await.map(|sa| {
                let key = |id: &str, kind: &str, number: i64| {
                    json!({
                        "name": format!("projects/{}/serviceAccounts/{}/keys/{id}", sa.project, sa.email),
                        "keyAlgorithm": if ints { json!(2) } else { json!("KEY_ALG_RSA_2048") },
                        "keyType": if ints { json!(number) } else { json!(kind) },
                        "validAfterTime": "2026-01-01T00:00:00Z",
                        "validBeforeTime": "9999-12-31T23:59:59Z",
                    })
                };
                let mut keys: Vec<Value> = Vec::new();
                if user {
                    keys.extend(sa.user_keys.iter().map(|id| key(id, "USER_MANAGED", 1)));
                }
                if system {
                    // Google always holds system-managed keys; a filter must leave them out.
                    keys.push(key("0123456789abcdef0123456789abcdef01234567", "SYSTEM_MANAGED", 2));
                }
                json!({"keys": keys})
            })
        }
        Route::ProjectPolicy { project } => fake.call(op, |s| Ok(s.project_policy(&project))).await,
    };
    match answer {
        Ok(v) => json_response(&v),
        Err(e) => error_response(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_discovery_paths() {
        let get = Method::GET;
        let post = Method::POST;
        assert!(matches!(
            route(
                &get,
                "/v1/projects/p-123456/locations/us-central1/clusters/prod"
            ),
            Ok(Route::Cluster { .. })
        ));
        assert!(matches!(
            route(&post, "/v1/projects/-/serviceAccounts/a%40p-123456.iam.gserviceaccount.com:getIamPolicy"),
            Ok(Route::GetPolicy { email, .. }) if email == "a@p-123456.iam.gserviceaccount.com"
        ));
        assert!(matches!(
            route(
                &post,
                "/v1/projects/-/serviceAccounts/a@p-123456.iam.gserviceaccount.com:setIamPolicy"
            ),
            Ok(Route::SetPolicy { .. })
        ));
        assert!(matches!(
            route(
                &get,
                "/v1/projects/-/serviceAccounts/a@p-123456.iam.gserviceaccount.com/keys"
            ),
            Ok(Route::Keys { .. })
        ));
        assert!(matches!(
            route(&post, "/v3/projects/p-123456:getIamPolicy"),
            Ok(Route::ProjectPolicy { project }) if project == "p-123456"
        ));
        assert!(route(&post, "/v1/projects/-/serviceAccounts/a:deleteIamPolicy").is_err());
    }

    #[test]
    fn the_clients_enum_encoding_is_read() {
        let uri: Uri = "/x?%24alt=json%3Benum-encoding%3Dint&keyTypes=1"
            .parse()
            .expect("uri");
        let params = query(&uri);
        assert!(int_enums(&params));
        assert!(params.contains(&("keyTypes".into(), "1".into())));
    }
}
