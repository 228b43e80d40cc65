//! Wire tests: the official Google Cloud clients, with google-cloud-auth's real
//! service-account credentials (a throwaway key file), against the fake's HTTP face on
//! 127.0.0.1, configured through the variables a user sets (`with_config` here, the
//! environment itself in a child process).
#![cfg(feature = "fake")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use porter_identity_core::{
    BindChange, Binding, Connection, ErrorKind, GcpServiceAccountEmail, PlanAction, Reconciler,
    RetryPolicy, Severity, UnbindOutcome, Workload, WorkloadIdentityProvider,
};
use porter_identity_gcp::WORKLOAD_IDENTITY_USER;
use porter_identity_gcp::fake::{FakeGcp, FakeServer, serve};
use porter_identity_gcp::{GcpConfigKey, GcpWorkloadIdentityProvider, codes};

const PROJECT: &str = "demo-project-123456";
const POOL: &str = "demo-project-123456.svc.id.goog";

fn email(account: &str) -> String {
    format!("{account}@{PROJECT}.iam.gserviceaccount.com")
}

/// The fake's throwaway key (`fake::SERVICE_ACCOUNT_KEY_JSON`), as the file a user points at.
fn key_file() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/fake-service-account-key.json"
    )
    .to_owned()
}

async fn start() -> (FakeGcp, FakeServer) {
    let gcp = FakeGcp::new();
    gcp.add_gke_cluster(PROJECT, "us-central1", "prod");
    let server = serve(gcp.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("serve the fake");
    (gcp, server)
}

fn retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(Duration::from_millis(2))
        .max_backoff(Duration::from_millis(40))
}

/// A provider configured as a user's CI would be: the three endpoint overrides (with gcloud's
/// trailing `/`) and a service-account key file.
async fn provider_with(server: &FakeServer, retry: RetryPolicy) -> GcpWorkloadIdentityProvider {
    let url = format!("{}/", server.url());
    GcpWorkloadIdentityProvider::builder()
        .gke_cluster(PROJECT, "us-central1", "prod")
        .with_config(GcpConfigKey::IamEndpoint, &url)
        .with_config(GcpConfigKey::ContainerEndpoint, &url)
        .with_config(GcpConfigKey::ResourceManagerEndpoint, &url)
        .with_config(GcpConfigKey::ApplicationCredentials, key_file())
        .retry_policy(retry)
        .build()
        .await
        .expect("provider")
}

async fn provider(server: &FakeServer) -> GcpWorkloadIdentityProvider {
    provider_with(server, retry()).await
}

fn binding(service: &str, account: &str) -> Binding {
    Binding::new(
        Workload::for_service("prod", "shop", service).unwrap(),
        Connection::gcp_service_account(GcpServiceAccountEmail::parse(&email(account)).unwrap()),
    )
}

fn member(ksa: &str) -> String {
    format!("serviceAccount:{POOL}[prod/{ksa}]")
}

#[tokio::test]
async fn bind_verify_rebind_unbind_and_reconcile_over_http() {
    let (gcp, server) = start().await;
    let sa = email("shop-api");
    gcp.add_service_account(&sa)
        .grant(&sa, "roles/iam.serviceAccountUser", "group:ops@example.com")
        .grant_conditional(&sa, WORKLOAD_IDENTITY_USER, &member("batch"), "t", "true")
        .add_audit_config(&sa, "allServices");
    let before = gcp.policy_json(&sa).unwrap();
    let p = provider(&server).await;
    let b = binding("api", "shop-api");
    let shown = format!("{p:?}");
    assert!(
        !shown.contains("PRIVATE KEY") && !shown.contains("private_key"),
        "Debug shows no credential: {shown}"
    );

    assert_eq!(p.plan(&b).await.unwrap().action, PlanAction::Create);
    let created = p.bind(&b).await.unwrap();
    assert_eq!(created.change, BindChange::Created);
    assert_eq!(
        created.service_account_patch.annotations["iam.gke.io/gcp-service-account"],
        sa
    );
    let after = gcp.policy_json(&sa).unwrap();
    assert_eq!(after["version"], 3);
    assert_eq!(after["bindings"][0], before["bindings"][0]);
    assert_eq!(
        after["bindings"][1], before["bindings"][1],
        "conditional binding kept over the wire"
    );
    assert_eq!(after["auditConfigs"], before["auditConfigs"]);
    assert_eq!(gcp.workload_identity_users(&sa), vec![member("shop-api")]);

    gcp.reset_calls();
    assert_eq!(p.bind(&b).await.unwrap().change, BindChange::Unchanged);
    assert_eq!(gcp.write_calls(), 0);
    let report = p.verify(&b).await.unwrap();
    assert!(report.is_healthy(), "{report}");
    assert!(
        !report.has(codes::SERVICE_ACCOUNT_USER_MANAGED_KEYS),
        "the system-managed key is filtered out by keyTypes: {report}"
    );

    let gone = Reconciler::new("shop", "prod")
        .provider(&p)
        .desired_bindings([])
        .previous_bindings([b.clone()])
        .run()
        .await
        .unwrap();
    assert!(gone.is_ok(), "{gone}");
    assert_eq!(gone.removed.len(), 1, "{gone}");
    assert!(gcp.workload_identity_users(&sa).is_empty());
    assert_eq!(p.unbind(&b).await.unwrap(), UnbindOutcome::AlreadyAbsent);
    server.shutdown().await;
}

#[tokio::test]
async fn verify_reads_node_pools_keys_and_project_roles_over_http() {
    let (gcp, server) = start().await;
    let sa = email("shop-api");
    gcp.add_service_account(&sa)
        .add_user_managed_key(&sa, "9a8b7c6d")
        .set_node_pool(PROJECT, "us-central1", "prod", "legacy", "GCE_METADATA")
        .grant_on_project(PROJECT, "roles/owner", &format!("serviceAccount:{sa}"));
    let p = provider(&server).await;
    let b = binding("api", "shop-api");
    p.bind(&b).await.unwrap();
    let report = p.verify(&b).await.unwrap();
    let warnings: BTreeSet<&str> = report
        .of(Severity::Warning)
        .map(|f| f.code.as_str())
        .collect();
    assert_eq!(
        warnings,
        BTreeSet::from([
            codes::NODE_POOL_GCE_METADATA,
            codes::SERVICE_ACCOUNT_USER_MANAGED_KEYS,
            codes::LINT_BROAD_ROLE,
        ]),
        "enums read as numbers, keys filtered, project policy read: {report}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn cloud_errors_over_http_map_to_their_kinds_with_their_fixes() {
    let (gcp, server) = start().await;
    let sa = email("shop-api");
    gcp.add_service_account(&sa);
    let p = provider(&server).await;

    let missing = p.bind(&binding("api", "not-there")).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    assert!(
        missing
            .fix()
            .unwrap()
            .contains("gcloud iam service-accounts create not-there")
    );

    gcp.inject_failures(Some("setIamPolicy"), ErrorKind::PermissionDenied, 1);
    let denied = p.bind(&binding("api", "shop-api")).await.unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::PermissionDenied, "{denied}");
    assert!(
        denied
            .fix()
            .unwrap()
            .contains("roles/iam.serviceAccountAdmin")
    );

    gcp.inject_failures(Some("getIamPolicy"), ErrorKind::Throttled, 2)
        .inject_failures(Some("setIamPolicy"), ErrorKind::Unavailable, 1)
        .interfere_with_writes(1);
    gcp.reset_calls();
    let ok = p.bind(&binding("api", "shop-api")).await.unwrap();
    assert_eq!(ok.change, BindChange::Created);
    // 2 throttled reads, then a read and a 503 write, then a read and a stale write (the
    // interloper), then a read and the write.
    assert_eq!(gcp.calls()["getIamPolicy"], 5, "{:?}", gcp.calls());
    assert_eq!(gcp.calls()["setIamPolicy"], 3, "{:?}", gcp.calls());
    assert_eq!(
        gcp.members(&sa, "roles/iam.serviceAccountTokenCreator")
            .len(),
        1
    );

    let elsewhere = GcpWorkloadIdentityProvider::builder()
        .workload_pool("no-wi-project.svc.id.goog")
        .with_config(GcpConfigKey::IamEndpoint, server.url())
        .with_config(GcpConfigKey::ApplicationCredentials, key_file())
        .retry_policy(retry())
        .build()
        .await
        .unwrap();
    let pool = elsewhere
        .bind(&binding("api", "shop-api"))
        .await
        .unwrap_err();
    assert_eq!(pool.kind(), ErrorKind::InvalidInput, "{pool}");
    assert!(
        pool.to_string().contains("no-wi-project.svc.id.goog"),
        "{pool}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn requests_without_credentials_are_unauthenticated_and_the_fix_says_how() {
    let (gcp, server) = start().await;
    gcp.add_service_account(&email("shop-api"));
    let p = GcpWorkloadIdentityProvider::builder()
        .gke_cluster(PROJECT, "us-central1", "prod")
        .credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .with_config(GcpConfigKey::IamEndpoint, server.url())
        .with_config(GcpConfigKey::ContainerEndpoint, server.url())
        .retry_policy(retry())
        .build()
        .await
        .unwrap();
    let e = p.bind(&binding("api", "shop-api")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(
        e.fix()
            .is_some_and(|f| f.contains("GOOGLE_APPLICATION_CREDENTIALS")),
        "{e}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_endpoint_is_retried_not_waited_on() {
    let (gcp, server) = start().await;
    gcp.add_service_account(&email("shop-api"));
    // Long enough that no call but a stalled one is cut on a loaded machine.
    let p = provider_with(&server, retry().attempt_timeout(Duration::from_secs(3))).await;
    // Every second call stalls for a minute: the attempt timeout cuts it and a retry answers.
    gcp.stall_every(2, Duration::from_secs(60));
    let started = Instant::now();
    p.bind(&binding("api", "shop-api")).await.unwrap();
    // The stalled write may have landed before its answer was cut: the retry's fresh read then
    // finds the member and writes nothing more. Either way the member is there, once.
    assert_eq!(
        gcp.workload_identity_users(&email("shop-api")),
        vec![member("shop-api")]
    );
    // Uncut, one stalled call alone would take a minute: this ceiling only catches that.
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn three_providers_and_a_foreign_writer_lose_nothing_over_http() {
    let (gcp, server) = start().await;
    let sa = email("shared-sa");
    gcp.add_service_account(&sa)
        .grant(&sa, "roles/iam.serviceAccountUser", "group:ops@example.com")
        .set_latency(Duration::from_millis(2));
    let racing = RetryPolicy::default()
        .max_attempts(60)
        .initial_backoff(Duration::from_millis(2))
        .max_backoff(Duration::from_millis(40));
    let mut providers = Vec::new();
    for _ in 0..3 {
        providers.push(provider_with(&server, racing.clone()).await);
    }
    let bindings: Vec<Binding> = (0..50)
        .map(|i| binding(&format!("svc-{i}"), "shared-sa"))
        .collect();
    common::race_on_one_service_account(&gcp, &sa, &providers, &bindings, |b| {
        member(b.workload.service_account().as_str())
    })
    .await;
    server.shutdown().await;
}

const FROM_ENV_CHILD: &str = "PORTER_IDENTITY_GCP_FROM_ENV_CHILD";

/// `from_env` reads the variables a user's CI sets: gcloud's three endpoint overrides and
/// `GOOGLE_APPLICATION_CREDENTIALS`. In a child run of this test, since the environment is per
/// process.
#[tokio::test]
async fn from_env_reads_the_endpoint_overrides_and_the_key_file() {
    if std::env::var_os(FROM_ENV_CHILD).is_some() {
        let p = GcpWorkloadIdentityProvider::builder()
            .gke_cluster(PROJECT, "us-central1", "prod")
            .from_env()
            .await
            .expect("from_env");
        let outcome = p.bind(&binding("api", "shop-api")).await.expect("bind");
        assert_eq!(outcome.change, BindChange::Created);
        let report = p.verify(&binding("api", "shop-api")).await.expect("verify");
        assert!(report.is_healthy(), "{report}");
        return;
    }
    let (gcp, server) = start().await;
    gcp.add_service_account(&email("shop-api"));
    let url = format!("{}/", server.url());
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe);
    child
        .args([
            "--exact",
            "from_env_reads_the_endpoint_overrides_and_the_key_file",
            "--nocapture",
        ])
        .env(FROM_ENV_CHILD, "1")
        .env("CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM", &url)
        .env("CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER", &url)
        .env("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER", &url)
        .env("GOOGLE_APPLICATION_CREDENTIALS", key_file())
        // Nothing may reach the metadata server, an address outside 127.0.0.1.
        .env("GCE_METADATA_HOST", "127.0.0.1:9");
    let out = tokio::task::spawn_blocking(move || child.output())
        .await
        .expect("join")
        .expect("run the child test");
    assert!(
        out.status.success(),
        "child run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        gcp.workload_identity_users(&email("shop-api")),
        vec![member("shop-api")],
        "the child bound through the endpoint variables"
    );
    assert!(
        gcp.calls()["clusters.get"] >= 1,
        "the cluster was read through CONTAINER's override"
    );
    server.shutdown().await;
}

/// The discovery documents this crate carries (`testdata/api-examples/`, see its SOURCES.md).
fn discovery(file: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/api-examples")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Every member of `value` is a property of `schema` in `doc`, recursively through `$ref`s
/// and arrays of them.
fn conforms(doc: &serde_json::Value, schema: &str, value: &serde_json::Value, at: &str) {
    let props = &doc["schemas"][schema]["properties"];
    assert!(
        props.is_object(),
        "{at}: schema {schema} is not in the excerpt"
    );
    for (key, v) in value
        .as_object()
        .unwrap_or_else(|| panic!("{at}: not an object"))
    {
        let prop = &props[key];
        assert!(!prop.is_null(), "{at}.{key}: not a property of {schema}");
        let reference = prop["$ref"].as_str().or(prop["items"]["$ref"].as_str());
        match (reference, v) {
            (Some(r), serde_json::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    conforms(doc, r, item, &format!("{at}.{key}[{i}]"));
                }
            }
            (Some(r), serde_json::Value::Object(_)) => conforms(doc, r, v, &format!("{at}.{key}")),
            _ => {}
        }
    }
}

/// The HTTP face answers with the members of the official schemas: Policy (with bindings,
/// conditions and audit configs), ServiceAccount, Cluster (with node pools).
#[tokio::test]
async fn the_faces_answers_follow_the_discovery_schemas() {
    let (gcp, server) = start().await;
    let sa = email("shop-api");
    gcp.add_service_account(&sa)
        .grant(&sa, "roles/iam.serviceAccountUser", "group:ops@example.com")
        .grant_conditional(&sa, WORKLOAD_IDENTITY_USER, &member("batch"), "t", "true")
        .add_audit_config(&sa, "allServices")
        .set_node_pool(PROJECT, "us-central1", "prod", "legacy", "GCE_METADATA")
        .allow_anonymous(true);
    let iam = discovery("iam-v1-excerpt.json");
    let container = discovery("container-v1-excerpt.json");
    assert_eq!(iam["rootUrl"], "https://iam.googleapis.com/");
    let http = raw_request(
        &server,
        &format!("/v1/projects/{PROJECT}/serviceAccounts/{sa}"),
        "GET",
    )
    .await;
    conforms(&iam, "ServiceAccount", &http, "ServiceAccount");
    let policy = raw_request(
        &server,
        &format!("/v1/projects/{PROJECT}/serviceAccounts/{sa}:getIamPolicy?options.requestedPolicyVersion=3"),
        "POST",
    )
    .await;
    conforms(&iam, "Policy", &policy, "Policy");
    assert!(
        policy["bindings"][1]["condition"]["expression"].is_string(),
        "{policy}"
    );
    let cluster = raw_request(
        &server,
        &format!("/v1/projects/{PROJECT}/locations/us-central1/clusters/prod"),
        "GET",
    )
    .await;
    conforms(&container, "Cluster", &cluster, "Cluster");
    assert_eq!(
        cluster["nodePools"][1]["config"]["workloadMetadataConfig"]["mode"],
        "GCE_METADATA"
    );
    let wildcard = raw_request(
        &server,
        "/v1/projects/-/serviceAccounts/gone@demo-project-123456.iam.gserviceaccount.com",
        "GET",
    )
    .await;
    assert_eq!(
        wildcard["error"]["code"], 403,
        "IAM's wildcard answer for a missing account: {wildcard}"
    );
    server.shutdown().await;
}

/// One HTTP/1.1 request over a plain TCP stream, its JSON body: enough for a test, and no HTTP
/// client crate for the test alone.
async fn raw_request(server: &FakeServer, path: &str, method: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

/// A quota error's `RetryInfo` detail is honoured: the retry waits at least its `retryDelay`
/// (the fake asks for 0.3 s), not only the backoff.
#[tokio::test]
async fn a_quota_errors_retry_delay_is_waited() {
    let (gcp, server) = start().await;
    gcp.add_service_account(&email("shop-api"));
    let p = provider_with(&server, retry().max_backoff(Duration::from_millis(5))).await;
    p.plan(&binding("api", "shop-api")).await.unwrap();
    gcp.inject_failures(Some("getIamPolicy"), ErrorKind::Throttled, 1);
    let started = Instant::now();
    p.plan(&binding("api", "shop-api")).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "waited only {:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

/// A node pool put in GKE_METADATA mode through the official client: its own version and
/// image type read and sent back (the fake refuses any other: they would upgrade or re-image
/// the nodes), refused while the preflight found pods at risk unless forced.
#[tokio::test]
async fn a_node_pool_is_put_in_gke_metadata_mode_with_its_own_version_and_image() {
    let (gcp, server) = start().await;
    gcp.set_node_pool(PROJECT, "us-central1", "prod", "legacy", "GCE_METADATA");
    let p = provider(&server).await;
    assert_eq!(
        p.node_pools_without_gke_metadata().await.unwrap(),
        ["legacy"]
    );

    let at_risk = vec!["pod shop/batch-1 on node n1".to_owned()];
    let refused = p
        .enable_workload_identity("legacy", &at_risk, false)
        .await
        .unwrap_err();
    assert_eq!(
        refused.kind(),
        porter_identity_core::ErrorKind::Conflict,
        "{refused}"
    );
    assert!(refused.to_string().contains("shop/batch-1"), "{refused}");
    assert_eq!(
        gcp.calls().get("nodePools.update").copied().unwrap_or(0),
        0,
        "nothing written"
    );

    let change = p
        .enable_workload_identity("legacy", &at_risk, true)
        .await
        .unwrap();
    assert_eq!(change.operation.as_deref(), Some("operation-1"));
    assert!(
        change.to_string().contains("nodes are recreated"),
        "{change}"
    );
    assert!(
        p.node_pools_without_gke_metadata()
            .await
            .unwrap()
            .is_empty()
    );

    let again = p
        .enable_workload_identity::<String>("legacy", &[], false)
        .await
        .unwrap();
    assert_eq!(
        again.operation, None,
        "already in GKE_METADATA: no second update"
    );
    let missing = p
        .enable_workload_identity::<String>("nope", &[], false)
        .await
        .unwrap_err();
    assert_eq!(
        missing.kind(),
        porter_identity_core::ErrorKind::NotFound,
        "{missing}"
    );
    let bad = p
        .enable_workload_identity::<String>("../x", &[], false)
        .await
        .unwrap_err();
    assert_eq!(
        bad.kind(),
        porter_identity_core::ErrorKind::InvalidInput,
        "{bad}"
    );
    server.shutdown().await;
}
