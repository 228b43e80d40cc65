//! End to end: the `porter-identity` binary, run as a user runs it, against the providers'
//! HTTP faces on 127.0.0.1 (EKS pod identity, ARM, Google IAM + GKE + Resource Manager) and
//! moto (AWS IAM), configured only through the environment variables a user would set. Each
//! subcommand, `--previous`, JSON output, every exit status, and no secret in any output.
#![cfg(all(
    feature = "aws",
    feature = "azure",
    feature = "gcp",
    feature = "kube",
    feature = "fake"
))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use porter_identity::aws::fake::FakeAws;
use porter_identity::azure::fake::FakeAzure;
use porter_identity::gcp::WORKLOAD_IDENTITY_USER;
use porter_identity::gcp::fake::FakeGcp;
use porter_identity_testkit::moto as support;
use porter_identity_testkit::unique;
use serde_json::Value;

const CLUSTER: &str = "prod";
const GKE_PROJECT: &str = "cli-project-1";
const AKS_ISSUER: &str = "https://eastus.oic.prod-aks.azure.com/tenant/prod/";
const AZURE_TOKEN: &str = "cli-emulator-token-Qx81";
const AWS_SECRET: &str = "cli-aws-secret-Zr93kq";

/// The three fake clouds behind their HTTP faces, and moto, for one test.
struct Clouds {
    aws: FakeAws,
    azure: FakeAzure,
    gcp: FakeGcp,
    role: String,
    dir: PathBuf,
    _servers: Vec<porter_identity::testing::FakeServer>,
    env: Vec<(String, String)>,
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The GCP fake's throwaway service-account key, written where `dir` says, as a user's CI
/// would write the key file it points GOOGLE_APPLICATION_CREDENTIALS at.
fn gcp_key_file(dir: &Path) -> String {
    let path = dir.join("gcp-key.json");
    std::fs::write(&path, porter_identity::gcp::fake::SERVICE_ACCOUNT_KEY_JSON).unwrap();
    path.display().to_string()
}

/// The README's example porter.yaml, at the workspace root (the first command runs on it).
fn example_porter_yaml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/porter.yaml")
}

impl Clouds {
    async fn start(name: &str) -> Self {
        let role = unique(&format!("cli-{name}"));
        let arn = support::create_pod_identity_role(&role).await;
        let aws = FakeAws::new(support::MOTO_ACCOUNT, support::REGION);
        aws.add_cluster(CLUSTER);
        aws.install_addon(CLUSTER, "eks-pod-identity-agent", "ACTIVE");
        aws.add_role_with_arn(&arn, support::POD_IDENTITY_TRUST_POLICY);
        let azure = FakeAzure::new();
        azure.add_aks_cluster("aks-rg", CLUSTER, AKS_ISSUER);
        azure.accept_token(AZURE_TOKEN);
        azure.add_identity("shop-rg", "reports-identity");
        let gcp = FakeGcp::new();
        gcp.add_gke_cluster(GKE_PROJECT, "us-central1", CLUSTER);
        gcp.add_service_account(&gcp_email());
        let eks = porter_identity::aws::fake::serve(aws.clone(), loopback())
            .await
            .unwrap();
        let arm = porter_identity::azure::fake::serve(azure.clone(), loopback())
            .await
            .unwrap();
        let google = porter_identity::gcp::fake::serve(gcp.clone(), loopback())
            .await
            .unwrap();
        let google_url = format!("{}/", google.url());
        let dir = std::env::temp_dir().join(unique(&format!("porter-identity-cli-{name}")));
        std::fs::create_dir_all(&dir).unwrap();
        let env = [
            ("AWS_ENDPOINT_URL_EKS", eks.url()),
            ("AWS_ENDPOINT_URL_IAM", support::moto_url().to_owned()),
            ("AWS_ACCESS_KEY_ID", "AKIDCLITEST000000000".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET.to_owned()),
            ("AWS_REGION", support::REGION.to_owned()),
            ("AWS_CONFIG_FILE", "/nonexistent".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AZURE_SUBSCRIPTION_ID", azure.subscription_id()),
            ("AZURE_RESOURCE_MANAGER_ENDPOINT", arm.url()),
            ("AZURE_ACCESS_TOKEN", AZURE_TOKEN.to_owned()),
            ("CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM", google_url.clone()),
            (
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER",
                google_url.clone(),
            ),
            (
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER",
                google_url,
            ),
            ("GOOGLE_APPLICATION_CREDENTIALS", gcp_key_file(&dir)),
            // Nothing may reach the metadata servers, addresses outside 127.0.0.1.
            ("GCE_METADATA_HOST", "127.0.0.1:9".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Clouds {
            aws,
            azure,
            gcp,
            role,
            dir,
            _servers: vec![eks, arm, google],
            env,
        }
    }

    /// A porter.yaml in the test's directory: `api` on the moto role, `reports` on the Azure
    /// identity and the GCP service account, and `worker` on the role too when `worker`.
    fn porter_yaml(&self, file: &str, worker: bool) -> PathBuf {
        let mut yaml = format!(
            "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: {}\n  - name: reports\n    connections:\n      - type: azureManagedIdentity\n        identityName: reports-identity\n        resourceGroup: shop-rg\n      - type: gcpServiceAccount\n        serviceAccountEmail: {}\n",
            self.role,
            gcp_email()
        );
        if worker {
            yaml.push_str(&format!(
                "  - name: worker\n    connections:\n      - type: awsRole\n        role: {}\n",
                self.role
            ));
        }
        let path = self.dir.join(file);
        std::fs::write(&path, yaml).unwrap();
        path
    }

    /// The CLI with this test's environment only, on the three clusters.
    fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .args([
                "--app",
                "shop",
                "--namespace",
                "prod",
                "--eks-cluster",
                CLUSTER,
                "--aks-cluster",
                "aks-rg/prod",
                "--gke-cluster",
                &format!("{GKE_PROJECT}/us-central1/{CLUSTER}"),
            ])
            .timeout(std::time::Duration::from_secs(120));
        cmd
    }
}

fn gcp_email() -> String {
    format!("reports@{GKE_PROJECT}.iam.gserviceaccount.com")
}

/// The binary under test, built by cargo for this test.
fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_porter-identity"))
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the CLI on a blocking thread (this runtime keeps serving the faces it calls).
async fn run(cmd: Command) -> Ran {
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = cmd;
        cmd.output()
    })
    .await
    .unwrap()
    .unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The binary with `args` on the built-in fakes, as app `demo`, its links kept in `state`.
fn on_fakes(state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.env_clear().args(args).args([
        "--fake",
        "--fake-state",
        state.to_str().unwrap(),
        "--app",
        "demo",
    ]);
    cmd
}

/// The item of a JSON array of links whose `cloud` is `cloud`.
fn of_cloud<'a>(items: &'a Value, cloud: &str) -> &'a Value {
    items
        .as_array()
        .and_then(|items| items.iter().find(|i| i["cloud"] == cloud))
        .unwrap_or_else(|| panic!("no {cloud} item in {items}"))
}

fn json(ran: &Ran) -> Value {
    serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", ran.stdout, ran.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_apply_apply_verify_manifests_and_unbind_over_the_faces() {
    let c = Clouds::start("main").await;
    let file = c.porter_yaml("porter.yaml", false);
    let f = file.to_str().unwrap();

    let plan = run(c.cli(&["plan", "-f", f])).await;
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert_eq!(
        plan.stdout.matches("would create").count(),
        3,
        "{}",
        plan.stdout
    );
    assert!(
        c.aws.associations(CLUSTER).is_empty(),
        "plan writes nothing"
    );

    let apply = run(c.cli(&["apply", "-f", f])).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(
        apply.stdout.matches(" created").count(),
        3,
        "{}",
        apply.stdout
    );
    assert_eq!(c.aws.associations(CLUSTER).len(), 1);
    assert_eq!(c.azure.credentials("shop-rg", "reports-identity").len(), 1);
    assert_eq!(
        c.gcp.members(&gcp_email(), WORKLOAD_IDENTITY_USER),
        [format!(
            "serviceAccount:{GKE_PROJECT}.svc.id.goog[prod/shop-reports]"
        )]
    );

    let again = run(c.cli(&["apply", "-f", f, "-o", "json"])).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let report = json(&again);
    assert_eq!(report["changes"], 0, "{report}");
    assert!(
        report["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["change"] == "unchanged"),
        "{report}"
    );

    let verify = run(c.cli(&["verify", "-f", f])).await;
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    assert!(
        verify.stdout.contains("3 bindings verified, 0 with errors"),
        "{}",
        verify.stdout
    );

    let manifests = run(c.cli(&["manifests", "-f", f])).await;
    assert_eq!(manifests.code, 0, "{}", manifests.stderr);
    let identity = c.azure.identity("shop-rg", "reports-identity").unwrap();
    assert!(
        manifests.stdout.contains(&format!(
            "azure.workload.identity/client-id: {}",
            identity.client_id
        )),
        "{}",
        manifests.stdout
    );
    assert!(
        manifests
            .stdout
            .contains(&format!("iam.gke.io/gcp-service-account: {}", gcp_email()))
    );
    assert_eq!(manifests.stdout.matches("kind: ServiceAccount").count(), 2);
    let list = json(&run(c.cli(&["manifests", "-f", f, "-o", "json"])).await);
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "shop-api");

    let unbind = run(c.cli(&["unbind", "-f", f, "-o", "json"])).await;
    assert_eq!(unbind.code, 0, "{}", unbind.stderr);
    let out = json(&unbind);
    assert!(
        out["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["removal"] == "deleted"),
        "{out}"
    );
    assert!(c.aws.associations(CLUSTER).is_empty());
    assert!(
        c.azure
            .credentials("shop-rg", "reports-identity")
            .is_empty()
    );
    assert!(
        c.gcp
            .members(&gcp_email(), WORKLOAD_IDENTITY_USER)
            .is_empty()
    );

    let bind = run(c.cli(&["bind", "-f", f])).await;
    assert_eq!(bind.code, 0, "{}", bind.stderr);
    assert!(
        bind.stdout.contains("3 bindings, 0 failed"),
        "{}",
        bind.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn previous_removes_what_the_app_no_longer_wants_in_json() {
    let c = Clouds::start("previous").await;
    let before = c.porter_yaml("before.yaml", true);
    let after = c.porter_yaml("after.yaml", false);
    let first = run(c.cli(&["apply", "-f", before.to_str().unwrap()])).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert_eq!(c.aws.associations(CLUSTER).len(), 2);

    let plan = json(
        &run(c.cli(&[
            "plan",
            "-f",
            after.to_str().unwrap(),
            "--previous",
            before.to_str().unwrap(),
            "-o",
            "json",
        ]))
        .await,
    );
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["removed"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(c.aws.associations(CLUSTER).len(), 2, "plan removes nothing");

    let deploy = run(c.cli(&[
        "apply",
        "-f",
        after.to_str().unwrap(),
        "--previous",
        before.to_str().unwrap(),
        "-o",
        "json",
    ]))
    .await;
    assert_eq!(deploy.code, 0, "{}", deploy.stderr);
    let report = json(&deploy);
    let removed = report["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{report}");
    assert_eq!(removed[0]["service"], "worker");
    assert_eq!(removed[0]["evidence"], "ownership_marks");
    assert_eq!(c.aws.associations(CLUSTER).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_exit_status_means_what_the_help_says() {
    let c = Clouds::start("exits").await;
    let file = c.porter_yaml("porter.yaml", false);
    let f = file.to_str().unwrap();

    // 2: bad input — an unreadable or invalid porter.yaml, a bad flag, a missing cluster.
    let missing = run(c.cli(&["plan", "-f", "/nonexistent/porter.yaml"])).await;
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    let bad = c.dir.join("bad.yaml");
    std::fs::write(&bad, "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: arn:aws:iam::12345:role/x\n").unwrap();
    let invalid = run(c.cli(&["plan", "-f", bad.to_str().unwrap()])).await;
    assert_eq!(invalid.code, 2, "{}", invalid.stderr);
    assert!(
        invalid.stderr.contains("services[0].connections[0].role"),
        "{}",
        invalid.stderr
    );
    let flag = run(c.cli(&["plan", "-f", f, "--output", "xml"])).await;
    assert_eq!(flag.code, 2, "{}", flag.stderr);
    let mut no_cluster = Command::new(binary());
    no_cluster
        .env_clear()
        .envs(c.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(["plan", "-f", f, "--app", "shop"]);
    let no_cluster = run(no_cluster).await;
    assert_eq!(no_cluster.code, 2, "{}", no_cluster.stderr);
    assert!(
        no_cluster.stderr.contains("--eks-cluster"),
        "{}",
        no_cluster.stderr
    );
    // A malformed cluster flag is said first, even with no AWS region anywhere (the AWS
    // provider would otherwise fail on its environment before the flag is read).
    let example = example_porter_yaml();
    let mut malformed = Command::new(binary());
    malformed.env_clear().args([
        "plan",
        "-f",
        example.to_str().unwrap(),
        "--eks-cluster",
        "prod",
        "--aks-cluster",
        "prod-aks",
        "--gke-cluster",
        "p/us-central1/prod",
    ]);
    let malformed = run(malformed).await;
    assert_eq!(malformed.code, 2, "{}", malformed.stderr);
    assert!(
        malformed
            .stderr
            .contains("--aks-cluster \"prod-aks\": give the cluster as RESOURCE_GROUP/NAME"),
        "{}",
        malformed.stderr
    );

    // 0, then 1: verify finds the link missing once someone removed it.
    assert_eq!(run(c.cli(&["apply", "-f", f])).await.code, 0);
    c.gcp.revoke(
        &gcp_email(),
        WORKLOAD_IDENTITY_USER,
        &format!("serviceAccount:{GKE_PROJECT}.svc.id.goog[prod/shop-reports]"),
    );
    let verify = run(c.cli(&["verify", "-f", f, "-o", "json"])).await;
    assert_eq!(verify.code, 1, "{}{}", verify.stdout, verify.stderr);
    let out = json(&verify);
    assert_eq!(out["healthy"], false);
    let gcp = of_cloud(&out["workloads"], "gcp");
    assert!(
        gcp["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "gcp.binding.missing"),
        "{gcp}"
    );

    // 3: a cloud call failed — the managed identity is gone.
    c.azure.delete_identity("shop-rg", "reports-identity");
    let failed = run(c.cli(&["apply", "-f", f, "-o", "json"])).await;
    assert_eq!(failed.code, 3, "{}{}", failed.stdout, failed.stderr);
    let report = json(&failed);
    assert_eq!(report["ok"], false);
    let azure = of_cloud(&report["workloads"], "azure");
    assert_eq!(azure["error"]["kind"], "not_found", "{azure}");
    assert!(
        azure["error"]["fix"]
            .as_str()
            .unwrap()
            .contains("az identity create")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_from_the_environment_appears_in_any_output_or_trace_log() {
    let c = Clouds::start("secrets").await;
    let file = c.porter_yaml("porter.yaml", false);
    let f = file.to_str().unwrap();
    let key: Value =
        serde_json::from_str(porter_identity::gcp::fake::SERVICE_ACCOUNT_KEY_JSON).unwrap();
    let private_key = key["private_key"].as_str().unwrap();
    // A line from the middle of the PEM body.
    let key_line = private_key.lines().nth(5).unwrap().to_owned();
    let secrets = [AZURE_TOKEN, AWS_SECRET, key_line.as_str()];
    let mut seen = 0;
    for output in ["text", "json"] {
        for command in ["plan", "apply", "bind", "verify", "manifests", "unbind"] {
            let mut cmd = c.cli(&[command, "-f", f, "-o", output]);
            cmd.env("RUST_LOG", "trace");
            let ran = run(cmd).await;
            assert!(ran.code == 0 || ran.code == 1, "{command}: {}", ran.stderr);
            seen += ran.stderr.len();
            for secret in secrets {
                assert!(
                    !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
                    "{command} -o {output} shows a secret"
                );
            }
            assert!(
                !ran.stderr.contains("Bearer ") && !ran.stdout.contains("Bearer "),
                "{command} -o {output} shows a bearer token"
            );
        }
    }
    assert!(
        seen > 10_000,
        "RUST_LOG=trace logged something to look through ({seen} bytes)"
    );
}

/// `--fake` needs no cloud and no environment; `--fake-state` keeps the links between runs: a
/// second apply changes nothing, and `apply --previous` removes what the app dropped.
#[tokio::test(flavor = "multi_thread")]
async fn the_fake_clouds_keep_their_links_in_the_state_file() {
    let dir = std::env::temp_dir().join(unique("porter-identity-cli-fake"));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let example = example_porter_yaml();
    let after = dir.join("after.yaml");
    std::fs::write(
        &after,
        "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: demo-api-role\n",
    )
    .unwrap();
    let fake = |args: &[&str]| on_fakes(&state, args);
    let example = example.to_str().unwrap();
    // The cloud side alone: the fake cluster's ServiceAccounts lack their annotations.
    let first = json(&run(fake(&["apply", "-f", example, "-o", "json"])).await);
    assert_eq!(first["changes"], 4, "{first}");
    let unapplied = run(fake(&["verify", "-f", example])).await;
    assert_eq!(unapplied.code, 1, "{}", unapplied.stdout);
    assert!(
        unapplied.stdout.contains("kube.annotation.missing"),
        "{}",
        unapplied.stdout
    );
    let times = link_times(&state);
    assert_eq!(
        times.as_array().map(Vec::len),
        Some(2),
        "the two EKS links' times: {times}"
    );
    // Commands typed a while apart, as a person types them: each one replays the links on
    // fresh fakes, and the links must keep the time they were really made.
    pause().await;
    // With the cluster side and the restart: the fake cluster is kept in the state file too.
    let second = json(
        &run(fake(&[
            "apply",
            "--kube",
            "--restart",
            "-f",
            example,
            "-o",
            "json",
        ]))
        .await,
    );
    assert_eq!(
        second["changes"], 0,
        "every link is there from the state file: {second}"
    );
    let reports = second["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sa| sa["name"] == "demo-reports")
        .unwrap();
    assert!(
        reports["cluster"]["applied"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a
                .as_str()
                .unwrap()
                .contains("azure.workload.identity/client-id")),
        "{second}"
    );
    let api = second["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sa| sa["name"] == "demo-api")
        .unwrap();
    assert_eq!(
        api["cluster"]["restarted"].as_array().unwrap().len(),
        1,
        "the association's modifiedAt dates the link the first apply made: {second}"
    );
    assert_eq!(
        link_times(&state),
        times,
        "a command that changed no link leaves every link's time as it was"
    );
    pause().await;
    let verify = run(fake(&["verify", "-f", example])).await;
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    assert!(
        verify.stdout.contains("4 bindings verified, 0 with errors"),
        "{}",
        verify.stdout
    );
    pause().await;
    let again = run(fake(&["restart", "-f", example])).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("nothing to restart"),
        "the restarted pods are younger than their links: {}",
        again.stdout
    );
    assert_eq!(link_times(&state), times);
    let dropped = json(
        &run(fake(&[
            "apply",
            "-f",
            after.to_str().unwrap(),
            "--previous",
            example,
            "-o",
            "json",
        ]))
        .await,
    );
    assert_eq!(dropped["removed"].as_array().unwrap().len(), 3, "{dropped}");
    let settled = json(&run(fake(&["plan", "-f", after.to_str().unwrap(), "-o", "json"])).await);
    assert_eq!(settled["changes"], 0, "{settled}");

    // Without --app, the app is the porter.yaml's top-level `name` (examples/porter.yaml: demo);
    // a file without one needs --app (bad input, 2).
    let mut named = Command::new(binary());
    named
        .env_clear()
        .args(["plan", "--fake", "-f", example, "-o", "json"]);
    let named = run(named).await;
    assert_eq!(named.code, 0, "{}", named.stderr);
    assert_eq!(json(&named)["app"], "demo");
    let mut unnamed = Command::new(binary());
    unnamed
        .env_clear()
        .args(["plan", "--fake", "-f", after.to_str().unwrap()]);
    let unnamed = run(unnamed).await;
    assert_eq!(unnamed.code, 2, "{}", unnamed.stderr);
    assert!(unnamed.stderr.contains("--app"), "{}", unnamed.stderr);
}

/// More than a second: the Kubernetes API keeps times in whole seconds, and a pod started in
/// the same second as its link is given the benefit of the doubt.
async fn pause() {
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
}

/// The links' times a `--fake-state` file keeps.
fn link_times(state: &Path) -> Value {
    let file: Value = serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    file["link_times"].clone()
}

/// A Kubernetes API fake behind HTTPS for the CLI, with what a chart made an hour ago: a
/// ServiceAccount and a Deployment per service; its kubeconfig written where KUBECONFIG points.
async fn kube_for(
    c: &Clouds,
) -> (
    porter_identity::kube::fake::FakeKube,
    porter_identity::kube::fake::FakeKubeServer,
    PathBuf,
) {
    let kube = porter_identity::kube::fake::FakeKube::new();
    for service in ["api", "reports"] {
        kube.add_service(
            "prod",
            &format!("shop-{service}"),
            service,
            2,
            "2026-01-01T00:00:00Z",
        );
    }
    let server = kube.serve(loopback()).await.unwrap();
    let path = c.dir.join("kubeconfig");
    std::fs::write(&path, server.kubeconfig()).unwrap();
    (kube, server, path)
}

/// The Kubernetes side through the CLI, on the cluster KUBECONFIG names (as a user's): `apply
/// --kube` applies the annotations and the Azure label and flags the old pods, `verify` shows
/// them (exit 1), `restart` restarts exactly those workloads, `verify` is then clean; the
/// migration and node-pool commands run their plans; and the kubeconfig's token never shows.
#[tokio::test(flavor = "multi_thread")]
async fn the_kubernetes_side_through_kubeconfig() {
    let c = Clouds::start("kube").await;
    let file = c.porter_yaml("porter.yaml", false);
    let f = file.to_str().unwrap();
    let (kube, server, kubeconfig) = kube_for(&c).await;
    let token = server
        .kubeconfig()
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .to_owned();
    let cli = |args: &[&str]| {
        let mut cmd = c.cli(args);
        cmd.env("KUBECONFIG", &kubeconfig).env("RUST_LOG", "trace");
        cmd
    };

    let plan = run(cli(&["plan", "-f", f, "--kube"])).await;
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("would apply label azure.workload.identity/use=true on the pod template of Deployment prod/reports"), "{}", plan.stdout);
    let sa = |name: &str| {
        kube.get(&porter_identity::kube::fake::ObjectKey::new(
            "v1",
            "ServiceAccount",
            "prod",
            name,
        ))
        .unwrap()
    };
    assert!(
        sa("shop-reports")["metadata"].get("annotations").is_none(),
        "plan writes nothing"
    );

    let apply = run(cli(&["apply", "-f", f, "--kube"])).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let client_id = c
        .azure
        .identity("shop-rg", "reports-identity")
        .unwrap()
        .client_id;
    assert_eq!(
        sa("shop-reports")["metadata"]["annotations"]["azure.workload.identity/client-id"],
        client_id.as_str()
    );
    assert_eq!(
        sa("shop-reports")["metadata"]["annotations"]["iam.gke.io/gcp-service-account"],
        gcp_email().as_str()
    );
    assert!(
        apply.stdout.contains("kube.pods.predate_link"),
        "{}",
        apply.stdout
    );

    let before = run(cli(&["verify", "-f", f])).await;
    assert_eq!(before.code, 1, "{}{}", before.stdout, before.stderr);
    assert!(
        before.stdout.contains("error kube.pods.predate_link"),
        "{}",
        before.stdout
    );
    assert!(
        before
            .stdout
            .contains("kubectl rollout restart -n prod deployment api"),
        "{}",
        before.stdout
    );

    let dry = json(&run(cli(&["restart", "-f", f, "--dry-run", "-o", "json"])).await);
    assert_eq!(dry["restarted"][0]["name"], "api", "{dry}");
    assert_eq!(
        dry["restarted"].as_array().unwrap().len(),
        1,
        "only the workload whose pods predate: {dry}"
    );
    let restart = run(cli(&["restart", "-f", f])).await;
    assert_eq!(restart.code, 0, "{}", restart.stderr);
    assert!(
        restart
            .stdout
            .contains("restarted Deployment prod/api (2 pods older than the link)"),
        "{}",
        restart.stdout
    );

    let after = run(cli(&["verify", "-f", f])).await;
    assert_eq!(after.code, 0, "{}{}", after.stdout, after.stderr);
    assert!(
        after.stdout.contains("3 bindings verified, 0 with errors"),
        "{}",
        after.stdout
    );

    let migrate = run(cli(&["migrate-irsa", "-f", f, "--dry-run"])).await;
    assert_eq!(migrate.code, 0, "{}", migrate.stderr);
    assert!(
        migrate.stdout.contains("nothing to migrate"),
        "{}",
        migrate.stdout
    );
    let gke = run(cli(&[
        "gke-enable-workload-identity",
        "-f",
        f,
        "--pool",
        "default-pool",
        "--dry-run",
    ]))
    .await;
    assert_eq!(gke.code, 0, "{}", gke.stderr);
    assert!(
        gke.stdout.contains("preflight of node pool default-pool"),
        "{}",
        gke.stdout
    );

    for ran in [&plan, &apply, &before, &restart, &after, &migrate, &gke] {
        assert!(
            !ran.stdout.contains(&token) && !ran.stderr.contains(&token),
            "the kubeconfig's token shows"
        );
    }
    server.shutdown().await;
}

/// Every way AWS gives a pod its role, on the built-in fakes through the binary: a
/// cross-account target role on the association (the chain shown by plan and in the JSON),
/// and IRSA (no AWS write; the ServiceAccount gets `eks.amazonaws.com/role-arn` from the
/// cluster side), then the IRSA service dropped: its annotation goes.
#[tokio::test(flavor = "multi_thread")]
async fn aws_target_roles_and_irsa_on_the_fake_clouds() {
    let dir = std::env::temp_dir().join(unique("porter-identity-cli-aws-modes"));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let yaml = dir.join("porter.yaml");
    let target = "arn:aws:iam::444455556666:role/demo-data";
    std::fs::write(
        &yaml,
        format!(
            "services:
  - name: api
    connections:
      - type: awsRole
        role: demo-api-role
        targetRole: {target}
  - name: jobs
    connections:
      - type: awsRole
        role: demo-jobs-role
        mode: irsa
"
        ),
    )
    .unwrap();
    let fake = |args: &[&str]| on_fakes(&state, args);
    let file = yaml.to_str().unwrap();
    let plan = run(fake(&["plan", "-f", file])).await;
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains(&format!("demo-api-role -> {target}")),
        "the chain: {}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("eks.amazonaws.com/role-arn"),
        "{}",
        plan.stdout
    );

    let applied = json(
        &run(fake(&[
            "apply",
            "--kube",
            "--restart",
            "-f",
            file,
            "-o",
            "json",
        ]))
        .await,
    );
    assert_eq!(applied["ok"], true, "{applied}");
    let api = applied["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["service"] == "api")
        .unwrap();
    assert_eq!(api["connection"]["targetRole"], target, "{api}");
    assert_eq!(api["change"], "created", "{api}");
    let jobs_sa = applied["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "demo-jobs")
        .unwrap()
        .clone();
    assert_eq!(
        jobs_sa["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/demo-jobs-role",
        "{jobs_sa}"
    );
    assert!(
        jobs_sa["cluster"]["applied"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("eks.amazonaws.com/role-arn")),
        "{jobs_sa}"
    );
    let kept = std::fs::read_to_string(&state).unwrap();
    assert!(kept.contains("eks.amazonaws.com/role-arn"), "{kept}");
    let verified = run(fake(&["verify", "-f", file])).await;
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);

    // The next deploy drops the IRSA service: its link, and the annotation, go.
    let before = dir.join("before.yaml");
    std::fs::copy(&yaml, &before).unwrap();
    std::fs::write(
        &yaml,
        format!(
            "services:
  - name: api
    connections:
      - type: awsRole
        role: demo-api-role
        targetRole: {target}
"
        ),
    )
    .unwrap();
    let dropped = json(
        &run(fake(&[
            "apply",
            "--kube",
            "-f",
            file,
            "--previous",
            before.to_str().unwrap(),
            "-o",
            "json",
        ]))
        .await,
    );
    assert_eq!(dropped["ok"], true, "{dropped}");
    assert_eq!(
        dropped["removed"].as_array().map(Vec::len),
        Some(1),
        "{dropped}"
    );
    // The fake cluster, kept in the state file, no longer carries the annotation.
    let kept = std::fs::read_to_string(&state).unwrap();
    assert!(!kept.contains("eks.amazonaws.com/role-arn"), "{kept}");
}

/// `--aws-mode irsa` makes IRSA the default of connections that do not say; a malformed
/// `--aws-target-profile` or `--aws-mode` is a usage error (exit 2) naming the fix.
#[tokio::test(flavor = "multi_thread")]
async fn the_aws_mode_and_target_profile_flags() {
    let dir = std::env::temp_dir().join(unique("porter-identity-cli-aws-flags"));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let yaml = dir.join("porter.yaml");
    std::fs::write(
        &yaml,
        "services:\n  - name: jobs\n    connections:\n      - type: awsRole\n        role: demo-jobs-role\n",
    )
    .unwrap();
    let file = yaml.to_str().unwrap();
    let plan = run(on_fakes(
        &state,
        &["plan", "-f", file, "--aws-mode", "irsa"],
    ))
    .await;
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains("eks.amazonaws.com/role-arn"),
        "{}",
        plan.stdout
    );
    for (flag, value, says) in [
        ("--aws-mode", "fargate", "podIdentity"),
        ("--aws-target-profile", "data-readonly", "ACCOUNT=PROFILE"),
        ("--aws-target-profile", "4444=data", "12 digits"),
    ] {
        let bad = run(on_fakes(&state, &["plan", "-f", file, flag, value])).await;
        assert_eq!(bad.code, 2, "{flag} {value}: {}", bad.stderr);
        assert!(bad.stderr.contains(says), "{flag} {value}: {}", bad.stderr);
    }
}
