//! The fake's HTTP face: Azure Resource Manager's REST API for AKS clusters, user-assigned
//! identities, their federated identity credentials, role assignments and role definitions, and
//! an Entra ID token endpoint (`POST /{tenant}/oauth2/v2.0/token`), served from the same state
//! as the in-memory face.
//!
//! Paths, `api-version`s and JSON members follow `testdata/api-examples/`; path parts
//! compare without case, as ARM's do. ARM requests need a bearer token the token endpoint
//! issued or [`FakeAzure::accept_token`] allowed: otherwise 401 `InvalidAuthenticationToken`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use porter_identity_core::testing::FakeServer;
use serde_json::{Value, json};

use super::FakeAzure;
use super::state::{ArmError, ClusterRecord, CredentialRecord, IdentityRecord, PutBody, State};
use crate::arm::{
    AUTHORIZATION_API_VERSION, CONTAINER_SERVICE_API_VERSION, MANAGED_IDENTITY_API_VERSION,
};
use crate::operation as op;

/// Serves `fake` over HTTP on `addr` (use `127.0.0.1:0` for a free port) until the returned
/// [`FakeServer`] is shut down or dropped. Must be called within a Tokio runtime. Its
/// [`url`](FakeServer::url) is both the Resource Manager endpoint
/// (`AZURE_RESOURCE_MANAGER_ENDPOINT`) and the authority host (`AZURE_AUTHORITY_HOST`).
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(fake: FakeAzure, addr: SocketAddr) -> std::io::Result<FakeServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let router = Router::new().fallback(handle).with_state(fake);
    Ok(FakeServer::spawn(addr, |stop| async move {
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(%error, "fake ARM HTTP server stopped with an error");
        }
    }))
}

/// What a request asks for, read from its method and path.
#[derive(Debug)]
enum Route {
    Token,
    Cluster {
        rg: String,
        name: String,
    },
    Identity {
        rg: String,
        name: String,
    },
    Credentials {
        rg: String,
        identity: String,
    },
    Credential {
        rg: String,
        identity: String,
        name: String,
    },
    RoleAssignments,
    RoleDefinition {
        guid: String,
    },
}

impl Route {
    /// The ARM operation id (or `Token`), for counting and errors.
    fn operation(&self, method: &Method) -> &'static str {
        match self {
            Route::Token => "Token",
            Route::Cluster { .. } => op::MANAGED_CLUSTERS_GET.name(),
            Route::Identity { .. } => op::USER_ASSIGNED_IDENTITIES_GET.name(),
            Route::Credentials { .. } => op::FEDERATED_IDENTITY_CREDENTIALS_LIST.name(),
            Route::Credential { .. } if *method == Method::DELETE => {
                op::FEDERATED_IDENTITY_CREDENTIALS_DELETE.name()
            }
            Route::Credential { .. } => op::FEDERATED_IDENTITY_CREDENTIALS_CREATE_OR_UPDATE.name(),
            Route::RoleAssignments => op::ROLE_ASSIGNMENTS_LIST_FOR_SCOPE.name(),
            Route::RoleDefinition { .. } => op::ROLE_DEFINITIONS_GET_BY_ID.name(),
        }
    }

    fn api_version(&self) -> &'static str {
        match self {
            Route::Token => "",
            Route::Cluster { .. } => CONTAINER_SERVICE_API_VERSION,
            Route::Identity { .. } | Route::Credentials { .. } | Route::Credential { .. } => {
                MANAGED_IDENTITY_API_VERSION
            }
            Route::RoleAssignments | Route::RoleDefinition { .. } => AUTHORIZATION_API_VERSION,
        }
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Reads the route of a request; `Err` for a path the fake does not serve.
fn route(method: &Method, segments: &[String], subscription: &str) -> Result<Route, ArmError> {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let unknown = || {
        ArmError::new(
            404,
            "InvalidResourceType",
            format!(
                "The resource type could not be found: the fake ARM does not serve {method} /{}.",
                s.join("/")
            ),
        )
    };
    if s.len() == 4 && eq(s[1], "oauth2") && eq(s[2], "v2.0") && eq(s[3], "token") {
        return if *method == Method::POST {
            Ok(Route::Token)
        } else {
            Err(unknown())
        };
    }
    // A role definition may be addressed without the subscription.
    if s.len() == 4
        && eq(s[0], "providers")
        && eq(s[1], "Microsoft.Authorization")
        && eq(s[2], "roleDefinitions")
    {
        return Ok(Route::RoleDefinition {
            guid: s[3].to_owned(),
        });
    }
    if s.len() < 2 || !eq(s[0], "subscriptions") {
        return Err(unknown());
    }
    if !eq(s[1], subscription) {
        return Err(ArmError::new(
            404,
            "SubscriptionNotFound",
            format!("The subscription '{}' could not be found.", s[1]),
        ));
    }
    let rest = &s[2..];
    match rest {
        [p, ns, t]
            if eq(p, "providers")
                && eq(ns, "Microsoft.Authorization")
                && eq(t, "roleAssignments") =>
        {
            Ok(Route::RoleAssignments)
        }
        [p, ns, t, guid]
            if eq(p, "providers")
                && eq(ns, "Microsoft.Authorization")
                && eq(t, "roleDefinitions") =>
        {
            Ok(Route::RoleDefinition {
                guid: (*guid).to_owned(),
            })
        }
        [rgs, rg, p, ns, t, name] if eq(rgs, "resourceGroups") && eq(p, "providers") => {
            let (rg, name) = ((*rg).to_owned(), (*name).to_owned());
            if eq(ns, "Microsoft.ContainerService") && eq(t, "managedClusters") {
                Ok(Route::Cluster { rg, name })
            } else if eq(ns, "Microsoft.ManagedIdentity") && eq(t, "userAssignedIdentities") {
                Ok(Route::Identity { rg, name })
            } else {
                Err(unknown())
            }
        }
        [rgs, rg, p, ns, t, identity, f]
            if eq(rgs, "resourceGroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.ManagedIdentity")
                && eq(t, "userAssignedIdentities")
                && eq(f, "federatedIdentityCredentials") =>
        {
            Ok(Route::Credentials {
                rg: (*rg).to_owned(),
                identity: (*identity).to_owned(),
            })
        }
        [rgs, rg, p, ns, t, identity, f, name]
            if eq(rgs, "resourceGroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.ManagedIdentity")
                && eq(t, "userAssignedIdentities")
                && eq(f, "federatedIdentityCredentials") =>
        {
            Ok(Route::Credential {
                rg: (*rg).to_owned(),
                identity: (*identity).to_owned(),
                name: (*name).to_owned(),
            })
        }
        _ => Err(unknown()),
    }
}

/// `a=b&c=d`, percent-decoded.
fn query(uri: &Uri) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
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

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(e: &ArmError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        e.body(),
    )
        .into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

async fn handle(
    Shared(fake): Shared<FakeAzure>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let subscription = fake.subscription_id();
    let segments: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let route = match route(&method, &segments, &subscription) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    if let Route::Token = route {
        return token(&fake, &segments[0], &body).await;
    }
    let params = query(&uri);
    let param = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let operation = route.operation(&method);
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| fake.auth().tokens.contains(t));
    if !authorized {
        return error_response(&ArmError::new(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid or missing.",
        ));
    }
    if param("api-version").as_deref() != Some(route.api_version()) {
        return error_response(&ArmError::new(
            400,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{}' is invalid for {operation}; the fake serves '{}'.",
                param("api-version").unwrap_or_default(),
                route.api_version()
            ),
        ));
    }
    let base = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default();
    let result: Result<(StatusCode, Option<Value>), ArmError> = match route {
        Route::Token => unreachable!("answered above"),
        Route::Cluster { rg, name } => fake
            .call(operation, |s, _| s.get_cluster(&rg, &name))
            .await
            .map(|c| (StatusCode::OK, Some(cluster_json(&c)))),
        Route::Identity { rg, name } => fake
            .call(operation, |s, _| s.get_identity(&rg, &name))
            .await
            .map(|i| (StatusCode::OK, Some(identity_json(&i)))),
        Route::Credentials { rg, identity } => {
            let from = param("$skipToken")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            fake.call(operation, |s, _| s.list_credentials(&rg, &identity, from))
                .await
                .map(|page| {
                    let mut body = json!({
                        "value": page.credentials.iter().map(credential_json).collect::<Vec<_>>(),
                    });
                    if let Some(next) = page.next {
                        body["nextLink"] = Value::String(format!(
                            "{base}{}?api-version={MANAGED_IDENTITY_API_VERSION}&$skipToken={next}",
                            uri.path()
                        ));
                    }
                    (StatusCode::OK, Some(body))
                })
        }
        Route::Credential { rg, identity, name } if method == Method::PUT => {
            let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let props = &parsed["properties"];
            let text = |k: &str| props[k].as_str().map(str::to_owned);
            let audiences = props["audiences"].as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            });
            let put = PutBody {
                issuer: text("issuer"),
                subject: text("subject"),
                audiences,
            };
            fake.call(operation, |s, window| {
                s.put_credential(&rg, &identity, &name, put, window)
            })
            .await
            .map(|(c, created)| {
                let status = if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                (status, Some(credential_json(&c)))
            })
        }
        Route::Credential { rg, identity, name } if method == Method::DELETE => fake
            .call(operation, |s, window| {
                s.delete_credential(&rg, &identity, &name, window)
            })
            .await
            .map(|existed| {
                let status = if existed {
                    StatusCode::OK
                } else {
                    StatusCode::NO_CONTENT
                };
                (status, None)
            }),
        Route::Credential { .. } => Err(ArmError::new(
            405,
            "MethodNotAllowed",
            format!("The fake ARM serves PUT and DELETE on a credential, not {method}."),
        )),
        Route::RoleAssignments => {
            let filter = param("$filter").unwrap_or_default();
            let principal = filter
                .strip_prefix("assignedTo('")
                .and_then(|f| f.strip_suffix("')"))
                .map(str::to_owned);
            match principal {
                None => Err(ArmError::bad_request(format!(
                    "The fake ARM lists role assignments with $filter=assignedTo('<principal>') only, not {filter:?}."
                ))),
                Some(principal) => fake
                    .call(operation, |s, _| Ok(s.role_assignments_of(&principal)))
                    .await
                    .map(|list| {
                        let value: Vec<Value> = list
                            .iter()
                            .map(|a| {
                                json!({
                                    "properties": {
                                        "roleDefinitionId": a.role_definition_id,
                                        "principalId": a.principal_id,
                                        "principalType": "ServicePrincipal",
                                        "scope": a.scope,
                                    },
                                    "id": a.id,
                                    "type": "Microsoft.Authorization/roleAssignments",
                                    "name": a.name,
                                })
                            })
                            .collect();
                        (StatusCode::OK, Some(json!({ "value": value })))
                    }),
            }
        }
        Route::RoleDefinition { guid } => fake
            .call(operation, |s, _| s.role_definition(&guid))
            .await
            .map(|d| {
                (
                    StatusCode::OK,
                    Some(json!({
                        "properties": {
                            "roleName": d.role_name,
                            "type": "BuiltInRole",
                            "description": format!("{} (fake)", d.role_name),
                            "assignableScopes": ["/"],
                            "permissions": [permissions(&d.role_name)],
                        },
                        "id": d.id,
                        "type": "Microsoft.Authorization/roleDefinitions",
                        "name": d.name,
                    })),
                )
            }),
    };
    match result {
        Ok((status, Some(body))) => json_response(status, &body),
        Ok((status, None)) => status.into_response(),
        Err(e) => error_response(&e),
    }
}

/// The token endpoint: client credentials with a secret or an assertion.
async fn token(fake: &FakeAzure, tenant: &str, body: &[u8]) -> Response {
    let form: Vec<(String, String)> = String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect();
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let counted = fake.call("Token", |_: &mut State, _| Ok(())).await;
    if let Err(e) = counted {
        return error_response(&e);
    }
    let entra_error = |status: StatusCode, code: i32, description: &str| {
        json_response(
            status,
            &json!({
                "error": "invalid_client",
                "error_description": description,
                "error_codes": [code],
            }),
        )
    };
    if tenant != fake.tenant_id() {
        return entra_error(
            StatusCode::BAD_REQUEST,
            90002,
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        );
    }
    let client_id = field("client_id").unwrap_or_default();
    let ok = {
        let auth = fake.auth();
        match (field("client_secret"), field("client_assertion")) {
            (Some(secret), _) => auth
                .client_secrets
                .get(client_id)
                .is_some_and(|s| s == secret),
            (None, Some(assertion)) => {
                !assertion.is_empty() && auth.federated_clients.contains(client_id)
            }
            (None, None) => false,
        }
    };
    if !ok {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            7_000_215,
            "AADSTS7000215: Invalid client secret or assertion provided.",
        );
    }
    let token = {
        let mut auth = fake.auth();
        auth.issued += 1;
        let token = format!("fake-arm-token-{}", auth.issued);
        auth.tokens.insert(token.clone());
        token
    };
    json_response(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token,
        }),
    )
}

// ---- JSON shapes (members as in testdata/api-examples) --------------------------------

fn cluster_json(c: &ClusterRecord) -> Value {
    let mut oidc = json!({ "enabled": c.oidc_issuer_enabled });
    if c.oidc_issuer_enabled {
        oidc["issuerURL"] = Value::String(c.issuer_url.clone());
    }
    json!({
        "id": c.id,
        "location": c.location,
        "name": c.name,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "properties": {
            "provisioningState": "Succeeded",
            "kubernetesVersion": "1.32.0",
            "dnsPrefix": format!("{}-dns", c.name),
            "oidcIssuerProfile": oidc,
            "securityProfile": {
                "workloadIdentity": { "enabled": c.workload_identity_enabled },
            },
        },
    })
}

fn identity_json(i: &IdentityRecord) -> Value {
    json!({
        "name": i.name,
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
        "id": i.id,
        "location": i.location,
        "properties": {
            "clientId": i.client_id,
            "isolationScope": "None",
            "principalId": i.principal_id,
            "tenantId": i.tenant_id,
        },
        "tags": {},
    })
}

fn credential_json(c: &CredentialRecord) -> Value {
    json!({
        "name": c.name,
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
        "id": c.id,
        "properties": {
            "audiences": c.audiences,
            "issuer": c.issuer,
            "subject": c.subject,
        },
    })
}

/// What a built-in role grants, as ARM serves it (`permissions[0]`): abridged from Azure's
/// built-in roles reference (Contributor's `notActions` list there is longer); a role the fake
/// was given by hand grants nothing. The provider reads only role names; this is for the face's
/// shape, which the official examples' members are checked against.
fn permissions(role_name: &str) -> Value {
    let (actions, not_actions, data_actions): (&[&str], &[&str], &[&str]) = match role_name {
        "Owner" => (&["*"], &[], &[]),
        "Contributor" => (
            &["*"],
            &[
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
            ],
            &[],
        ),
        "User Access Administrator" => (
            &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
            &[],
            &[],
        ),
        "Reader" => (&["*/read"], &[], &[]),
        "Storage Blob Data Reader" => (
            &[
                "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
            ],
            &[],
            &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
        ),
        _ => (&[], &[], &[]),
    };
    json!({
        "actions": actions,
        "notActions": not_actions,
        "dataActions": data_actions,
        "notDataActions": [],
    })
}
