//! The fake's HTTP face: the EKS REST-JSON operations moto lacks (Pod Identity associations,
//! DescribeAddon, DescribeCluster), served from the same state as the in-memory face, so that
//! the real `aws_sdk_eks::Client` can be tested against it.
//!
//! Paths, members and error statuses follow the botocore EKS model (`2017-11-01`). Requests
//! may be SigV4-signed; signatures are not checked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as Shared};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use percent_encoding::percent_decode_str;
use porter_identity_core::testing::FakeServer;
use serde::Deserialize;
use serde_json::{Value, json};

use super::FakeAws;
use super::error::{AwsError, Code};
use super::state::{AddonRecord, AssociationRecord, ClusterRecord, CreateInput, UpdateInput};
use crate::operation as op;

/// ListPodIdentityAssociations' page size when the request gives no `maxResults`, and its
/// maximum (`ListPodIdentityAssociationsMaxResults`: 1..=100).
const MAX_RESULTS: usize = super::state::PAGE_SIZE;

/// Serves `fake` over HTTP on `addr` (use `127.0.0.1:0` for a free port) until the returned
/// [`FakeServer`] is shut down or dropped. Must be called within a Tokio runtime.
///
/// Routes (EKS REST-JSON): `GET /clusters/{name}` (DescribeCluster),
/// `GET /clusters/{name}/addons/{addonName}` (DescribeAddon),
/// `POST|GET /clusters/{name}/pod-identity-associations` (Create, List with `namespace`,
/// `serviceAccount`, `maxResults`, `nextToken`) and
/// `GET|POST|DELETE /clusters/{name}/pod-identity-associations/{associationId}` (Describe,
/// Update, Delete). Errors carry `x-amzn-errortype` and a `{"message": …}` body.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(fake: FakeAws, addr: SocketAddr) -> std::io::Result<FakeServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = App {
        fake,
        request_ids: Arc::new(AtomicU64::new(1)),
    };
    let router = Router::new()
        .route("/clusters/{name}", get(describe_cluster))
        .route("/clusters/{name}/addons/{addon}", get(describe_addon))
        .route(
            "/clusters/{name}/fargate-profiles",
            get(list_fargate_profiles),
        )
        .route(
            "/clusters/{name}/fargate-profiles/{profile}",
            get(describe_fargate_profile),
        )
        .route(
            "/clusters/{name}/pod-identity-associations",
            get(list_associations).post(create_association),
        )
        .route(
            "/clusters/{name}/pod-identity-associations/{id}",
            get(describe_association)
                .post(update_association)
                .delete(delete_association),
        )
        .fallback(unknown_operation)
        .method_not_allowed_fallback(unknown_operation)
        .with_state(app);
    Ok(FakeServer::spawn(addr, |stop| async move {
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(%error, "fake EKS HTTP server stopped with an error");
        }
    }))
}

#[derive(Clone)]
struct App {
    fake: FakeAws,
    request_ids: Arc<AtomicU64>,
}

impl App {
    /// A request id in AWS's UUID shape, so SDK error metadata has one.
    fn request_id(&self) -> String {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        format!("00000000-0000-4000-8000-{n:012x}")
    }

    fn respond(&self, result: Result<Value, AwsError>) -> Response {
        let request_id = (
            HeaderName::from_static("x-amzn-requestid"),
            self.request_id(),
        );
        match result {
            Ok(body) => (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json".to_owned()),
                    request_id,
                ],
                body.to_string(),
            )
                .into_response(),
            Err(error) => error_response(&error, request_id),
        }
    }
}

fn error_response(error: &AwsError, request_id: (HeaderName, String)) -> Response {
    let status =
        StatusCode::from_u16(error.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                HeaderName::from_static("x-amzn-errortype"),
                error.code.as_str().to_owned(),
            ),
            request_id,
        ],
        json!({ "message": error.message }).to_string(),
    )
        .into_response()
}

async fn unknown_operation(Shared(app): Shared<App>) -> Response {
    let error = AwsError {
        code: Code::ResourceNotFound,
        kind: Code::ResourceNotFound.kind(),
        message: "The fake EKS server does not serve this operation.".to_owned(),
    };
    let mut response = error_response(
        &error,
        (
            HeaderName::from_static("x-amzn-requestid"),
            app.request_id(),
        ),
    );
    if let Ok(value) = "UnknownOperationException".parse() {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-amzn-errortype"), value);
    }
    response
}

// ---- handlers ---------------------------------------------------------------------------

async fn describe_cluster(Shared(app): Shared<App>, Path(name): Path<String>) -> Response {
    let result = app
        .fake
        .call(op::DESCRIBE_CLUSTER, |s| s.describe_cluster(&name))
        .await
        .map(|c| json!({ "cluster": cluster_json(&c) }));
    app.respond(result)
}

async fn describe_addon(
    Shared(app): Shared<App>,
    Path((name, addon)): Path<(String, String)>,
) -> Response {
    let result = app
        .fake
        .call(op::DESCRIBE_ADDON, |s| {
            s.describe_addon(&name, &addon)?.ok_or_else(|| {
                AwsError::not_found(format!("No addon: {addon} found in cluster: {name}"))
            })
        })
        .await
        .map(|a| json!({ "addon": addon_json(&a) }));
    app.respond(result)
}

/// ListFargateProfiles: every profile on one page (`nextToken` never set; the fake's clusters
/// hold a handful).
async fn list_fargate_profiles(Shared(app): Shared<App>, Path(name): Path<String>) -> Response {
    let result = app
        .fake
        .call(op::LIST_FARGATE_PROFILES, |s| {
            s.list_fargate_profiles(&name)
        })
        .await
        .map(|names| json!({ "fargateProfileNames": names }));
    app.respond(result)
}

async fn describe_fargate_profile(
    Shared(app): Shared<App>,
    Path((name, profile)): Path<(String, String)>,
) -> Response {
    let result = app
        .fake
        .call(op::DESCRIBE_FARGATE_PROFILE, |s| {
            s.describe_fargate_profile(&name, &profile)
        })
        .await
        .map(|p| {
            json!({ "fargateProfile": {
                "fargateProfileName": p.name,
                "fargateProfileArn": p.arn,
                "clusterName": p.cluster,
                "createdAt": p.created_at,
                "status": p.status,
                "selectors": p.selectors.iter().map(|(namespace, labels)| json!({
                    "namespace": namespace,
                    "labels": labels,
                })).collect::<Vec<_>>(),
                "subnets": [],
                "tags": {},
            }})
        });
    app.respond(result)
}

/// The body of CreatePodIdentityAssociation; members are optional here so that a missing
/// one is answered like EKS (InvalidParameterException) rather than by the JSON parser.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    namespace: Option<String>,
    service_account: Option<String>,
    role_arn: Option<String>,
    client_request_token: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    disable_session_tags: Option<bool>,
    target_role_arn: Option<String>,
    policy: Option<String>,
}

/// The body of UpdatePodIdentityAssociation.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    role_arn: Option<String>,
    // Accepted and ignored: the update is not recorded by token.
    #[allow(dead_code)]
    client_request_token: Option<String>,
    disable_session_tags: Option<bool>,
    target_role_arn: Option<String>,
    policy: Option<String>,
}

fn parse_body<T: Default + for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AwsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| AwsError::invalid_request(format!("The request body is not valid: {e}")))
}

fn required(member: &str, value: Option<String>) -> Result<String, AwsError> {
    value.ok_or_else(|| {
        AwsError::invalid_parameter(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy \
             constraint: Member must not be null"
        ))
    })
}

async fn create_association(
    Shared(app): Shared<App>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let result = app
        .fake
        .call(op::CREATE_POD_IDENTITY_ASSOCIATION, |s| {
            let body: CreateBody = parse_body(&body)?;
            let input = CreateInput {
                cluster: name,
                namespace: required("namespace", body.namespace)?,
                service_account: required("serviceAccount", body.service_account)?,
                role_arn: required("roleArn", body.role_arn)?,
                client_request_token: body.client_request_token,
                tags: body.tags.unwrap_or_default(),
                disable_session_tags: body.disable_session_tags,
                target_role_arn: body.target_role_arn,
                policy: body.policy,
            };
            s.create_association(input)
        })
        .await
        .map(|a| json!({ "association": association_json(&a) }));
    app.respond(result)
}

async fn describe_association(
    Shared(app): Shared<App>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let result = app
        .fake
        .call(op::DESCRIBE_POD_IDENTITY_ASSOCIATION, |s| {
            s.describe_association(&name, &id)
        })
        .await
        .map(|a| json!({ "association": association_json(&a) }));
    app.respond(result)
}

async fn update_association(
    Shared(app): Shared<App>,
    Path((name, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let result = app
        .fake
        .call(op::UPDATE_POD_IDENTITY_ASSOCIATION, |s| {
            let body: UpdateBody = parse_body(&body)?;
            let input = UpdateInput {
                role_arn: body.role_arn,
                disable_session_tags: body.disable_session_tags,
                target_role_arn: body.target_role_arn,
                policy: body.policy,
            };
            s.update_association(&name, &id, input)
        })
        .await
        .map(|a| json!({ "association": association_json(&a) }));
    app.respond(result)
}

async fn delete_association(
    Shared(app): Shared<App>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let result = app
        .fake
        .call(op::DELETE_POD_IDENTITY_ASSOCIATION, |s| {
            s.delete_association(&name, &id)
        })
        .await
        .map(|a| json!({ "association": association_json(&a) }));
    app.respond(result)
}

async fn list_associations(
    Shared(app): Shared<App>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_query(query.as_deref());
    let param = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let (namespace, service_account, next_token) = (
        param("namespace"),
        param("serviceAccount"),
        param("nextToken"),
    );
    let max_results = param("maxResults");
    let result = app
        .fake
        .call(op::LIST_POD_IDENTITY_ASSOCIATIONS, |s| {
            let max_results = match max_results {
                None => MAX_RESULTS,
                Some(raw) => raw
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_RESULTS).contains(n))
                    .ok_or_else(|| {
                        AwsError::invalid_parameter(format!(
                            "1 validation error detected: Value '{raw}' at 'maxResults' failed \
                             to satisfy constraint: Member must have value between 1 and \
                             {MAX_RESULTS}"
                        ))
                    })?,
            };
            s.list_associations(
                &name,
                namespace.as_deref(),
                service_account.as_deref(),
                max_results,
                next_token.as_deref(),
            )
        })
        .await
        .map(|page| {
            let mut body = json!({
                "associations": page.associations.iter().map(summary_json).collect::<Vec<_>>(),
            });
            if let Some(token) = page.next_token {
                body["nextToken"] = Value::String(token);
            }
            body
        });
    app.respond(result)
}

/// `a=b&c=d`, percent-decoded (and `+` as space, as in forms).
fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    raw.unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

// ---- JSON shapes (member names as in the botocore model) ---------------------------------

fn association_json(a: &AssociationRecord) -> Value {
    let mut v = json!({
        "clusterName": a.cluster,
        "namespace": a.namespace,
        "serviceAccount": a.service_account,
        "roleArn": a.role_arn,
        "associationArn": a.arn,
        "associationId": a.id,
        "tags": a.tags,
        "createdAt": a.created_at,
        "modifiedAt": a.modified_at,
        "disableSessionTags": a.disable_session_tags,
    });
    for (member, value) in [
        ("ownerArn", &a.owner_arn),
        ("targetRoleArn", &a.target_role_arn),
        ("externalId", &a.external_id),
        ("policy", &a.policy),
    ] {
        if let Some(value) = value {
            v[member] = Value::String(value.clone());
        }
    }
    v
}

fn summary_json(a: &AssociationRecord) -> Value {
    let mut v = json!({
        "clusterName": a.cluster,
        "namespace": a.namespace,
        "serviceAccount": a.service_account,
        "associationArn": a.arn,
        "associationId": a.id,
    });
    if let Some(owner) = &a.owner_arn {
        v["ownerArn"] = Value::String(owner.clone());
    }
    v
}

fn addon_json(a: &AddonRecord) -> Value {
    json!({
        "addonName": a.name,
        "clusterName": a.cluster,
        "status": a.status,
        "addonVersion": a.version,
        "health": {
            "issues": a.health_issues.iter().map(|(code, message)| json!({
                "code": code,
                "message": message,
                "resourceIds": [],
            })).collect::<Vec<_>>(),
        },
        "addonArn": a.arn,
        "createdAt": a.created_at,
        "modifiedAt": a.modified_at,
        "tags": {},
    })
}

fn cluster_json(c: &ClusterRecord) -> Value {
    let mut arn = c.arn.split(':');
    let partition = arn.nth(1).unwrap_or("aws");
    let region = arn.nth(1).unwrap_or_default();
    let account = arn.next().unwrap_or_default();
    let hex = c.endpoint_id.to_ascii_lowercase();
    let short = hex.get(..17).unwrap_or(&hex);
    let tail = hex.get(hex.len().saturating_sub(17)..).unwrap_or(&hex);
    json!({
        "name": c.name,
        "arn": c.arn,
        "createdAt": c.created_at,
        "version": "1.32",
        "endpoint": format!("https://{}.gr7.{region}.eks.amazonaws.com", c.endpoint_id),
        "roleArn": format!("arn:{partition}:iam::{account}:role/eks-cluster-role"),
        "resourcesVpcConfig": {
            "subnetIds": [format!("subnet-{short}"), format!("subnet-{tail}")],
            "securityGroupIds": [format!("sg-{short}")],
            "vpcId": format!("vpc-{short}"),
            "endpointPublicAccess": true,
            "endpointPrivateAccess": false,
        },
        "identity": {
            "oidc": {
                "issuer": c.oidc_issuer(),
            },
        },
        "status": c.status,
        // Base64 of a placeholder: no client of the fake talks to the Kubernetes API.
        "certificateAuthority": { "data": "ZmFrZS1jbHVzdGVyLWNh" },
        "platformVersion": "eks.1",
        "tags": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        assert_eq!(
            parse_query(Some("namespace=a%2Fb&maxResults=1&serviceAccount=x+y&flag")),
            vec![
                ("namespace".to_owned(), "a/b".to_owned()),
                ("maxResults".to_owned(), "1".to_owned()),
                ("serviceAccount".to_owned(), "x y".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        assert!(parse_query(None).is_empty());
    }
}
