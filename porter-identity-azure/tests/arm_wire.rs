//! Wire tests: the real ARM client, and the real `azure_identity` credential path (token
//! endpoint included), against the fake's HTTP face on 127.0.0.1, configured through the
//! variables a user sets (`with_config` here, the environment itself in a child process), and
//! the face's JSON against the official examples in `testdata/api-examples/`.
#![cfg(feature = "fake")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use porter_identity_azure::fake::{FakeAzure, FakeServer, LoopbackHttpsAsHttp, serve};
use porter_identity_azure::{AzureConfigKey, AzureWorkloadIdentityProvider};
use porter_identity_core::{
    AzureIdentityName, AzureResourceGroup, BindChange, Binding, Connection, ErrorKind, Reconciler,
    RetryPolicy, UnbindOutcome, Workload, WorkloadIdentityProvider,
};
use serde_json::Value;

const RG: &str = "rg";
const ISSUER: &str = "https://eastus.oic.prod-aks.azure.com/tenant/prod/";
const TOKEN: &str = "emulator-token-3f9a";
const CLIENT_ID: &str = "6f1c0b2e-porter-ci";
const CLIENT_SECRET: &str = "ci-client-secret-Zq7";

async fn start() -> (FakeAzure, FakeServer) {
    let azure = FakeAzure::new();
    azure.add_aks_cluster("aks-rg", "prod", ISSUER);
    azure.accept_token(TOKEN);
    azure.add_client_secret(CLIENT_ID, CLIENT_SECRET);
    let server = serve(azure.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("serve the fake ARM");
    (azure, server)
}

fn retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(Duration::from_millis(2))
        .max_backoff(Duration::from_millis(40))
}

/// A provider configured as a user's CI would be: subscription, ARM endpoint and a static
/// token for the emulator.
async fn provider(azure: &FakeAzure, server: &FakeServer) -> AzureWorkloadIdentityProvider {
    provider_with(azure, server, retry()).await
}

async fn provider_with(
    azure: &FakeAzure,
    server: &FakeServer,
    retry: RetryPolicy,
) -> AzureWorkloadIdentityProvider {
    AzureWorkloadIdentityProvider::builder()
        .aks_cluster("aks-rg", "prod")
        .with_config(AzureConfigKey::SubscriptionId, azure.subscription_id())
        .with_config(AzureConfigKey::ResourceManagerEndpoint, server.url())
        .with_config(AzureConfigKey::AccessToken, TOKEN)
        .retry_policy(retry)
        .build()
        .await
        .expect("provider")
}

fn binding(app: &str, service: &str, identity: &str) -> Binding {
    Binding::new(
        Workload::for_service("prod", app, service).unwrap(),
        Connection::azure_managed_identity(
            AzureIdentityName::parse(identity).unwrap(),
            AzureResourceGroup::parse(RG).unwrap(),
        ),
    )
}

#[tokio::test]
async fn bind_verify_rebind_unbind_and_reconcile_over_http() {
    let (azure, server) = start().await;
    let identity = azure.add_identity(RG, "shop-api");
    let p = provider(&azure, &server).await;
    let b = binding("shop", "api", "shop-api");
    let created = p.bind(&b).await.unwrap();
    assert_eq!(created.change, BindChange::Created);
    assert_eq!(
        created.service_account_patch.annotations["azure.workload.identity/client-id"],
        identity.client_id
    );
    let held = azure.credentials(RG, "shop-api");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].subject, "system:serviceaccount:prod:shop-api");

    azure.reset_calls();
    assert_eq!(p.bind(&b).await.unwrap().change, BindChange::Unchanged);
    assert_eq!(azure.write_calls(), 0);
    let report = p.verify(&b).await.unwrap();
    assert!(report.is_healthy(), "{report}");

    // A deploy without the service: its credential, named for the app, is removed.
    let gone = Reconciler::new("shop", "prod")
        .provider(&p)
        .desired_bindings([])
        .previous_bindings([b.clone()])
        .run()
        .await
        .unwrap();
    assert!(gone.is_ok(), "{gone}");
    assert_eq!(gone.removed.len(), 1, "{gone}");
    assert!(azure.credentials(RG, "shop-api").is_empty());
    assert_eq!(p.unbind(&b).await.unwrap(), UnbindOutcome::AlreadyAbsent);
    server.shutdown().await;
}

#[tokio::test]
async fn the_client_secret_credential_gets_its_token_from_the_token_endpoint() {
    let (azure, server) = start().await;
    azure.add_identity(RG, "shop-api");
    let port = server.addr().port();
    let build = |secret: &str| {
        AzureWorkloadIdentityProvider::builder()
            .aks_cluster("aks-rg", "prod")
            .with_config(AzureConfigKey::SubscriptionId, azure.subscription_id())
            .with_config(AzureConfigKey::ResourceManagerEndpoint, server.url())
            // azure_identity refuses a plain-http authority: the test transport sends this
            // https URL of 127.0.0.1 as http.
            .with_config(
                AzureConfigKey::AuthorityHost,
                format!("https://127.0.0.1:{port}"),
            )
            .with_config(AzureConfigKey::TenantId, azure.tenant_id())
            .with_config(AzureConfigKey::ClientId, CLIENT_ID)
            .with_config(AzureConfigKey::ClientSecret, secret)
            .token_http_client(LoopbackHttpsAsHttp::shared())
            .retry_policy(retry())
            .build()
    };
    let p = build(CLIENT_SECRET).await.expect("provider");
    let b = binding("shop", "api", "shop-api");
    assert_eq!(p.bind(&b).await.unwrap().change, BindChange::Created);
    assert_eq!(p.bind(&b).await.unwrap().change, BindChange::Unchanged);
    // azure_identity caches the token: one token request served every ARM call.
    assert_eq!(azure.call_count("Token"), 1, "{:?}", azure.calls());

    let wrong = build("not-the-secret").await.expect("provider");
    let err = wrong
        .bind(&binding("shop", "worker", "shop-api"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.fix().unwrap().contains("AZURE_CLIENT_SECRET"), "{err}");
    for shown in [err.to_string(), format!("{err:?}"), format!("{wrong:?}")] {
        assert!(
            !shown.contains("not-the-secret") && !shown.contains(CLIENT_SECRET),
            "{shown}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_workload_identity_credential_exchanges_the_projected_token() {
    // Deploy tooling running in a pod: the webhook sets AZURE_FEDERATED_TOKEN_FILE, and the
    // credential exchanges the projected service-account token for an ARM token.
    const POD_CLIENT_ID: &str = "0d7f1e52-deployer-pod";
    let (azure, server) = start().await;
    azure.add_identity(RG, "shop-api");
    azure.add_federated_client(POD_CLIENT_ID);
    let dir = std::env::temp_dir().join(format!(
        "porter-identity-wi-{}-{}",
        std::process::id(),
        server.addr().port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("azure-identity-token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.projected-sa-token.sig").unwrap();
    let build_with = |file: &std::path::Path| {
        AzureWorkloadIdentityProvider::builder()
            .aks_cluster("aks-rg", "prod")
            .with_config(AzureConfigKey::SubscriptionId, azure.subscription_id())
            .with_config(AzureConfigKey::ResourceManagerEndpoint, server.url())
            .with_config(
                AzureConfigKey::AuthorityHost,
                format!("https://127.0.0.1:{}", server.addr().port()),
            )
            .with_config(AzureConfigKey::TenantId, azure.tenant_id())
            .with_config(AzureConfigKey::ClientId, POD_CLIENT_ID)
            .with_config(
                AzureConfigKey::FederatedTokenFile,
                file.to_string_lossy().into_owned(),
            )
            .token_http_client(LoopbackHttpsAsHttp::shared())
            .retry_policy(retry())
            .build()
    };
    let p = build_with(&token_file).await.expect("provider");
    let b = binding("shop", "api", "shop-api");
    assert_eq!(p.bind(&b).await.unwrap().change, BindChange::Created);
    assert_eq!(p.bind(&b).await.unwrap().change, BindChange::Unchanged);
    assert_eq!(azure.call_count("Token"), 1, "{:?}", azure.calls());

    // A token file that is not there (the webhook did not mount it): refused when the
    // provider is built, before any call, with what to fix.
    let err = build_with(&dir.join("no-such-token")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(
        err.fix().unwrap().contains("azure.workload.identity/use"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_token_arm_does_not_accept_is_unauthenticated() {
    let (azure, server) = start().await;
    azure.add_identity(RG, "shop-api");
    let p = AzureWorkloadIdentityProvider::builder()
        .aks_cluster("aks-rg", "prod")
        .with_config(AzureConfigKey::SubscriptionId, azure.subscription_id())
        .with_config(AzureConfigKey::ResourceManagerEndpoint, server.url())
        .with_config(AzureConfigKey::AccessToken, "stale-token")
        .retry_policy(retry())
        .build()
        .await
        .unwrap();
    let err = p
        .bind(&binding("shop", "api", "shop-api"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(!format!("{err:?}").contains("stale-token"));
    server.shutdown().await;
}

const FROM_ENV_CHILD: &str = "PORTER_IDENTITY_AZURE_FROM_ENV_CHILD";

/// `from_env` reads the variables a user's CI sets: the subscription, the ARM endpoint and the
/// emulator's token. In a child run of this test, since the environment is per process.
#[tokio::test]
async fn from_env_reads_the_emulator_variables() {
    if std::env::var_os(FROM_ENV_CHILD).is_some() {
        let p = AzureWorkloadIdentityProvider::builder()
            .aks_cluster("aks-rg", "prod")
            .from_env()
            .await
            .expect("from_env");
        let outcome = p
            .bind(&binding("shop", "api", "shop-api"))
            .await
            .expect("bind");
        assert_eq!(outcome.change, BindChange::Created);
        return;
    }
    let (azure, server) = start().await;
    azure.add_identity(RG, "shop-api");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe);
    child
        .args([
            "--exact",
            "from_env_reads_the_emulator_variables",
            "--nocapture",
        ])
        .env(FROM_ENV_CHILD, "1")
        .env("AZURE_SUBSCRIPTION_ID", azure.subscription_id())
        .env("AZURE_RESOURCE_MANAGER_ENDPOINT", server.url())
        .env("AZURE_ACCESS_TOKEN", TOKEN)
        .env_remove("AZURE_CLIENT_SECRET")
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("IDENTITY_ENDPOINT");
    // On a blocking thread: this runtime must keep serving the fake the child calls.
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
        azure.credentials(RG, "shop-api").len(),
        1,
        "the child bound through the endpoint variable"
    );
    server.shutdown().await;
}

/// Three deploy processes at once, over HTTP.
async fn racing(azure: &FakeAzure, server: &FakeServer) -> Vec<AzureWorkloadIdentityProvider> {
    let retry = RetryPolicy::default()
        .max_attempts(50)
        .initial_backoff(Duration::from_millis(2))
        .max_backoff(Duration::from_millis(40));
    let mut providers = Vec::new();
    for _ in 0..3 {
        providers.push(provider_with(azure, server, retry.clone()).await);
    }
    providers
}

#[tokio::test]
async fn three_processes_bind_fifteen_then_twenty_five_workloads_to_one_identity_over_http() {
    let (azure, server) = start().await;
    azure.add_identity(RG, "shared");
    azure.set_latency(Duration::from_millis(3));
    let providers = racing(&azure, &server).await;
    let bindings: Vec<Binding> = (0..25)
        .map(|i| binding("shop", &format!("svc-{i}"), "shared"))
        .collect();
    let first = join_all(
        bindings[..15]
            .iter()
            .enumerate()
            .map(|(i, b)| providers[i % 3].bind(b)),
    )
    .await;
    for r in &first {
        assert_eq!(r.as_ref().unwrap().change, BindChange::Created);
    }
    assert_eq!(azure.credentials(RG, "shared").len(), 15);

    let rest = join_all(
        bindings
            .iter()
            .enumerate()
            .map(|(i, b)| providers[i % 3].bind(b)),
    )
    .await;
    let limited = rest
        .iter()
        .filter(|r| matches!(r, Err(e) if e.kind() == ErrorKind::LimitExceeded))
        .count();
    let ok = rest.iter().filter(|r| r.is_ok()).count();
    assert_eq!((ok, limited), (20, 5), "{rest:?}");
    let held = azure.credentials(RG, "shared");
    assert_eq!(held.len(), 20);
    assert!(
        held.iter()
            .all(|c| c.audiences == ["api://AzureADTokenExchange"])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_call_over_http_is_timed_out_and_retried() {
    let (azure, server) = start().await;
    azure.add_identity(RG, "shop-api");
    azure.stall_every(3, Duration::from_secs(60));
    let p = provider_with(
        &azure,
        &server,
        // Long enough that no call but a stalled one is cut on a loaded machine.
        retry().attempt_timeout(Duration::from_secs(3)),
    )
    .await;
    let bindings: Vec<Binding> = (0..6)
        .map(|i| binding("shop", &format!("svc-{i}"), "shop-api"))
        .collect();
    let started = Instant::now();
    for r in p
        .bind_all(&porter_identity_core::RunContext::apply(), &bindings)
        .await
    {
        assert_eq!(r.unwrap().change, BindChange::Created);
    }
    // Uncut, one stalled call alone would take a minute: this ceiling only catches that.
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        azure.credentials(RG, "shop-api").len(),
        6,
        "nothing duplicated"
    );
    azure.stall_every(0, Duration::ZERO);
    server.shutdown().await;
}

// ---- the face's JSON against the official examples ------------------------------------------

fn examples_dir() -> PathBuf {
    // The azure-rest-api-specs examples this crate carries (testdata/api-examples/SOURCES.md).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/api-examples");
    assert!(
        dir.is_dir(),
        "the official Azure API examples are missing: expected {}",
        dir.display()
    );
    dir
}

fn example_body(file: &str, status: &str) -> Value {
    let text = std::fs::read_to_string(examples_dir().join(file)).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["responses"][status]["body"].clone()
}

/// Every member of the official example is in ours, with the same JSON type (recursively into
/// objects; arrays by their first element).
fn assert_has_members_of(example: &Value, ours: &Value, path: &str) {
    match (example, ours) {
        (Value::Object(e), Value::Object(o)) => {
            for (k, v) in e {
                let sub = format!("{path}.{k}");
                let theirs = o
                    .get(k)
                    .unwrap_or_else(|| panic!("{sub} is missing from {ours}"));
                assert_has_members_of(v, theirs, &sub);
            }
        }
        (Value::Array(e), Value::Array(o)) => {
            // An example that lists items needs a face that serves some: an empty list would
            // pass any member check.
            if let Some(e) = e.first() {
                let o = o.first().unwrap_or_else(|| {
                    panic!("{path}: the official example lists items, the fake serves none")
                });
                assert_has_members_of(e, o, &format!("{path}[0]"));
            }
        }
        (e, o) => assert_eq!(
            std::mem::discriminant(e),
            std::mem::discriminant(o),
            "{path}: {e} vs {o}"
        ),
    }
}

/// A plain HTTP client, for the fake's HTTP face on 127.0.0.1.
fn client() -> reqwest::Client {
    // The crate's reqwest brings no TLS provider of its own; this client speaks plain http, but
    // reqwest still wants one to exist.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn get(server: &FakeServer, path: &str) -> (u16, Value) {
    let client = client();
    let response = client
        .get(format!("{}{path}", server.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_faces_json_has_the_members_of_the_official_examples() {
    let (azure, server) = start().await;
    let identity = azure.add_identity(RG, "shop-api");
    azure.add_credential(
        RG,
        "shop-api",
        "ficResourceName",
        ISSUER,
        "system:serviceaccount:ns:svcaccount",
        &["api://AzureADTokenExchange"],
    );
    azure.assign_role(
        &identity.principal_id,
        "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        &azure.subscription_scope(),
    );
    let sub = azure.subscription_id();
    let base = format!(
        "/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shop-api"
    );

    let (status, ours) = get(&server, &format!("{base}?api-version=2024-11-30")).await;
    assert_eq!(status, 200);
    let mut expected = example_body("IdentityGet.json", "200");
    expected["tags"] = serde_json::json!({});
    assert_has_members_of(&expected, &ours, "identity");

    let (status, ours) = get(
        &server,
        &format!("{base}/federatedIdentityCredentials?api-version=2024-11-30"),
    )
    .await;
    assert_eq!(status, 200);
    let mut list = example_body("FederatedIdentityCredentialList.json", "200");
    list.as_object_mut().unwrap().remove("nextLink"); // one page here
    assert_has_members_of(&list, &ours, "list");
    assert_has_members_of(
        &example_body("FederatedIdentityCredentialCreate.json", "201"),
        &ours["value"][0],
        "credential",
    );

    let (status, ours) = get(
        &server,
        &format!("/subscriptions/{sub}/resourceGroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/prod?api-version=2025-10-01"),
    )
    .await;
    assert_eq!(status, 200);
    let secured = example_body("ManagedClustersCreate_SecurityProfile.json", "200");
    for member in ["id", "name", "type", "location"] {
        assert_has_members_of(&secured[member], &ours[member], member);
    }
    assert_has_members_of(
        &secured["properties"]["securityProfile"]["workloadIdentity"],
        &ours["properties"]["securityProfile"]["workloadIdentity"],
        "workloadIdentity",
    );
    assert_eq!(ours["properties"]["oidcIssuerProfile"]["issuerURL"], ISSUER);

    let (status, ours) = get(
        &server,
        &format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=assignedTo('{}')", identity.principal_id),
    )
    .await;
    assert_eq!(status, 200);
    assert_has_members_of(
        &example_body("RoleAssignments_ListForScope.json", "200"),
        &ours,
        "roleAssignments",
    );
    let definition = ours["value"][0]["properties"]["roleDefinitionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, ours) = get(&server, &format!("{definition}?api-version=2022-04-01")).await;
    assert_eq!(status, 200);
    assert_eq!(ours["properties"]["roleName"], "Reader");
    // The example's role grants actions and data actions; of the built-in roles, Storage Blob
    // Data Reader does too (Reader grants no data action, and an empty list proves nothing).
    let blob_reader = format!(
        "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{}",
        porter_identity_azure::fake::BUILT_IN_ROLES[4].0
    );
    let (status, ours) = get(&server, &format!("{blob_reader}?api-version=2022-04-01")).await;
    assert_eq!(status, 200);
    assert_eq!(ours["properties"]["roleName"], "Storage Blob Data Reader");
    assert_has_members_of(
        &example_body("GetRoleDefinitionById.json", "200"),
        &ours,
        "roleDefinition",
    );

    // Without a token ARM answers 401; a wrong api-version 400; DELETE of an absent credential
    // 204.
    let anonymous = client()
        .get(format!("{}{base}?api-version=2024-11-30", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let (status, body) = get(&server, &format!("{base}?api-version=2018-11-30")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("InvalidApiVersionParameter"))
    );
    let deleted = client()
        .delete(format!(
            "{}{base}/federatedIdentityCredentials/absent?api-version=2024-11-30",
            server.url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    server.shutdown().await;
}

/// Five deploy processes, each with its own provider over HTTP and the default `RetryPolicy`,
/// bind four workloads each to one identity while every write holds it for 150 ms (the 409
/// meanwhile): all 20 bind, none fails, each credential once.
#[tokio::test]
async fn five_processes_on_one_identity_over_http_all_bind_with_the_default_policy() {
    let (azure, server) = start().await;
    azure.add_identity(RG, "contended");
    azure.set_latency(Duration::from_millis(150));
    let mut processes = Vec::new();
    for _ in 0..5 {
        processes.push(provider_with(&azure, &server, RetryPolicy::default()).await);
    }
    porter_identity_core::testing::contended_binds_all_succeed(&processes, 4, &|p, w| {
        binding("shop", &format!("p{p}-w{w}"), "contended")
    })
    .await;
    assert_eq!(azure.credentials(RG, "contended").len(), 20);
    assert!(
        azure.call_count("FederatedIdentityCredentials_CreateOrUpdate") > 20,
        "the processes contended: {:?}",
        azure.calls()
    );
    server.shutdown().await;
}
