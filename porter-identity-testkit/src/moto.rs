//! A moto server on 127.0.0.1 and the real AWS SDK clients pointed at it.
//!
//! The server is the one named by `PORTER_IDENTITY_MOTO_URL` (see `scripts/moto start`), or
//! else one this test binary starts from `<repo>/.venv/bin/moto_server` on a free loopback
//! port, once per test binary. A missing venv fails the test: nothing is skipped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_eks::config::retry::RetryConfig;
use aws_sdk_eks::config::timeout::TimeoutConfig;
use aws_sdk_eks::config::{Credentials, SharedCredentialsProvider};

/// The environment variable naming an already running moto server.
pub const MOTO_URL_ENV: &str = "PORTER_IDENTITY_MOTO_URL";
/// The account moto puts every resource in.
pub const MOTO_ACCOUNT: &str = "123456789012";
/// The region the tests use.
pub const REGION: &str = "us-east-1";
/// How long a moto server this binary starts may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The EKS Pod Identity trust policy, as a user would write it.
pub const POD_IDENTITY_TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

/// A moto server this test binary started.
///
/// moto runs under a small `sh` watchdog that holds the read end of a pipe whose write end
/// ([`ChildStdin`]) lives in this process: Rust never drops statics, but the kernel closes
/// the pipe when the test binary exits (normally, on panic or when killed), and the watchdog
/// then stops moto. So no server outlives its test run.
struct OwnedServer {
    _watchdog: Child,
    _lifeline: ChildStdin,
}

struct Moto {
    url: String,
    _owned: Option<OwnedServer>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// The base URL of the moto server, starting one on first use when the environment names
/// none. Panics (failing the test) when moto cannot be had.
pub fn moto_url() -> &'static str {
    &MOTO
        .get_or_init(|| match std::env::var(MOTO_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => {
                let url = url.trim().trim_end_matches('/').to_owned();
                assert_loopback(&url);
                Moto { url, _owned: None }
            }
            _ => start_moto(),
        })
        .url
}

fn assert_loopback(url: &str) {
    // moto accepts any credentials: the tests only ever talk to the loopback interface.
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
        "{MOTO_URL_ENV}={url} must be an http://127.0.0.1:PORT URL"
    );
}

fn repo_root() -> PathBuf {
    // The workspace root holds scripts/moto and the venv it installs, one level above this crate.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|dir| dir.join("scripts/moto").exists())
        .map_or(here.clone(), PathBuf::from)
}

fn start_moto() -> Moto {
    let root = repo_root();
    let moto_server = root.join(".venv/bin/moto_server");
    assert!(
        moto_server.exists(),
        "moto is not installed ({} is missing): run scripts/moto install (scripts/test does \
         this), or set {MOTO_URL_ENV} to a running moto server",
        moto_server.display()
    );
    let log_dir = root.join("target");
    std::fs::create_dir_all(&log_dir).expect("create target/ for the moto log");
    // One log per test binary: several run at once (and two test runs may share a checkout).
    let log = log_dir.join(format!("moto-test-{}.log", std::process::id()));

    // The free port is found by binding port 0; another process could take it before moto
    // binds it, so a server that dies at start is retried on a new port.
    let mut last_failure = String::new();
    for _ in 0..3 {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(concat!(
                r#""$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 </dev/null & pid=$!; "#,
                // Returns when the test binary's end of the pipe closes, i.e. when it exits.
                r#"cat >/dev/null; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null"#
            ))
            .arg(&moto_server)
            .arg(port.to_string())
            .arg(&log)
            // AWS managed policies (AdministratorAccess, …) are only loaded on request.
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let lifeline = watchdog.stdin.take().expect("watchdog stdin is piped");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if answers(port) {
                return Moto {
                    url,
                    _owned: Some(OwnedServer {
                        _watchdog: watchdog,
                        _lifeline: lifeline,
                    }),
                };
            }
            if matches!(watchdog.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(lifeline); // stops moto if it is still starting
        let _ = watchdog.wait();
        last_failure = std::fs::read_to_string(&log).unwrap_or_default();
    }
    panic!(
        "moto_server did not answer on 127.0.0.1 within {START_TIMEOUT:?}; its log ({}):\n{last_failure}",
        log.display()
    );
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

/// Whether an HTTP server answers on the port (any status line will do).
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// The AWS configuration of the tests: static fake credentials, [`REGION`], the moto
/// endpoint for every service, no retries (moto is deterministic; a retry would hide a
/// mapping bug) and bounded timeouts (a hung server fails the test instead of hanging it).
pub fn sdk_config_at(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDMOTOTESTING00000",
            "moto-testing-secret-key",
            None,
            None,
            "porter-identity-tests",
        )))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .build()
}

/// [`sdk_config_at`] the moto server.
pub fn sdk_config() -> SdkConfig {
    sdk_config_at(moto_url())
}

/// A raw EKS client against moto, to arrange test state.
pub fn eks() -> aws_sdk_eks::Client {
    aws_sdk_eks::Client::new(&sdk_config())
}

/// A raw IAM client against moto, to arrange test state.
pub fn iam() -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&sdk_config())
}

/// A loopback URL nothing listens on.
pub fn closed_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// Percent-decodes a policy document as IAM returns it and reads it as JSON.
pub fn decode_policy(encoded: &str) -> serde_json::Value {
    let decoded = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .expect("policy document is UTF-8 once decoded");
    serde_json::from_str(&decoded).expect("policy document is JSON once decoded")
}

/// Creates an IAM role trusted by EKS Pod Identity; returns its ARN.
pub async fn create_pod_identity_role(name: &str) -> String {
    let out = iam()
        .create_role()
        .role_name(name)
        .assume_role_policy_document(POD_IDENTITY_TRUST_POLICY)
        .send()
        .await
        .expect("iam CreateRole on moto");
    out.role()
        .expect("CreateRole returns the role")
        .arn()
        .to_owned()
}
