//! Wire tests of the fake's HTTP face: the real `aws_sdk_eks::Client` (SigV4-signed requests,
//! rest-json parsing, error dispatch) against `porter_identity_aws::fake::serve` on
//! 127.0.0.1, and its JSON checked against the botocore model and the official example in
//! `testdata/api-examples/`.
#![cfg(feature = "fake")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_eks::Client;
use aws_sdk_eks::config::http::HttpResponse;
use aws_sdk_eks::config::retry::RetryConfig;
use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_eks::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eks::operation::create_pod_identity_association::CreatePodIdentityAssociationError;
use aws_sdk_eks::operation::delete_pod_identity_association::DeletePodIdentityAssociationError;
use aws_sdk_eks::operation::describe_addon::DescribeAddonError;
use aws_sdk_eks::operation::describe_cluster::DescribeClusterError;
use aws_sdk_eks::operation::describe_pod_identity_association::DescribePodIdentityAssociationError;
use aws_sdk_eks::operation::list_pod_identity_associations::ListPodIdentityAssociationsError;
use aws_sdk_eks::operation::update_pod_identity_association::UpdatePodIdentityAssociationError;
use aws_sdk_eks::types::{AddonIssueCode, AddonStatus, ClusterStatus};
use porter_identity_aws::api::POD_IDENTITY_AGENT_ADDON;
use porter_identity_aws::fake::{FakeAws, FakeServer, pods_trust_policy, serve};
use porter_identity_core::ErrorKind;
use serde_json::Value;

const ACCOUNT: &str = "111122223333";

/// A fake with cluster `prod` (agent installed), trusted roles `app` and `other`, and a role
/// `untrusted` whose trust policy names EC2 only; served on a free port.
async fn start() -> (FakeAws, FakeServer) {
    let aws = FakeAws::new(ACCOUNT, "us-east-1");
    aws.add_cluster("prod")
        .install_addon("prod", POD_IDENTITY_AGENT_ADDON, "ACTIVE")
        .add_role("app", &pods_trust_policy())
        .add_role("other", &pods_trust_policy())
        .add_role(
            "untrusted",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        );
    let server = serve(aws.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind 127.0.0.1:0");
    (aws, server)
}

fn client_with(server: &FakeServer, retry: RetryConfig) -> Client {
    let config = aws_sdk_eks::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(server.url())
        .retry_config(retry)
        .build();
    Client::from_conf(config)
}

/// One attempt per call, so the fake's counters equal the calls made.
fn client(server: &FakeServer) -> Client {
    client_with(server, RetryConfig::disabled())
}

async fn create(
    client: &Client,
    aws: &FakeAws,
    ns: &str,
    sa: &str,
    role: &str,
) -> aws_sdk_eks::types::PodIdentityAssociation {
    client
        .create_pod_identity_association()
        .cluster_name("prod")
        .namespace(ns)
        .service_account(sa)
        .role_arn(aws.role_arn(role))
        .tags("managed-by", "porter-identity")
        .send()
        .await
        .unwrap()
        .association
        .unwrap()
}

/// The HTTP status of an SDK error's raw response (0 when there was none).
fn status<E>(err: &SdkError<E, HttpResponse>) -> u16 {
    err.raw_response().map_or(0, |r| r.status().as_u16())
}

#[tokio::test]
async fn pod_identity_lifecycle_through_the_sdk() {
    let (aws, server) = start().await;
    let client = client(&server);

    let created = client
        .create_pod_identity_association()
        .cluster_name("prod")
        .namespace("shop")
        .service_account("api")
        .role_arn(aws.role_arn("app"))
        .client_request_token("token-1")
        .tags("managed-by", "porter-identity")
        .send()
        .await
        .unwrap()
        .association
        .unwrap();
    let id = created.association_id().unwrap().to_owned();
    assert!(id.starts_with("a-") && id.len() == 19, "{id}");
    assert_eq!(created.cluster_name(), Some("prod"));
    assert_eq!(created.namespace(), Some("shop"));
    assert_eq!(created.service_account(), Some("api"));
    assert_eq!(created.role_arn(), Some(aws.role_arn("app").as_str()));
    assert_eq!(
        created.association_arn(),
        Some(format!("arn:aws:eks:us-east-1:{ACCOUNT}:podidentityassociation/prod/{id}").as_str())
    );
    assert_eq!(
        created
            .tags()
            .unwrap()
            .get("managed-by")
            .map(String::as_str),
        Some("porter-identity")
    );
    assert!(created.created_at().unwrap().secs() > 1_600_000_000);
    assert_eq!(created.owner_arn(), None);

    // The same token again is a retry: same association, nothing new.
    let retried = client
        .create_pod_identity_association()
        .cluster_name("prod")
        .namespace("shop")
        .service_account("api")
        .role_arn(aws.role_arn("app"))
        .client_request_token("token-1")
        .tags("managed-by", "porter-identity")
        .send()
        .await
        .unwrap();
    assert_eq!(
        retried.association.unwrap().association_id(),
        Some(id.as_str())
    );

    let described = client
        .describe_pod_identity_association()
        .cluster_name("prod")
        .association_id(&id)
        .send()
        .await
        .unwrap()
        .association
        .unwrap();
    assert_eq!(described, created);

    let updated = client
        .update_pod_identity_association()
        .cluster_name("prod")
        .association_id(&id)
        .role_arn(aws.role_arn("other"))
        .send()
        .await
        .unwrap()
        .association
        .unwrap();
    assert_eq!(updated.role_arn(), Some(aws.role_arn("other").as_str()));
    assert_eq!(updated.association_id(), Some(id.as_str()));
    // The in-memory face sees what the HTTP face wrote.
    assert_eq!(aws.associations("prod")[0].role_arn, aws.role_arn("other"));

    let listed = client
        .list_pod_identity_associations()
        .cluster_name("prod")
        .namespace("shop")
        .service_account("api")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.associations().len(), 1);
    assert_eq!(listed.associations()[0].association_id(), Some(id.as_str()));
    assert_eq!(listed.next_token(), None);
    let none = client
        .list_pod_identity_associations()
        .cluster_name("prod")
        .namespace("blog")
        .send()
        .await
        .unwrap();
    assert!(none.associations().is_empty());

    let deleted = client
        .delete_pod_identity_association()
        .cluster_name("prod")
        .association_id(&id)
        .send()
        .await
        .unwrap()
        .association
        .unwrap();
    assert_eq!(deleted.association_id(), Some(id.as_str()));
    assert!(aws.associations("prod").is_empty());

    let err = client
        .describe_pod_identity_association()
        .cluster_name("prod")
        .association_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
    assert!(matches!(
        err.into_service_error(),
        DescribePodIdentityAssociationError::ResourceNotFoundException(_)
    ));
    let err = client
        .delete_pod_identity_association()
        .cluster_name("prod")
        .association_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        DeletePodIdentityAssociationError::ResourceNotFoundException(_)
    ));

    // Every HTTP request counted, by its AWS name.
    assert_eq!(aws.call_count("CreatePodIdentityAssociation"), 2);
    assert_eq!(aws.call_count("DescribePodIdentityAssociation"), 2);
    assert_eq!(aws.call_count("UpdatePodIdentityAssociation"), 1);
    assert_eq!(aws.call_count("ListPodIdentityAssociations"), 2);
    assert_eq!(aws.call_count("DeletePodIdentityAssociation"), 2);
    assert_eq!(aws.write_calls(), 5);
    server.shutdown().await;
}

#[tokio::test]
async fn list_paginates_with_max_results() {
    let (aws, server) = start().await;
    let client = client(&server);
    let mut ids = Vec::new();
    for sa in ["a", "b", "c"] {
        ids.push(
            create(&client, &aws, "shop", sa, "app")
                .await
                .association_id
                .unwrap(),
        );
    }
    create(&client, &aws, "elsewhere", "a", "app").await;
    aws.reset_calls();

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_pod_identity_associations()
            .cluster_name("prod")
            .namespace("shop")
            .max_results(1)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert_eq!(page.associations().len(), 1);
        seen.extend(
            page.associations()
                .iter()
                .map(|a| a.association_id().unwrap().to_owned()),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    assert_eq!(aws.call_count("ListPodIdentityAssociations"), 3);

    // The SDK's own paginator gets the same.
    let all: Vec<_> = client
        .list_pod_identity_associations()
        .cluster_name("prod")
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 4);

    // A token that EKS did not hand out, and a page size out of range, are rejected.
    let err = client
        .list_pod_identity_associations()
        .cluster_name("prod")
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        ListPodIdentityAssociationsError::InvalidParameterException(_)
    ));
    let err = client
        .list_pod_identity_associations()
        .cluster_name("prod")
        .max_results(101)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    assert!(matches!(
        err.into_service_error(),
        ListPodIdentityAssociationsError::InvalidParameterException(_)
    ));
}

#[tokio::test]
async fn describe_addon_found_and_not_found() {
    let (aws, server) = start().await;
    let client = client(&server);
    aws.install_addon("prod", POD_IDENTITY_AGENT_ADDON, "DEGRADED")
        .set_addon_health_issues(
            "prod",
            POD_IDENTITY_AGENT_ADDON,
            &[("InsufficientNumberOfReplicas", "The add-on is unhealthy")],
        );
    let addon = client
        .describe_addon()
        .cluster_name("prod")
        .addon_name(POD_IDENTITY_AGENT_ADDON)
        .send()
        .await
        .unwrap()
        .addon
        .unwrap();
    assert_eq!(addon.addon_name(), Some(POD_IDENTITY_AGENT_ADDON));
    assert_eq!(addon.cluster_name(), Some("prod"));
    assert_eq!(addon.status(), Some(&AddonStatus::Degraded));
    let issues = addon.health().unwrap().issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(
        issues[0].code(),
        Some(&AddonIssueCode::InsufficientNumberOfReplicas)
    );
    assert_eq!(issues[0].message(), Some("The add-on is unhealthy"));

    let err = client
        .describe_addon()
        .cluster_name("prod")
        .addon_name("vpc-cni")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
    let err = err.into_service_error();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    assert!(err.message().unwrap().contains("vpc-cni"), "{err:?}");
    assert!(matches!(
        err,
        DescribeAddonError::ResourceNotFoundException(_)
    ));
    assert_eq!(aws.call_count("DescribeAddon"), 2);
}

#[tokio::test]
async fn describe_cluster_through_the_sdk() {
    let (aws, server) = start().await;
    let client = client(&server);
    aws.set_cluster_status("prod", "UPDATING");
    let cluster = client
        .describe_cluster()
        .name("prod")
        .send()
        .await
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(cluster.name(), Some("prod"));
    assert_eq!(
        cluster.arn(),
        Some(format!("arn:aws:eks:us-east-1:{ACCOUNT}:cluster/prod").as_str())
    );
    assert_eq!(cluster.status(), Some(&ClusterStatus::Updating));
    assert!(cluster.created_at().is_some());
    let issuer = cluster
        .identity()
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .unwrap();
    assert!(
        issuer.starts_with("https://oidc.eks.us-east-1.amazonaws.com/id/"),
        "{issuer}"
    );

    let err = client
        .describe_cluster()
        .name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
    let err = err.into_service_error();
    assert_eq!(err.message(), Some("No cluster found for name: nope."));
    assert!(matches!(
        err,
        DescribeClusterError::ResourceNotFoundException(_)
    ));
}

#[tokio::test]
async fn eks_errors_surface_as_their_sdk_variants() {
    let (aws, server) = start().await;
    let client = client(&server);
    let first = create(&client, &aws, "shop", "api", "app").await;

    let send_create = |cluster: &'static str, sa: &'static str, role: &'static str| {
        client
            .create_pod_identity_association()
            .cluster_name(cluster)
            .namespace("shop")
            .service_account(sa)
            .role_arn(aws.role_arn(role))
            .send()
    };

    let err = send_create("prod", "api", "other").await.unwrap_err();
    assert_eq!(status(&err), 409);
    let err = err.into_service_error();
    assert!(
        err.message()
            .unwrap()
            .contains(first.association_id().unwrap())
    );
    assert!(matches!(
        err,
        CreatePodIdentityAssociationError::ResourceInUseException(_)
    ));

    let err = send_create("prod", "worker", "untrusted")
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    let err = err.into_service_error();
    assert!(
        err.message().unwrap().contains("Trust policy of role"),
        "{err:?}"
    );
    assert!(matches!(
        err,
        CreatePodIdentityAssociationError::InvalidParameterException(_)
    ));

    let err = send_create("prod", "worker", "no-such-role")
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        CreatePodIdentityAssociationError::InvalidParameterException(_)
    ));

    let err = send_create("nope", "worker", "app").await.unwrap_err();
    assert_eq!(status(&err), 404);
    assert!(matches!(
        err.into_service_error(),
        CreatePodIdentityAssociationError::ResourceNotFoundException(_)
    ));

    aws.set_association_limit(1);
    let err = send_create("prod", "worker", "app").await.unwrap_err();
    assert_eq!(status(&err), 400);
    assert!(matches!(
        err.into_service_error(),
        CreatePodIdentityAssociationError::ResourceLimitExceededException(_)
    ));

    let err = client
        .update_pod_identity_association()
        .cluster_name("prod")
        .association_id("a-0000000000000000x")
        .role_arn(aws.role_arn("app"))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        UpdatePodIdentityAssociationError::ResourceNotFoundException(_)
    ));
    let err = client
        .update_pod_identity_association()
        .cluster_name("prod")
        .association_id(first.association_id().unwrap())
        .role_arn(aws.role_arn("untrusted"))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        UpdatePodIdentityAssociationError::InvalidParameterException(_)
    ));

    // Nothing above changed the association.
    let now = aws.associations("prod");
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].role_arn, aws.role_arn("app"));
}

#[tokio::test]
async fn throttled_and_failed_responses_surface_with_their_codes() {
    let (aws, server) = start().await;
    let client = client(&server);

    aws.inject_failures(Some("DescribeCluster"), ErrorKind::Throttled, 1);
    let err = client
        .describe_cluster()
        .name("prod")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 429);
    let err = err.into_service_error();
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert_eq!(err.message(), Some("Rate exceeded"));
    // Not a modelled EKS error: the SDK exposes it by code, as the real adapter reads it.
    assert!(!matches!(
        err,
        DescribeClusterError::ResourceNotFoundException(_)
            | DescribeClusterError::ServerException(_)
    ));

    aws.inject_failures(
        Some("DescribePodIdentityAssociation"),
        ErrorKind::Unavailable,
        1,
    );
    let err = client
        .describe_pod_identity_association()
        .cluster_name("prod")
        .association_id("a-whatever")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 500);
    assert!(matches!(
        err.into_service_error(),
        DescribePodIdentityAssociationError::ServerException(_)
    ));

    // The SDK's standard retry recognises the throttling response and retries it.
    let retrying = client_with(
        &server,
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(10)),
    );
    aws.reset_calls()
        .inject_failures(Some("DescribeCluster"), ErrorKind::Throttled, 1);
    let cluster = retrying
        .describe_cluster()
        .name("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(cluster.cluster.unwrap().name(), Some("prod"));
    assert_eq!(aws.call_count("DescribeCluster"), 2);
}

// ---- raw HTTP: the JSON itself ---------------------------------------------------------

/// A GET over a plain socket, to read the JSON exactly as served (std I/O: no extra Tokio
/// features needed).
async fn raw_get(addr: SocketAddr, path: &str) -> (u16, String, Value) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap(),
    )
}

fn examples_dir() -> PathBuf {
    // The botocore excerpts this crate carries (see testdata/api-examples/SOURCES.md).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/api-examples");
    assert!(
        dir.is_dir(),
        "the official AWS API examples are missing: expected {}. These tests check the fake \
         against them and cannot run without.",
        dir.display()
    );
    dir
}

fn read_json(name: &str) -> Value {
    let path = examples_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every member of `example` is in `ours` with the same JSON type, recursively.
fn assert_has_members_of(example: &Value, ours: &Value, path: &str) {
    assert_eq!(
        json_type(example),
        json_type(ours),
        "{path}: the example has a {}, the fake serves a {}",
        json_type(example),
        json_type(ours)
    );
    match (example, ours) {
        (Value::Object(ex), Value::Object(our)) => {
            for (key, value) in ex {
                let Some(mine) = our.get(key) else {
                    panic!("{path}.{key}: in the official example, missing from the fake");
                };
                assert_has_members_of(value, mine, &format!("{path}.{key}"));
            }
        }
        (Value::Array(ex), Value::Array(our)) => {
            // An example that lists items needs a fake that serves some: an empty list would
            // pass any member check.
            if let Some(e) = ex.first() {
                let o = our.first().unwrap_or_else(|| {
                    panic!("{path}: the official example lists items, the fake serves none")
                });
                assert_has_members_of(e, o, &format!("{path}[0]"));
            }
        }
        _ => {}
    }
}

/// `value` conforms to botocore shape `shape`: every member it has is in the model, with the
/// model's type (timestamps as epoch-seconds numbers, the rest-json default), and enum
/// strings are among the model's values.
fn assert_conforms(model: &Value, shape: &str, value: &Value, path: &str) {
    let def = &model["shapes"][shape];
    assert!(def.is_object(), "{path}: shape {shape} is not in the model");
    let kind = def["type"].as_str().unwrap();
    match kind {
        "structure" => {
            let object = value
                .as_object()
                .unwrap_or_else(|| panic!("{path}: {shape} must be an object"));
            for (member, v) in object {
                let Some(m) = def["members"].get(member) else {
                    panic!("{path}.{member}: not a member of {shape} in the model");
                };
                assert_conforms(
                    model,
                    m["shape"].as_str().unwrap(),
                    v,
                    &format!("{path}.{member}"),
                );
            }
        }
        "list" => {
            for (i, item) in value
                .as_array()
                .unwrap_or_else(|| panic!("{path}: {shape} must be an array"))
                .iter()
                .enumerate()
            {
                assert_conforms(
                    model,
                    def["member"]["shape"].as_str().unwrap(),
                    item,
                    &format!("{path}[{i}]"),
                );
            }
        }
        "map" => {
            for (k, item) in value
                .as_object()
                .unwrap_or_else(|| panic!("{path}: {shape} must be an object"))
            {
                assert_conforms(
                    model,
                    def["value"]["shape"].as_str().unwrap(),
                    item,
                    &format!("{path}.{k}"),
                );
            }
        }
        "string" => {
            let s = value
                .as_str()
                .unwrap_or_else(|| panic!("{path}: {shape} must be a string"));
            if let Some(values) = def["enum"].as_array() {
                assert!(
                    values.iter().any(|v| v == s),
                    "{path}: `{s}` is not a value of {shape}"
                );
            }
        }
        "timestamp" => assert!(value.is_number(), "{path}: timestamps are epoch seconds"),
        "boolean" => assert!(value.is_boolean(), "{path}: {shape} must be a boolean"),
        "integer" | "long" => assert!(value.is_i64(), "{path}: {shape} must be an integer"),
        other => panic!("{path}: shape type {other} not handled by this test"),
    }
}

/// The output shape of an operation in the model.
fn output_shape<'a>(model: &'a Value, operation: &str) -> &'a str {
    model["operations"][operation]["output"]["shape"]
        .as_str()
        .unwrap_or_else(|| panic!("{operation} is not in the model excerpt"))
}

#[tokio::test]
async fn describe_cluster_json_has_the_members_of_the_official_example() {
    let examples = read_json("eks-examples-1.json");
    let example = &examples["examples"]["DescribeCluster"][0]["output"];
    assert!(
        example["cluster"].is_object(),
        "eks-examples-1.json has no DescribeCluster output"
    );
    let (_aws, server) = start().await;
    let (status, head, body) = raw_get(server.addr(), "/clusters/prod").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_has_members_of(example, &body, "DescribeCluster");
}

#[tokio::test]
async fn every_response_conforms_to_the_botocore_model() {
    let model = read_json("eks-pod-identity-model.json");
    let (aws, server) = start().await;
    let client = client(&server);
    aws.set_addon_health_issues(
        "prod",
        POD_IDENTITY_AGENT_ADDON,
        &[("AccessDenied", "no access")],
    );
    let created = create(&client, &aws, "shop", "api", "app").await;
    let id = created.association_id().unwrap();
    aws.add_fargate_profile(
        "prod",
        "serverless",
        &[("batch-*", &[]), ("shop", &[("compute", "fargate")])],
    );
    aws.add_addon_owned_association(
        "prod",
        "kube-system",
        "ebs-csi-controller-sa",
        &aws.role_arn("app"),
        "arn:aws:eks:us-east-1:111122223333:addon/prod/aws-ebs-csi-driver/x",
    );

    let addr = server.addr();
    for (operation, path) in [
        ("DescribeCluster", "/clusters/prod".to_owned()),
        (
            "DescribeAddon",
            format!("/clusters/prod/addons/{POD_IDENTITY_AGENT_ADDON}"),
        ),
        (
            "ListPodIdentityAssociations",
            "/clusters/prod/pod-identity-associations?maxResults=1".to_owned(),
        ),
        (
            "ListPodIdentityAssociations",
            "/clusters/prod/pod-identity-associations?namespace=kube-system".to_owned(),
        ),
        (
            "DescribePodIdentityAssociation",
            format!("/clusters/prod/pod-identity-associations/{id}"),
        ),
        (
            "ListFargateProfiles",
            "/clusters/prod/fargate-profiles".to_owned(),
        ),
        (
            "DescribeFargateProfile",
            "/clusters/prod/fargate-profiles/serverless".to_owned(),
        ),
    ] {
        let (status, _, body) = raw_get(addr, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_conforms(&model, output_shape(&model, operation), &body, operation);
    }

    // The list's summaries carry ownerArn, as EKS's do.
    let (_, _, owned) = raw_get(
        addr,
        "/clusters/prod/pod-identity-associations?namespace=kube-system",
    )
    .await;
    assert!(owned["associations"][0]["ownerArn"].is_string(), "{owned}");

    // Error bodies: the model's status, the code in x-amzn-errortype, a message.
    let (status, head, body) = raw_get(addr, "/clusters/nope").await;
    assert_eq!(status, 404);
    assert!(
        head.contains("x-amzn-errortype: resourcenotfoundexception"),
        "{head}"
    );
    assert_eq!(
        model["shapes"]["ResourceNotFoundException"]["error"]["httpStatusCode"],
        404
    );
    assert_eq!(body["message"], "No cluster found for name: nope.");
}

#[tokio::test]
async fn percent_encoded_path_segments_are_decoded() {
    let (aws, server) = start().await;
    let created = create(&client(&server), &aws, "shop", "api", "app").await;
    let id = created.association_id().unwrap();
    let encoded_id: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
    let (status, _, body) = raw_get(
        server.addr(),
        &format!("/clusters/pr%6Fd/pod-identity-associations/{encoded_id}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["association"]["associationId"], id);
    let (status, _, body) = raw_get(
        server.addr(),
        "/clusters/prod/pod-identity-associations?namespace=sh%6Fp&serviceAccount=ap%69",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["associations"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_server_stops_on_shutdown() {
    let (_aws, server) = start().await;
    let addr = server.addr();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    server.shutdown().await;
    let refused = tokio::task::spawn_blocking(move || std::net::TcpStream::connect(addr).is_err())
        .await
        .unwrap();
    assert!(refused, "still accepting connections after shutdown");
}

/// The port over the real SDK against the HTTP face: the target role, session tags and session
/// policy go out on Create and Update and come back with EKS's external ID; an update that
/// drops the target (`targetRoleArn: ""`) removes it and its external ID; a policy with
/// session tags on is refused as EKS refuses it.
#[tokio::test]
async fn target_role_session_tags_and_policy_through_the_port() {
    use porter_identity_aws::SdkApi;
    use porter_identity_aws::api::{
        AssociationSettings, CreateAssociation, EksIamApi, UpdateAssociation,
    };
    let (aws, server) = start().await;
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
            .region(aws_sdk_iam::config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(server.url())
            .build(),
    );
    let api = SdkApi::new(client(&server), iam);
    let target = "arn:aws:iam::444455556666:role/shop-data";
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::shop/*"}]}"#;
    let created = api
        .create_pod_identity_association(CreateAssociation {
            cluster: "prod".into(),
            namespace: "shop".into(),
            service_account: "api".into(),
            role_arn: aws.role_arn("app"),
            settings: AssociationSettings {
                target_role_arn: Some(target.into()),
                disable_session_tags: true,
                policy: Some(policy.into()),
            },
            client_request_token: "token-target".into(),
            ..CreateAssociation::default()
        })
        .await
        .unwrap();
    assert_eq!(created.settings.target_role_arn.as_deref(), Some(target));
    assert!(created.settings.disable_session_tags);
    assert_eq!(created.settings.policy.as_deref(), Some(policy));
    let external_id = created
        .external_id
        .clone()
        .expect("EKS makes an external ID");
    let described = api
        .describe_pod_identity_association("prod", &created.association_id)
        .await
        .unwrap();
    assert_eq!(described.external_id.as_deref(), Some(external_id.as_str()));

    // Session tags back on while the policy stays: EKS refuses it, nothing changes.
    let refused = api
        .update_pod_identity_association(UpdateAssociation {
            cluster: "prod".into(),
            association_id: created.association_id.clone(),
            role_arn: aws.role_arn("app"),
            disable_session_tags: Some(false),
            ..UpdateAssociation::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidInput, "{refused}");
    assert!(aws.associations("prod")[0].settings.disable_session_tags);

    // The target and the policy dropped, tags on: one update, in place.
    let plain = AssociationSettings::default();
    let updated = api
        .update_pod_identity_association(UpdateAssociation::to(
            "prod",
            &described,
            &aws.role_arn("app"),
            &plain,
        ))
        .await
        .unwrap();
    assert_eq!(updated.association_id, created.association_id);
    assert!(updated.settings.same_as(&plain), "{:?}", updated.settings);
    assert_eq!(updated.external_id, None);
}

#[tokio::test]
async fn fargate_profiles_through_the_sdk() {
    let (aws, server) = start().await;
    aws.add_fargate_profile("prod", "serverless", &[("shop", &[("compute", "fargate")])]);
    let client = client(&server);
    let listed = client
        .list_fargate_profiles()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.fargate_profile_names(), ["serverless"]);
    let described = client
        .describe_fargate_profile()
        .cluster_name("prod")
        .fargate_profile_name("serverless")
        .send()
        .await
        .unwrap();
    let profile = described.fargate_profile().unwrap();
    let selector = &profile.selectors()[0];
    assert_eq!(selector.namespace(), Some("shop"));
    assert_eq!(
        selector
            .labels()
            .and_then(|l| l.get("compute"))
            .map(String::as_str),
        Some("fargate")
    );
    let missing = client
        .describe_fargate_profile()
        .cluster_name("prod")
        .fargate_profile_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&missing), 404);
}
