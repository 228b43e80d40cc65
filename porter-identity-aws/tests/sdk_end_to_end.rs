//! The provider end to end over the real AWS SDK clients and HTTP on 127.0.0.1: IAM on moto,
//! EKS pod-identity operations and DescribeAddon on the fake's HTTP face (moto lacks them).
#![cfg(feature = "fake")]

mod support;

use std::net::SocketAddr;
use std::process::Command;

use porter_identity_aws::AwsPodIdentityProvider;
use porter_identity_aws::fake::{FakeAws, FakeServer, serve};
use porter_identity_aws::sdk::SdkApi;
use porter_identity_core::{
    BindChange, Binding, Connection, ErrorKind, PlanAction, RoleRef, UnbindOutcome, Workload,
    WorkloadIdentityProvider,
};
use support::{MOTO_ACCOUNT, POD_IDENTITY_TRUST_POLICY, REGION};

const CLUSTER: &str = "e2e";

/// A fake EKS (cluster ACTIVE, agent installed) in moto's account, served on 127.0.0.1.
async fn fake_eks() -> (FakeAws, FakeServer) {
    let fake = FakeAws::new(MOTO_ACCOUNT, REGION);
    fake.add_cluster(CLUSTER);
    fake.install_addon(CLUSTER, "eks-pod-identity-agent", "ACTIVE");
    let server = serve(fake.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("serve the fake EKS");
    (fake, server)
}

fn provider_over_http(server: &FakeServer) -> AwsPodIdentityProvider {
    let eks = aws_sdk_eks::Client::new(&support::sdk_config_at(&server.url()));
    let iam = aws_sdk_iam::Client::new(&support::sdk_config());
    AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(SdkApi::new(eks, iam))
        .build()
        .expect("provider")
}

fn binding(service: &str, role: &str) -> Binding {
    Binding::new(
        Workload::for_service("apps", "e2e", service).expect("workload"),
        Connection::AwsRole {
            role: RoleRef::parse(role).expect("role"),
        },
    )
}

#[tokio::test]
async fn bind_verify_rebind_unbind_over_http() {
    let role = support::unique("e2e-role");
    let arn = support::create_pod_identity_role(&role).await;
    let (fake, server) = fake_eks().await;
    // Real EKS checks the role on create; the fake EKS checks its own copy of IAM.
    fake.add_role_with_arn(&arn, POD_IDENTITY_TRUST_POLICY);
    let p = provider_over_http(&server);
    let b = binding("api", &role);

    assert_eq!(p.plan(&b).await.expect("plan").action, PlanAction::Create);
    let created = p.bind(&b).await.expect("bind");
    assert_eq!(created.change, BindChange::Created);
    let in_eks = fake.associations(CLUSTER);
    assert_eq!(in_eks.len(), 1);
    assert_eq!(in_eks[0].role_arn, arn);
    assert_eq!(in_eks[0].service_account, "e2e-api");
    assert_eq!(
        in_eks[0].tags.get("managed-by").map(String::as_str),
        Some("porter-identity")
    );

    fake.reset_calls();
    let again = p.bind(&b).await.expect("re-bind");
    assert_eq!(again.change, BindChange::Unchanged);
    assert_eq!(again.resource_id, created.resource_id);
    assert_eq!(fake.write_calls(), 0, "{:?}", fake.calls());

    let report = p.verify(&b).await.expect("verify");
    assert!(report.is_healthy(), "{report}");

    assert!(matches!(
        p.unbind(&b).await.expect("unbind"),
        UnbindOutcome::Deleted { .. }
    ));
    assert_eq!(
        p.unbind(&b).await.expect("unbind again"),
        UnbindOutcome::AlreadyAbsent
    );
    assert!(fake.associations(CLUSTER).is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn role_without_tag_session_is_refused_before_any_write() {
    let role = support::unique("e2e-no-tag");
    support::iam()
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("CreateRole on moto");
    let (fake, server) = fake_eks().await;
    let p = provider_over_http(&server);
    let err = p.bind(&binding("api", &role)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.fix().is_some_and(|f| f.contains("sts:TagSession")),
        "{err}"
    );
    assert_eq!(fake.write_calls(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn missing_role_is_not_found_over_http() {
    let (_fake, server) = fake_eks().await;
    let p = provider_over_http(&server);
    let err = p
        .bind(&binding("api", &support::unique("ghost")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    server.shutdown().await;
}

/// `from_env` reads credentials, region and the per-service endpoint variables the way
/// aws-config does. The variables are set on a child run of this very test, because changing
/// this process's environment would race with the other tests.
#[tokio::test]
async fn from_env_honours_per_service_endpoint_variables() {
    const CHILD: &str = "PORTER_IDENTITY_FROM_ENV_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let p = AwsPodIdentityProvider::builder()
            .cluster(CLUSTER)
            .from_env()
            .await
            .expect("from_env");
        let role = std::env::var("E2E_ROLE").expect("E2E_ROLE");
        let outcome = p.bind(&binding("api", &role)).await.expect("bind");
        assert_eq!(outcome.change, BindChange::Created);
        return;
    }
    let role = support::unique("e2e-env");
    let arn = support::create_pod_identity_role(&role).await;
    let (fake, server) = fake_eks().await;
    fake.add_role_with_arn(&arn, POD_IDENTITY_TRUST_POLICY);
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe);
    child
        .args([
            "--exact",
            "from_env_honours_per_service_endpoint_variables",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("E2E_ROLE", &role)
        .env("AWS_ACCESS_KEY_ID", "AKIDFROMENVTEST00000")
        .env("AWS_SECRET_ACCESS_KEY", "from-env-test-secret")
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL_EKS", server.url())
        .env("AWS_ENDPOINT_URL_IAM", support::moto_url())
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    // On a blocking thread: this runtime must keep serving the fake EKS the child calls.
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
    let made = fake.associations(CLUSTER);
    assert_eq!(
        made.len(),
        1,
        "the child bound through the EKS endpoint variable"
    );
    assert_eq!(made[0].role_arn, arn);
    server.shutdown().await;
}
