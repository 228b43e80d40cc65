//! The provider end to end over the real AWS SDK clients and HTTP on 127.0.0.1: IAM on moto,
//! EKS pod-identity operations and DescribeAddon on the fake's HTTP face (moto lacks them).
#![cfg(feature = "fake")]

mod support;

use std::net::SocketAddr;
use std::process::Command;

use porter_identity_aws::AwsPodIdentityProvider;
use porter_identity_aws::SdkApi;
use porter_identity_aws::fake::{FakeAws, FakeServer, serve};
use porter_identity_core::{
    AwsRoleMode, AwsRoleOptions, BindChange, Binding, Cloud, Connection, ErrorKind, PlanAction,
    Reconciler, RetryPolicy, RoleRef, RunContext, UnbindOutcome, Workload,
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

async fn provider_over_http(server: &FakeServer) -> AwsPodIdentityProvider {
    let eks = aws_sdk_eks::Client::new(&support::sdk_config_at(&server.url()));
    let iam = aws_sdk_iam::Client::new(&support::sdk_config());
    AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(SdkApi::new(eks, iam))
        .build()
        .await
        .expect("provider")
}

/// Service `service` of app `e2e`, to `role`.
fn binding(service: &str, role: &str) -> Binding {
    binding_of("e2e", service, role)
}

#[tokio::test]
async fn bind_verify_rebind_unbind_over_http() {
    let role = support::unique("e2e-role");
    let arn = support::create_pod_identity_role(&role).await;
    let (fake, server) = fake_eks().await;
    // Real EKS checks the role on create; the fake EKS checks its own copy of IAM.
    fake.add_role_with_arn(&arn, POD_IDENTITY_TRUST_POLICY);
    let p = provider_over_http(&server).await;
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
    let p = provider_over_http(&server).await;
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
    let p = provider_over_http(&server).await;
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
    run_child(
        "from_env_honours_per_service_endpoint_variables",
        &[
            (CHILD, "1"),
            ("E2E_ROLE", &role),
            ("AWS_ENDPOINT_URL_EKS", &server.url()),
            ("AWS_ENDPOINT_URL_IAM", support::moto_url()),
        ],
    )
    .await;
    let made = fake.associations(CLUSTER);
    assert_eq!(
        made.len(),
        1,
        "the child bound through the EKS endpoint variable"
    );
    assert_eq!(made[0].role_arn, arn);
    server.shutdown().await;
}

/// Runs test `test` of this binary again in a child process with `vars` and the AWS
/// environment of a user with static keys and no profile (the environment is per process, so
/// setting it here would race with the other tests), and checks that it passed.
async fn run_child(test: &str, vars: &[(&str, &str)]) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe);
    child
        .args(["--exact", test, "--nocapture"])
        .env("AWS_ACCESS_KEY_ID", "AKIDFROMENVTEST00000")
        .env("AWS_SECRET_ACCESS_KEY", "from-env-test-secret")
        .env("AWS_REGION", REGION)
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(vars.iter().copied());
    // On a blocking thread: this runtime must keep serving the servers the child calls.
    let out = tokio::task::spawn_blocking(move || child.output())
        .await
        .expect("join")
        .expect("run the child test");
    assert!(
        out.status.success(),
        "child run of {test} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Service `service` of `app`, in namespace `apps`, to `role`.
fn binding_of(app: &str, service: &str, role: &str) -> Binding {
    Binding::new(
        Workload::for_service("apps", app, service).expect("workload"),
        Connection::aws_role(RoleRef::parse(role).expect("role")),
    )
}

#[tokio::test]
async fn another_apps_association_is_never_touched_over_http() {
    // app `shop` + service `admin-api` and app `shop-admin` + service `api` both run as
    // `shop-admin-api`.
    let role = support::unique("e2e-owner");
    let arn = support::create_pod_identity_role(&role).await;
    let (fake, server) = fake_eks().await;
    fake.add_role_with_arn(&arn, POD_IDENTITY_TRUST_POLICY);
    let p = provider_over_http(&server).await;
    let owner = binding_of("shop", "admin-api", &role);
    p.bind(&owner).await.expect("bind the owner");
    let intruder = binding_of("shop-admin", "api", &role);
    fake.reset_calls();
    for err in [
        p.bind(&intruder).await.unwrap_err(),
        p.plan(&intruder).await.unwrap_err(),
        p.unbind(&intruder).await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(err.to_string().contains("app `shop`"), "{err}");
    }
    let report = Reconciler::new("shop-admin", "apps")
        .provider(&p)
        .desired_bindings([])
        .previous_bindings([intruder.clone()])
        .run()
        .await
        .expect("reconcile");
    assert!(report.removed.is_empty(), "{report}");
    assert_eq!(report.kept.len(), 1, "{report}");
    assert_eq!(fake.write_calls(), 0, "{:?}", fake.calls());
    let left = fake.associations(CLUSTER);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].tags["porter-identity/app"], "shop");
    server.shutdown().await;
}

#[tokio::test]
async fn a_reconcile_over_http_follows_every_page_and_removes_exactly_the_stale() {
    let role = support::unique("e2e-pages");
    let arn = support::create_pod_identity_role(&role).await;
    let (fake, server) = fake_eks().await;
    fake.add_role_with_arn(&arn, POD_IDENTITY_TRUST_POLICY);
    let p = provider_over_http(&server).await;
    let all: Vec<Binding> = (0..150)
        .map(|i| binding_of("pages", &format!("svc-{i}"), &role))
        .collect();
    let deploy = |desired: &[Binding], previous: &[Binding]| {
        let r = Reconciler::new("pages", "apps")
            .provider(&p)
            .desired_bindings(desired.to_vec())
            .previous_bindings(previous.to_vec());
        async move { r.run().await.expect("reconcile") }
    };
    let first = deploy(&all, &[]).await;
    assert!(first.is_ok(), "{first}");
    assert_eq!(fake.associations(CLUSTER).len(), 150);

    // Unchanged: two pages (100 + 50) of one listing, shared by the binds and the stale
    // search, one describe per association, nothing written.
    fake.reset_calls();
    let second = deploy(&all, &all).await;
    assert!(second.is_ok() && second.changes() == 0, "{second}");
    assert_eq!(fake.call_count("ListPodIdentityAssociations"), 2);
    assert_eq!(fake.call_count("DescribePodIdentityAssociation"), 150);
    assert_eq!(fake.write_calls(), 0);

    // Twenty services removed: exactly twenty deletes, nothing else written.
    fake.reset_calls();
    let third = deploy(&all[..130], &all).await;
    assert!(third.is_ok(), "{third}");
    assert_eq!(third.removed.len(), 20);
    assert_eq!(fake.call_count("DeletePodIdentityAssociation"), 20);
    assert_eq!(fake.write_calls(), 20);
    assert_eq!(fake.associations(CLUSTER).len(), 130);
    server.shutdown().await;
}

const ONE_LAYER_CHILD: &str = "PORTER_IDENTITY_ONE_LAYER_CHILD";

/// Tried as a user: one bind against an EKS endpoint answering 503 made 18 calls (the SDK's
/// three attempts under each of six). RetryPolicy must be the only layer, from `from_env` and
/// from an `SdkConfig` with the SDK's standard retries alike.
#[tokio::test]
async fn a_503_endpoint_gets_exactly_the_retry_policys_attempts() {
    if std::env::var_os(ONE_LAYER_CHILD).is_some() {
        let p = AwsPodIdentityProvider::builder()
            .cluster(CLUSTER)
            .retry_policy(
                RetryPolicy::default()
                    .max_attempts(3)
                    .initial_backoff(std::time::Duration::from_millis(1)),
            )
            .from_env()
            .await
            .expect("from_env");
        let err = p.bind(&binding("api", "any-role")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        // Three attempts of the joined reads in all, not more: the SDK retried none of them.
        assert!(
            err.fix().is_some_and(
                |f| f.contains("failed 3 attempts in a row") || f.contains("tried 3 times")
            ),
            "{err}"
        );
        return;
    }
    let server = support::scripted(503, r#"{"message":"Service Unavailable"}"#).await;

    // An SdkConfig with the SDK's standard retries (what aws_config::load_defaults gives).
    let config = support::sdk_config_at(&server.url)
        .into_builder()
        .retry_config(aws_sdk_eks::config::retry::RetryConfig::standard())
        .build();
    let p = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .sdk_config(&config)
        .retry_policy(
            RetryPolicy::default()
                .max_attempts(3)
                .initial_backoff(std::time::Duration::from_millis(1)),
        )
        .build()
        .await
        .expect("provider");
    let run = RunContext::apply();
    let mut results = p.bind_all(&run, &[binding("api", "any-role")]).await;
    let attempts = run.calls();
    let err = results.pop().expect("one result").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let fix = err
        .fix()
        .expect("a 503 that outlived its retries says what to do");
    assert!(fix.contains("retry the deploy later"), "{fix}");
    assert!(fix.contains("health.aws.amazon.com"), "{fix}");
    // The EKS reads the bind joins (DescribeCluster and the listing) spent one budget of
    // three attempts between them; GetRole, on IAM's endpoint, stopped when the cluster read
    // beside it gave up. And the endpoint saw exactly those attempts: no retry underneath.
    assert_eq!(
        attempts.get(Cloud::Aws, "DescribeCluster")
            + attempts.get(Cloud::Aws, "ListPodIdentityAssociations"),
        3,
        "{attempts:?}"
    );
    assert!(attempts.get(Cloud::Aws, "GetRole") <= 3, "{attempts:?}");
    let in_process = server.requests();
    assert_eq!(
        u64::from(in_process),
        attempts.total(),
        "requests beyond RetryPolicy's attempts reached the endpoint"
    );

    // from_env, in a child run of this test (the environment is per process).
    let before = server.requests();
    run_child(
        "a_503_endpoint_gets_exactly_the_retry_policys_attempts",
        &[(ONE_LAYER_CHILD, "1"), ("AWS_ENDPOINT_URL", &server.url)],
    )
    .await;
    // The same budget as in process: three EKS attempts, and at most three GetRole, dropped
    // when the cluster read beside it gave up (how many were made depends on timing). With the
    // SDK's three attempts under each, there would be at least nine.
    let child = server.requests() - before;
    assert!(
        (3..=6).contains(&child),
        "from_env keeps the SDK's retries off: {child} requests (in process: {in_process})"
    );
}

#[tokio::test]
async fn a_stalled_call_over_http_is_timed_out_and_retried_without_duplicates() {
    let role = support::unique("e2e-stall");
    let arn = support::create_pod_identity_role(&role).await;
    let (fake, server) = fake_eks().await;
    fake.add_role_with_arn(&arn, POD_IDENTITY_TRUST_POLICY);
    // Every fourth EKS call answers only after a minute.
    fake.stall_every(4, std::time::Duration::from_secs(60));
    let eks = aws_sdk_eks::Client::new(&support::sdk_config_at(&server.url()));
    let iam = aws_sdk_iam::Client::new(&support::sdk_config());
    let p = AwsPodIdentityProvider::builder()
        .cluster(CLUSTER)
        .api(SdkApi::new(eks, iam))
        .retry_policy(
            RetryPolicy::default()
                .initial_backoff(std::time::Duration::from_millis(1))
                // Long enough that no call but a stalled one is cut on a loaded machine
                // (moto's Python IAM included).
                .attempt_timeout(std::time::Duration::from_secs(3)),
        )
        .build()
        .await
        .expect("provider");
    let bindings: Vec<Binding> = (0..6)
        .map(|i| binding_of("stall", &format!("svc-{i}"), &role))
        .collect();
    let started = std::time::Instant::now();
    let results = p.bind_all(&RunContext::apply(), &bindings).await;
    for r in &results {
        assert_eq!(r.as_ref().expect("bind").change, BindChange::Created);
    }
    // Uncut, one stalled call alone would take a minute: this ceiling only catches that.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(45),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.associations(CLUSTER).len(), 6, "nothing duplicated");
    fake.stall_every(0, std::time::Duration::ZERO);
    server.shutdown().await;
}

/// The data account of the cross-account tests, in moto: reached by STS AssumeRole, which moto
/// answers with credentials of the role's account (moto keeps per-account state).
const DATA_ACCOUNT: &str = "444455556666";

/// Moto configuration with credentials of `account`, obtained through STS AssumeRole.
async fn sdk_config_of_account(account: &str) -> aws_config::SdkConfig {
    // Loaded (not built) so that it has the time source and sleep the STS provider needs.
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(support::moto_url())
        .credentials_provider(aws_sdk_eks::config::Credentials::new(
            "AKIDMOTOTESTING00000",
            "moto-testing-secret-key",
            None,
            None,
            "porter-identity-tests",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let credentials = aws_config::sts::AssumeRoleProvider::builder(format!(
        "arn:aws:iam::{account}:role/porter-identity-tests"
    ))
    .session_name("porter-identity-tests")
    .configure(&base)
    .build()
    .await;
    base.into_builder()
        .credentials_provider(aws_sdk_eks::config::SharedCredentialsProvider::new(
            credentials,
        ))
        .build()
}

fn binding_with(service: &str, role: &str, options: AwsRoleOptions) -> Binding {
    Binding::new(
        Workload::for_service("apps", "e2e", service).expect("workload"),
        Connection::aws_role_with(RoleRef::parse(role).expect("role"), options).expect("options"),
    )
}

/// A role chain in moto: the association's role in the cluster's account (trusting Pod
/// Identity, allowed to assume the data account's roles) and a target role in the data account
/// trusting it.
struct Chain {
    role: String,
    arn: String,
    data: aws_config::SdkConfig,
    target: String,
    target_arn: String,
}

/// A trust policy letting `principal` assume the role and tag its session.
fn trusting(principal: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":["sts:AssumeRole","sts:TagSession"]}}]}}"#
    )
}

async fn chain(prefix: &str) -> Chain {
    let role = support::unique(prefix);
    let arn = support::create_pod_identity_role(&role).await;
    support::iam()
        .put_role_policy()
        .role_name(&role)
        .policy_name("chain")
        .policy_document(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["sts:AssumeRole","sts:TagSession"],"Resource":"arn:aws:iam::{DATA_ACCOUNT}:role/*"}}]}}"#
        ))
        .send()
        .await
        .expect("PutRolePolicy");
    let data = sdk_config_of_account(DATA_ACCOUNT).await;
    let target = support::unique(&format!("{prefix}-target"));
    let target_arn = aws_sdk_iam::Client::new(&data)
        .create_role()
        .role_name(&target)
        .assume_role_policy_document(trusting(&arn))
        .send()
        .await
        .expect("CreateRole in the data account")
        .role()
        .expect("role")
        .arn()
        .to_owned();
    assert!(target_arn.contains(DATA_ACCOUNT), "{target_arn}");
    Chain {
        role,
        arn,
        data,
        target,
        target_arn,
    }
}

#[tokio::test]
async fn a_target_role_in_another_account_is_read_with_that_accounts_credentials() {
    let Chain {
        role,
        arn,
        data,
        target,
        target_arn,
    } = chain("e2e-chain").await;

    let (fake, server) = fake_eks().await;
    fake.add_role_with_arn(&arn, POD_IDENTITY_TRUST_POLICY);
    let provider = |with_data: bool| {
        let eks = aws_sdk_eks::Client::new(&support::sdk_config_at(&server.url()));
        let iam = aws_sdk_iam::Client::new(&support::sdk_config());
        let mut b = AwsPodIdentityProvider::builder()
            .cluster(CLUSTER)
            .api(SdkApi::new(eks, iam));
        if with_data {
            b = b.target_account(DATA_ACCOUNT, &data);
        }
        b.build()
    };
    let options = || {
        AwsRoleOptions::default()
            .target_role(RoleRef::parse(&target_arn).expect("ARN"))
            .expect("a full ARN")
    };
    let b = binding_with("chained", &role, options());
    let p = provider(true).await.expect("provider");
    let created = p.bind(&b).await.expect("bind");
    assert_eq!(created.change, BindChange::Created);
    assert!(
        created
            .service_account_patch
            .notes
            .iter()
            .all(|n| !n.contains("not checked"))
    );
    let a = &fake.associations(CLUSTER)[0];
    assert_eq!(
        a.settings.target_role_arn.as_deref(),
        Some(target_arn.as_str())
    );

    // Without the data account's credentials: bound, with the note.
    let unread = provider(false).await.expect("provider");
    let again = unread.bind(&b).await.expect("bind");
    assert_eq!(again.change, BindChange::Unchanged);
    let notes = again.service_account_patch.notes.join("\n");
    assert!(notes.contains("not checked from here"), "{notes}");

    // The target stops trusting the role: refused before any write, by a fresh provider.
    aws_sdk_iam::Client::new(&data)
        .update_assume_role_policy()
        .role_name(&target)
        .policy_document(trusting(&format!(
            "arn:aws:iam::{MOTO_ACCOUNT}:role/someone-else"
        )))
        .send()
        .await
        .expect("UpdateAssumeRolePolicy");
    fake.reset_calls();
    let other = binding_with("chained-2", &role, options());
    let err = provider(true)
        .await
        .expect("provider")
        .bind(&other)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.fix().unwrap_or_default().contains(&arn), "{err:?}");
    assert_eq!(fake.write_calls(), 0, "{:?}", fake.calls());
    server.shutdown().await;
}

#[tokio::test]
async fn irsa_over_http_reads_moto_oidc_provider_and_trust_and_writes_nothing() {
    let (fake, server) = fake_eks().await;
    let issuer = fake.cluster_oidc_issuer(CLUSTER);
    let host = issuer.trim_start_matches("https://").to_owned();
    let role = support::unique("e2e-irsa");
    let sa = "e2e-irsa-api";
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::{MOTO_ACCOUNT}:oidc-provider/{host}"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{{"StringEquals":{{"{host}:sub":"system:serviceaccount:apps:{sa}","{host}:aud":"sts.amazonaws.com"}}}}}}]}}"#
    );
    let iam = support::iam();
    let role_arn = iam
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(&trust)
        .send()
        .await
        .expect("CreateRole")
        .role()
        .expect("role")
        .arn()
        .to_owned();
    let p = provider_over_http(&server).await;
    let b = binding_with(
        "irsa-api",
        &role,
        AwsRoleOptions::default().mode(AwsRoleMode::Irsa),
    );
    assert_eq!(b.workload.service_account().as_str(), sa);

    // No IAM OIDC provider for the cluster's issuer yet.
    let err = p.bind(&b).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.fix()
            .unwrap_or_default()
            .contains("aws iam create-open-id-connect-provider"),
        "{err:?}"
    );
    iam.create_open_id_connect_provider()
        .url(&issuer)
        .client_id_list("sts.amazonaws.com")
        .send()
        .await
        .expect("CreateOpenIDConnectProvider");

    fake.reset_calls();
    let bound = p.bind(&b).await.expect("bind");
    assert_eq!(bound.change, BindChange::Unchanged);
    assert_eq!(
        bound
            .service_account_patch
            .annotations
            .get("eks.amazonaws.com/role-arn"),
        Some(&role_arn)
    );
    assert_eq!(fake.write_calls(), 0);
    // The role is as it was: IRSA writes nothing in IAM (the port has no IAM write at all).
    let after = iam
        .get_role()
        .role_name(&role)
        .send()
        .await
        .expect("GetRole");
    assert_eq!(
        support::decode_policy(
            after
                .role()
                .expect("role")
                .assume_role_policy_document()
                .unwrap_or_default()
        ),
        serde_json::from_str::<serde_json::Value>(&trust).unwrap()
    );
    let report = p.verify(&b).await.expect("verify");
    assert!(report.is_healthy(), "{report}");
    server.shutdown().await;
}

/// `.target_account_profile(account, profile)` with `from_env`: the profile's own credentials
/// (a role of the data account, assumed through STS from a source profile) read the target,
/// though the environment holds the cluster account's keys. In a child process, for the
/// environment.
#[tokio::test]
async fn a_target_account_profile_reads_the_target_with_the_profiles_credentials() {
    const CHILD: &str = "PORTER_IDENTITY_TARGET_PROFILE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let p = AwsPodIdentityProvider::builder()
            .cluster(CLUSTER)
            .target_account_profile(DATA_ACCOUNT, "data-readonly")
            .from_env()
            .await
            .expect("from_env");
        let role = std::env::var("E2E_ROLE").expect("E2E_ROLE");
        let target = std::env::var("E2E_TARGET").expect("E2E_TARGET");
        let options = AwsRoleOptions::default()
            .target_role(RoleRef::parse(&target).expect("ARN"))
            .expect("a full ARN");
        let outcome = p
            .bind(&binding_with("profiled", &role, options))
            .await
            .expect("bind");
        assert_eq!(outcome.change, BindChange::Created);
        let notes = outcome.service_account_patch.notes.join("\n");
        assert!(
            !notes.contains("not checked"),
            "the target was read: {notes}"
        );
        return;
    }
    let Chain {
        role,
        arn,
        target_arn,
        ..
    } = chain("e2e-profiled").await;
    let (fake, server) = fake_eks().await;
    fake.add_role_with_arn(&arn, POD_IDENTITY_TRUST_POLICY);
    let dir = std::env::temp_dir().join(support::unique("porter-identity-profiles"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "[profile data-readonly]\nregion = {REGION}\nrole_arn = arn:aws:iam::{DATA_ACCOUNT}:role/porter-identity-reader\nsource_profile = base\n\n[profile base]\nregion = {REGION}\naws_access_key_id = AKIDPROFILEBASE00000\naws_secret_access_key = profile-base-secret\n"
        ),
    )
    .expect("write the AWS config file");
    run_child(
        "a_target_account_profile_reads_the_target_with_the_profiles_credentials",
        &[
            (CHILD, "1"),
            ("E2E_ROLE", &role),
            ("E2E_TARGET", &target_arn),
            ("AWS_CONFIG_FILE", config.to_str().expect("UTF-8 path")),
            ("AWS_ENDPOINT_URL", support::moto_url()),
            ("AWS_ENDPOINT_URL_EKS", &server.url()),
        ],
    )
    .await;
    assert_eq!(fake.associations(CLUSTER).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
    server.shutdown().await;
}
