//! Leader failover with two controller processes, as two replicas of the Deployment run: the
//! `porter-identity-controller` binary, configured only through its flags and the environment a
//! pod would have, against one Kubernetes API fake (the Lease, the objects) and one GCP fake
//! (IAM, GKE) over HTTP. One leads and links; the other stands by and writes nothing; the leader
//! is killed and the other takes over within the lease's duration, writing no link twice; a
//! SIGTERM'd leader releases the lease and exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use porter_identity::gcp::fake::FakeGcp;
use porter_identity::kube::fake::FakeKube;
use porter_identity_controller::AppIdentity;
use support::{apply_file, apply_yaml, eventually, sample};

const LEADER: &str = "porter_identity_controller_leader";

const PROJECT: &str = "failover-123456";
const LEASE_NAMESPACE: &str = "porter-identity-system";
const WAIT: Duration = Duration::from_secs(30);

fn email(name: &str) -> String {
    format!("{name}-runner@{PROJECT}.iam.gserviceaccount.com")
}

fn app_yaml(name: &str) -> String {
    format!(
        "apiVersion: identity.porter.run/v1alpha1\nkind: AppIdentity\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  app: {name}\n  services:\n    - name: api\n      connections:\n        - type: gcpServiceAccount\n          serviceAccountEmail: {}\n  options: {{restart: true}}\n",
        email(name)
    )
}

/// One replica: the binary, and the address of its /metrics.
struct Replica {
    child: Child,
    listen: String,
}

impl Replica {
    fn start(identity: &str, env: &[(String, String)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_porter-identity-controller"))
            .args([
                "run",
                "--gke-cluster",
                &format!("{PROJECT}/us-central1/prod"),
                "--lease-duration",
                "3s",
                "--resync",
                "1h",
                "--identity",
                identity,
                "--listen",
                "127.0.0.1:0",
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("POD_NAMESPACE", LEASE_NAMESPACE)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the controller starts");
        // Its log says where it serves; the rest of the log is drained so it never blocks.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("addr=") {
                    let addr = line[at + 5..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    let _ = tx.send(addr);
                }
                eprintln!("[controller] {line}");
            }
        });
        let listen = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the controller logs its address");
        Replica { child, listen }
    }

    /// `/metrics`, by plain HTTP/1.0.
    fn metrics(&self) -> String {
        let mut s = TcpStream::connect(&self.listen).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    leases
        .get_opt("porter-identity-controller")
        .await
        .unwrap()?
        .spec?
        .holder_identity
}

async fn all_ready(client: &Client, names: &[&str]) -> bool {
    let apps: Api<AppIdentity> = Api::namespaced(client.clone(), "shop");
    for name in names {
        let Some(o) = apps.get_opt(name).await.unwrap() else {
            return false;
        };
        let ready = o
            .status
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_within_the_lease_and_no_link_is_written_twice() {
    let kube = FakeKube::new();
    for name in ["one", "two", "three", "four"] {
        kube.add_service(
            "shop",
            &format!("{name}-api"),
            &format!("{name}-api"),
            1,
            "2026-01-01T00:00:00Z",
        );
    }
    let server = kube.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = server.cluster().await.unwrap().client().clone();
    apply_file(&client, "crd.yaml").await;
    apply_yaml(
        &client,
        &format!("apiVersion: identity.porter.run/v1alpha1\nkind: IdentityPolicy\nmetadata: {{name: shop}}\nspec:\n  namespaces: [shop]\n  gcpServiceAccounts: [\"*@{PROJECT}.iam.gserviceaccount.com\"]\n"),
    )
    .await;
    for name in ["one", "two", "three"] {
        apply_yaml(&client, &app_yaml(name)).await;
    }

    let gcp = FakeGcp::new();
    gcp.add_gke_cluster(PROJECT, "us-central1", "prod");
    for name in ["one", "two", "three", "four"] {
        gcp.add_service_account(&email(name));
    }
    let google = porter_identity::gcp::fake::serve(gcp.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir: PathBuf =
        std::env::temp_dir().join(format!("porter-identity-failover-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    let key = dir.join("gcp-key.json");
    std::fs::write(&key, porter_identity::gcp::fake::SERVICE_ACCOUNT_KEY_JSON).unwrap();
    let google_url = format!("{}/", google.url());
    let env: Vec<(String, String)> = [
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM", google_url.clone()),
        (
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER",
            google_url.clone(),
        ),
        (
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER",
            google_url,
        ),
        ("GOOGLE_APPLICATION_CREDENTIALS", key.display().to_string()),
        // Nothing may reach the metadata servers, addresses outside 127.0.0.1.
        ("GCE_METADATA_HOST", "127.0.0.1:9".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    let a = Replica::start("replica-a", &env);
    eventually(WAIT, "replica-a leads and links the three apps", || async {
        (holder(&client).await.as_deref() == Some("replica-a")
            && all_ready(&client, &["one", "two", "three"]).await)
            .then_some(())
    })
    .await;
    assert_eq!(gcp.write_calls(), 3, "one setIamPolicy per link");

    // A second replica stands by: it does not lead and writes nothing.
    let b = Replica::start("replica-b", &env);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(holder(&client).await.as_deref(), Some("replica-a"));
    assert!(
        b.metrics().contains("porter_identity_controller_leader 0"),
        "{}",
        b.metrics()
    );
    assert!(a.metrics().contains("porter_identity_controller_leader 1"));
    assert_eq!(gcp.write_calls(), 3);

    // The leader dies: the other takes over within the lease's duration (3 s) and a retry.
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed = Instant::now();
    eventually(WAIT, "replica-b takes over", || async {
        (holder(&client).await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    let took = killed.elapsed();
    eprintln!("failover took {took:?}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert_eq!(sample(&b.metrics(), LEADER), Some(1.0));

    // The new leader serves new objects, and its first pass over the old ones wrote nothing.
    apply_yaml(&client, &app_yaml("four")).await;
    eventually(WAIT, "replica-b links the fourth app", || async {
        all_ready(&client, &["one", "two", "three", "four"])
            .await
            .then_some(())
    })
    .await;
    assert_eq!(
        gcp.write_calls(),
        4,
        "each link written once: {:?}",
        gcp.calls()
    );
    // Neither leader's first reconciles ran before it had read the policies.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "shop");
    let denied = events
        .list(&kube::api::ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("PolicyDenied"))
        .count();
    assert_eq!(denied, 0);
    for name in ["one", "two", "three", "four"] {
        assert_eq!(
            gcp.members(&email(name), porter_identity::gcp::WORKLOAD_IDENTITY_USER),
            vec![format!(
                "serviceAccount:{PROJECT}.svc.id.goog[shop/{name}-api]"
            )]
        );
    }

    // SIGTERM: the leader finishes, releases the lease and exits 0.
    b.terminate();
    let mut b = b;
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = b.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "replica-b did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(holder(&client).await, None, "the lease released");
    let _ = std::fs::remove_dir_all(&dir);
}
