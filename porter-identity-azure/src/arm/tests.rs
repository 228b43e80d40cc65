//! The ARM client: the official example payloads read with its types, its error mapping, its
//! URLs, and the real client against small local servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode as HttpStatus, Uri};
use axum::response::IntoResponse;

use super::*;
use crate::credential::StaticTokenCredential;

const SUBSCRIPTION: &str = "c267c0e7-0a73-4789-9e17-d26aeb0904e5";
const TOKEN: &str = "test-bearer-token-Zm9vYmFy";

fn examples_dir() -> PathBuf {
    // The azure-rest-api-specs examples this crate carries (testdata/api-examples/SOURCES.md).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/api-examples");
    assert!(
        dir.is_dir(),
        "the official Azure API examples are missing: expected {}. These tests check the client against them and cannot run without.",
        dir.display()
    );
    dir
}

fn example(name: &str) -> Value {
    let text = std::fs::read_to_string(examples_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn body(example: &Value, status: &str) -> Value {
    example["responses"][status]["body"].clone()
}

#[test]
fn every_official_response_is_read_by_the_clients_types() {
    // Federated identity credentials: create (200, 201), get, list.
    let create = example("FederatedIdentityCredentialCreate.json");
    for status in ["200", "201"] {
        let c: FederatedCredential =
            serde_json::from_value::<WireCredential>(body(&create, status))
                .unwrap()
                .into();
        assert_eq!(c.name, "ficResourceName");
        assert_eq!(
            c.issuer,
            "https://oidc.prod-aks.azure.com/TenantGUID/IssuerGUID"
        );
        assert_eq!(c.subject, "system:serviceaccount:ns:svcaccount");
        assert_eq!(c.audiences, ["api://AzureADTokenExchange"]);
    }
    let get: FederatedCredential = serde_json::from_value::<WireCredential>(body(
        &example("FederatedIdentityCredentialGet.json"),
        "200",
    ))
    .unwrap()
    .into();
    assert!(
        get.id
            .ends_with("/federatedIdentityCredentials/ficResourceName")
    );
    let list: WireList<WireCredential> = serde_json::from_value(body(
        &example("FederatedIdentityCredentialList.json"),
        "200",
    ))
    .unwrap();
    assert_eq!(list.value.len(), 1);
    assert!(list.next_link.as_deref().unwrap().contains("$skipToken="));
    // Delete answers 200 and 204 without bodies.
    let delete = example("FederatedIdentityCredentialDelete.json");
    assert!(delete["responses"]["200"].get("body").is_none());
    assert!(delete["responses"]["204"].get("body").is_none());

    let identity: Identity =
        serde_json::from_value::<WireIdentity>(body(&example("IdentityGet.json"), "200"))
            .unwrap()
            .into();
    assert_eq!(identity.client_id, "4024ab25-56a8-4370-aea6-6389221caf29");
    assert_eq!(
        identity.principal_id,
        "25cc773c-7f05-40fc-a104-32d2300754ad"
    );
    assert_eq!(identity.tenant_id, "b6c948ef-f6b5-4384-8354-da3a15eca969");

    // AKS: the plain Get has neither an OIDC issuer nor workload identity; the security
    // profile example has workload identity on.
    let plain: ManagedCluster =
        serde_json::from_value::<WireCluster>(body(&example("ManagedClustersGet.json"), "200"))
            .unwrap()
            .into();
    assert_eq!(plain.name, "clustername1");
    assert!(!plain.oidc_issuer_enabled && plain.issuer_url.is_none());
    assert!(!plain.workload_identity_enabled);
    let secured = example("ManagedClustersCreate_SecurityProfile.json");
    for status in ["200", "201"] {
        let c: ManagedCluster = serde_json::from_value::<WireCluster>(body(&secured, status))
            .unwrap()
            .into();
        assert!(c.workload_identity_enabled, "{status}");
    }

    let assignments: WireList<WireRoleAssignment> =
        serde_json::from_value(body(&example("RoleAssignments_ListForScope.json"), "200")).unwrap();
    let a: RoleAssignment = assignments.value.into_iter().next().unwrap().into();
    assert_eq!(
        a.scope,
        "/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2"
    );
    assert!(
        a.role_definition_id
            .ends_with("0b5fe924-9a61-425c-96af-cfe6e287ca2d")
    );
    let created = example("RoleAssignments_CreateForSubscription.json");
    for status in ["200", "201"] {
        let a: RoleAssignment =
            serde_json::from_value::<WireRoleAssignment>(body(&created, status))
                .unwrap()
                .into();
        assert_eq!(a.principal_id, "ce2ce14e-85d7-4629-bdbc-454d0519d987");
    }
    let definition: RoleDefinition = serde_json::from_value::<WireRoleDefinition>(body(
        &example("GetRoleDefinitionById.json"),
        "200",
    ))
    .unwrap()
    .into();
    assert_eq!(definition.role_name, "Role name");
}

#[test]
fn the_api_versions_are_those_of_the_examples() {
    for (file, version) in [
        (
            "FederatedIdentityCredentialCreate.json",
            MANAGED_IDENTITY_API_VERSION,
        ),
        (
            "FederatedIdentityCredentialList.json",
            MANAGED_IDENTITY_API_VERSION,
        ),
        ("IdentityGet.json", MANAGED_IDENTITY_API_VERSION),
        ("ManagedClustersGet.json", CONTAINER_SERVICE_API_VERSION),
        (
            "RoleAssignments_ListForScope.json",
            AUTHORIZATION_API_VERSION,
        ),
        ("GetRoleDefinitionById.json", AUTHORIZATION_API_VERSION),
    ] {
        assert_eq!(
            example(file)["parameters"]["api-version"],
            version,
            "{file}"
        );
    }
}

fn error_body(code: &str, message: &str) -> Vec<u8> {
    serde_json::json!({"error": {"code": code, "message": message}})
        .to_string()
        .into_bytes()
}

#[test]
fn arm_errors_map_by_code_then_status() {
    let cases: &[(u16, &str, &str, ErrorKind)] = &[
        (
            409,
            CONCURRENT_WRITES_CODE,
            "Too many Federated Identity Credentials are written concurrently",
            ErrorKind::Conflict,
        ),
        (
            400,
            "BadRequest",
            "Issuer and subject combination already exists for this Managed Identity.",
            ErrorKind::AlreadyExists,
        ),
        (
            400,
            "BadRequest",
            "The maximum number of federated identity credentials (20) for this managed identity has been reached.",
            ErrorKind::LimitExceeded,
        ),
        (
            400,
            "BadRequest",
            "Federated Identity Credential must specify 'issuer', 'subject' and 'audience'.",
            ErrorKind::InvalidInput,
        ),
        (
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
            ErrorKind::Unauthenticated,
        ),
        (401, "", "", ErrorKind::Unauthenticated),
        (
            403,
            "AuthorizationFailed",
            "The client does not have authorization",
            ErrorKind::PermissionDenied,
        ),
        (
            404,
            "ResourceNotFound",
            "The Resource was not found.",
            ErrorKind::NotFound,
        ),
        (
            404,
            "ResourceGroupNotFound",
            "Resource group 'x' could not be found.",
            ErrorKind::NotFound,
        ),
        (
            409,
            "Conflict",
            "Another operation is in progress.",
            ErrorKind::Conflict,
        ),
        (
            429,
            "TooManyRequests",
            "Rate limit exceeded.",
            ErrorKind::Throttled,
        ),
        (500, "InternalServerError", "boom", ErrorKind::Unavailable),
        (503, "", "", ErrorKind::Unavailable),
    ];
    for (status, code, message, kind) in cases {
        let e = map_arm_error(
            "FederatedIdentityCredentials_CreateOrUpdate",
            *status,
            None,
            &error_body(code, message),
        );
        assert_eq!(e.kind(), *kind, "{status} {code}: {e}");
        assert_eq!(e.cloud_name(), Some(Cloud::Azure));
    }
    let concurrent = map_arm_error(
        "FederatedIdentityCredentials_CreateOrUpdate",
        409,
        None,
        &error_body(CONCURRENT_WRITES_CODE, "x"),
    );
    assert!(
        concurrent.is_retryable(),
        "another process's write: retried"
    );
    let plain = map_arm_error(
        "FederatedIdentityCredentials_CreateOrUpdate",
        409,
        None,
        &error_body("Conflict", "x"),
    );
    assert!(!plain.is_retryable());
    let denied = map_arm_error(
        "FederatedIdentityCredentials_CreateOrUpdate",
        403,
        None,
        &error_body("AuthorizationFailed", "no"),
    );
    assert!(
        denied.fix().unwrap().contains(
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write"
        ),
        "{denied}"
    );
    let throttled = map_arm_error(
        "UserAssignedIdentities_Get",
        429,
        Some(Duration::from_secs(7)),
        b"",
    );
    assert_eq!(throttled.retry_after(), Some(Duration::from_secs(7)));
    // A proxy's HTML page: the status decides, the text is kept short.
    let proxy = map_arm_error(
        "UserAssignedIdentities_Get",
        502,
        None,
        "<html>".repeat(500).as_bytes(),
    );
    assert_eq!(proxy.kind(), ErrorKind::Unavailable);
    assert!(proxy.to_string().len() < 400, "{proxy}");
}

fn client(endpoint: &str) -> ArmClient {
    ArmClient::new(
        endpoint,
        SUBSCRIPTION,
        Arc::new(StaticTokenCredential::new(TOKEN)),
        ArmClientOptions::default(),
    )
    .unwrap()
}

#[test]
fn urls_are_built_segment_by_segment() {
    let arm = client("https://management.azure.com");
    let url = arm.resource_url(
        "rg with space",
        &[
            "Microsoft.ManagedIdentity",
            "userAssignedIdentities",
            "id/../x?y#z",
        ],
        MANAGED_IDENTITY_API_VERSION,
    );
    assert_eq!(
        url.as_str(),
        "https://management.azure.com/subscriptions/c267c0e7-0a73-4789-9e17-d26aeb0904e5/resourceGroups/rg%20with%20space/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id%2F..%2Fx%3Fy%23z?api-version=2024-11-30"
    );
    // A sovereign cloud's endpoint with a trailing slash.
    let arm = client("https://management.usgovcloudapi.net/");
    let url = arm.url(&["subscriptions", SUBSCRIPTION], AUTHORIZATION_API_VERSION);
    assert!(
        url.as_str()
            .starts_with("https://management.usgovcloudapi.net/subscriptions/"),
        "{url}"
    );
}

#[test]
fn endpoints_are_https_or_loopback() {
    assert!(check_endpoint("https://management.azure.com").is_ok());
    assert!(check_endpoint("http://127.0.0.1:8080").is_ok());
    assert!(check_endpoint("http://localhost:8080/").is_ok());
    assert!(check_endpoint("http://[::1]:8080").is_ok());
    for bad in [
        "http://management.azure.com",
        "ftp://x",
        "not a url",
        "https://x/?a=b",
    ] {
        let e = check_endpoint(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
        assert!(e.to_string().contains("endpoint"), "{e}");
    }
    let e = ArmClient::new(
        "https://management.azure.com",
        "not-a-guid",
        Arc::new(StaticTokenCredential::new("t")),
        ArmClientOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("subscription"), "{e}");
}

#[test]
fn a_next_link_to_another_host_is_refused() {
    let arm = client("https://management.azure.com");
    assert!(
        arm.next_url(
            "List",
            "https://management.azure.com/subscriptions/x?$skipToken=1"
        )
        .is_ok()
    );
    for foreign in [
        "https://evil.example/subscriptions/x",
        "http://management.azure.com/subscriptions/x",
        "https://management.azure.com:8443/subscriptions/x",
    ] {
        let e = arm.next_url("List", foreign).unwrap_err();
        assert!(e.to_string().contains("not followed"), "{foreign}: {e}");
    }
}

#[test]
fn role_definition_ids_are_checked() {
    assert!(role_definition_segments("/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635").is_ok());
    assert!(
        role_definition_segments(&format!(
            "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/abc"
        ))
        .is_ok()
    );
    for bad in [
        "",
        "roleDefinitions/x",
        "/providers/Microsoft.Compute/virtualMachines/x",
        "/a/b/providers/Microsoft.Authorization/roleDefinitions/x",
        "/providers/Microsoft.Authorization/roleDefinitions/x?y",
    ] {
        assert!(role_definition_segments(bad).is_err(), "{bad}");
    }
}

#[test]
fn debug_shows_no_token() {
    let arm = client("https://management.azure.com");
    let shown = format!("{arm:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains(SUBSCRIPTION));
}

// ---- the real client against a local server ---------------------------------------------

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    authorization: Option<String>,
    body: String,
}

type Answerer = Arc<dyn Fn(&Seen) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync>;

async fn serve(answer: Answerer) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let app = Router::new().fallback(
        move |method: HttpMethod, uri: Uri, headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            let answer = answer.clone();
            async move {
                let s = Seen {
                    method: method.to_string(),
                    uri: uri.to_string(),
                    authorization: headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let (status, headers, body) = answer(&s);
                log.lock().unwrap().push(s);
                let mut response = (HttpStatus::from_u16(status).unwrap(), body).into_response();
                for (k, v) in headers {
                    response.headers_mut().insert(k, v.parse().unwrap());
                }
                response
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn json(status: u16, body: &str) -> (u16, Vec<(&'static str, String)>, String) {
    (
        status,
        vec![("content-type", "application/json".to_owned())],
        body.to_owned(),
    )
}

#[tokio::test]
async fn put_sends_the_bearer_token_and_the_body_and_reads_the_answer() {
    let (url, seen) = serve(Arc::new(|s: &Seen| {
        let body: Value = serde_json::from_str(&s.body).unwrap_or_default();
        json(
            201,
            &serde_json::json!({
                "name": "pi_shop_api_0123456789ab",
                "id": "/subscriptions/x/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id/federatedIdentityCredentials/pi_shop_api_0123456789ab",
                "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
                "properties": body["properties"],
            })
            .to_string(),
        )
    }))
    .await;
    let spec = CredentialSpec {
        issuer: "https://oidc.example/".into(),
        subject: "system:serviceaccount:prod:shop-api".into(),
        audiences: vec!["api://AzureADTokenExchange".into()],
    };
    let made = client(&url)
        .put_federated_credential("rg", "id", "pi_shop_api_0123456789ab", &spec)
        .await
        .unwrap();
    assert_eq!(made.subject, spec.subject);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(
        seen[0].uri,
        format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id/federatedIdentityCredentials/pi_shop_api_0123456789ab?api-version=2024-11-30"
        )
    );
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let sent: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        sent["properties"]["audiences"][0],
        "api://AzureADTokenExchange"
    );
}

#[tokio::test]
async fn delete_tells_deleted_from_absent() {
    let (url, _) = serve(Arc::new(|s: &Seen| {
        if s.uri.contains("/gone?") {
            (204, vec![], String::new())
        } else {
            (200, vec![], String::new())
        }
    }))
    .await;
    let arm = client(&url);
    assert!(
        arm.delete_federated_credential("rg", "id", "here")
            .await
            .unwrap()
    );
    assert!(
        !arm.delete_federated_credential("rg", "id", "gone")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn list_follows_a_next_link_of_its_own_host_only() {
    let (url, seen) = serve(Arc::new(|s: &Seen| {
        if s.uri.contains("skipToken") {
            json(200, r#"{"value":[]}"#)
        } else {
            json(200, r#"{"value":[{"name":"a","id":"x","properties":{"issuer":"i","subject":"s","audiences":["api://AzureADTokenExchange"]}}],"nextLink":"NEXT"}"#)
        }
    }))
    .await;
    let arm = client(&url);
    let first = arm
        .list_federated_credentials("rg", "id", None)
        .await
        .unwrap();
    assert_eq!(first.credentials.len(), 1);
    assert_eq!(first.next_link.as_deref(), Some("NEXT"));
    let own = format!("{url}/subscriptions/{SUBSCRIPTION}/x?api-version=2024-11-30&$skipToken=2");
    let second = arm
        .list_federated_credentials("rg", "id", Some(own))
        .await
        .unwrap();
    assert!(second.credentials.is_empty() && second.next_link.is_none());
    let foreign = "http://127.0.0.2:9/steal?$skipToken=2".to_owned();
    assert!(
        arm.list_federated_credentials("rg", "id", Some(foreign))
            .await
            .is_err()
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the foreign link was never requested"
    );
}

#[tokio::test]
async fn throttling_carries_retry_after_and_a_closed_port_is_unavailable() {
    let (url, _) = serve(Arc::new(|_: &Seen| {
        (
            429,
            vec![
                ("retry-after", "3".to_owned()),
                ("content-type", "application/json".to_owned()),
            ],
            r#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#.to_owned(),
        )
    }))
    .await;
    let e = client(&url).get_identity("rg", "id").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = client(&format!("http://127.0.0.1:{port}"))
        .get_identity("rg", "id")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
    assert!(!format!("{e:?}").contains(TOKEN));
}

#[tokio::test]
async fn https_goes_through_the_clients_own_tls() {
    // rustls on ring with the platform's roots: a closed https port is a connection error, not
    // a missing crypto provider.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = client(&format!("https://127.0.0.1:{port}"))
        .get_identity("rg", "id")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
}

#[tokio::test]
async fn role_assignments_are_listed_for_the_principal() {
    let (url, seen) = serve(Arc::new(|_: &Seen| {
        json(
            200,
            &body(&example("RoleAssignments_ListForScope.json"), "200").to_string(),
        )
    }))
    .await;
    let page = client(&url)
        .list_role_assignments("ce2ce14e-85d7-4629-bdbc-454d0519d987", None)
        .await
        .unwrap();
    assert_eq!(page.assignments.len(), 1);
    let uri = seen.lock().unwrap()[0].uri.clone();
    assert!(
        uri.contains("/providers/Microsoft.Authorization/roleAssignments?"),
        "{uri}"
    );
    assert!(
        uri.contains("%24filter=assignedTo%28%27ce2ce14e-85d7-4629-bdbc-454d0519d987%27%29"),
        "{uri}"
    );
}
