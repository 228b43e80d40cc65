//! The exact Google Cloud calls of each bind path, on a mock of the port.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use mockall::Sequence;
use mockall::predicate::{always, eq};
use porter_identity_core::{
    BindChange, Binding, Cloud, Connection, Error, ErrorKind, GcpServiceAccountEmail, RetryPolicy,
    UnbindOutcome, Workload, WorkloadIdentityProvider,
};

use crate::api::{Cluster, ClusterRef, MockGcpApi, Policy, PolicyBinding, ServiceAccount};
use crate::errors::{StatusCode, map_status};
use crate::names::WORKLOAD_IDENTITY_USER;
use crate::provider::{GcpWorkloadIdentityProvider, PoolSource};

const SA: &str = "shop-api@demo-project.iam.gserviceaccount.com";
const POOL: &str = "demo-project.svc.id.goog";
const MEMBER: &str = "serviceAccount:demo-project.svc.id.goog[shop/demo-api]";

fn binding(service: &str) -> Binding {
    Binding::new(
        Workload::for_service("shop", "demo", service).unwrap(),
        Connection::gcp_service_account(GcpServiceAccountEmail::parse(SA).unwrap()),
    )
}

fn cluster_ref() -> ClusterRef {
    ClusterRef {
        project: "demo-project".into(),
        location: "us-central1".into(),
        name: "prod".into(),
    }
}

fn policy(etag: &'static [u8], members: &[&str]) -> Policy {
    let mut bindings = vec![
        PolicyBinding::new()
            .set_role("roles/iam.serviceAccountUser")
            .set_members(["user:ana@example.com"]),
    ];
    if !members.is_empty() {
        bindings.push(
            PolicyBinding::new()
                .set_role(WORKLOAD_IDENTITY_USER)
                .set_members(members.iter().copied()),
        );
    }
    Policy::new()
        .set_version(3)
        .set_etag(bytes::Bytes::from_static(etag))
        .set_bindings(bindings)
}

/// A mock that answers the cluster once.
fn mock() -> MockGcpApi {
    let mut api = MockGcpApi::new();
    api.expect_get_cluster()
        .with(eq(cluster_ref()))
        .times(1)
        .returning(|_| {
            Ok(Cluster {
                name: "prod".into(),
                workload_pool: Some(POOL.into()),
                node_pools: Vec::new(),
            })
        });
    api
}

fn enabled_account(api: &mut MockGcpApi) {
    api.expect_get_service_account()
        .with(eq(SA))
        .times(1)
        .returning(|email| {
            Ok(ServiceAccount {
                email: email.into(),
                project_id: "demo-project".into(),
                unique_id: "1".into(),
                disabled: false,
            })
        });
}

fn provider(api: MockGcpApi) -> GcpWorkloadIdentityProvider {
    GcpWorkloadIdentityProvider::new(
        Arc::new(api),
        PoolSource::Gke(cluster_ref()),
        RetryPolicy::default()
            .initial_backoff(Duration::from_millis(1))
            .max_backoff(Duration::from_millis(2)),
        None,
    )
}

fn stale() -> Error {
    map_status(
        "setIamPolicy",
        SA,
        Some(StatusCode::Name("ABORTED")),
        Some(409),
        "There were concurrent policy changes.",
        None,
    )
}

#[tokio::test]
async fn create_reads_checks_then_writes_the_policy_with_its_etag() {
    let mut api = mock();
    let mut seq = Sequence::new();
    api.expect_get_iam_policy()
        .with(eq(SA))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(policy(b"e1", &[])));
    enabled_account(&mut api);
    api.expect_set_iam_policy()
        .withf(|email, p| {
            email == SA
                && p.etag.as_ref() == b"e1"
                && p.version == 3
                && p.bindings.len() == 2
                && p.bindings[0].role == "roles/iam.serviceAccountUser"
                && p.bindings[1].members == [MEMBER]
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, p| Ok(p));
    let outcome = provider(api).bind(&binding("api")).await.unwrap();
    assert_eq!(outcome.change, BindChange::Created);
}

#[tokio::test]
async fn unchanged_reads_once_and_writes_nothing() {
    let mut api = mock();
    api.expect_get_iam_policy()
        .times(1)
        .returning(|_| Ok(policy(b"e1", &[MEMBER])));
    api.expect_get_service_account().never();
    api.expect_set_iam_policy().never();
    let outcome = provider(api).bind(&binding("api")).await.unwrap();
    assert_eq!(outcome.change, BindChange::Unchanged);
}

#[tokio::test]
async fn a_stale_etag_rereads_and_redoes_the_edit_on_the_new_policy() {
    let mut api = mock();
    let reads = AtomicU32::new(0);
    api.expect_get_iam_policy().times(2).returning(move |_| {
        Ok(if reads.fetch_add(1, Ordering::SeqCst) == 0 {
            policy(b"e1", &[])
        } else {
            // Someone else added a member meanwhile.
            policy(b"e2", &["user:bob@example.com"])
        })
    });
    enabled_account(&mut api);
    let mut seq = Sequence::new();
    api.expect_set_iam_policy()
        .withf(|_, p| p.etag.as_ref() == b"e1")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(stale()));
    api.expect_set_iam_policy()
        .withf(|_, p| {
            p.etag.as_ref() == b"e2" && p.bindings[1].members == ["user:bob@example.com", MEMBER]
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, p| Ok(p));
    let outcome = provider(api).bind(&binding("api")).await.unwrap();
    assert_eq!(outcome.change, BindChange::Created);
}

#[tokio::test]
async fn the_identity_pool_error_names_the_pool_and_is_not_retried() {
    let mut api = mock();
    api.expect_get_iam_policy()
        .times(1)
        .returning(|_| Ok(policy(b"e1", &[])));
    enabled_account(&mut api);
    api.expect_set_iam_policy().times(1).returning(|email, _| {
        Err(map_status(
            "setIamPolicy",
            email,
            Some(StatusCode::Name("INVALID_ARGUMENT")),
            Some(400),
            "Identity Pool does not exist (demo-project.svc.id.goog). Please check that you specified a valid resource name.",
            None,
        ))
    });
    let e = provider(api).bind(&binding("api")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.cloud_name(), Some(Cloud::Gcp));
    assert!(e.to_string().contains("demo-project.svc.id.goog"), "{e}");
    assert!(e.to_string().contains("not enabled on any cluster"), "{e}");
}

#[tokio::test]
async fn concurrent_binds_to_one_service_account_coalesce() {
    let mut api = mock();
    enabled_account(&mut api);
    let stored = Arc::new(std::sync::Mutex::new(policy(b"e0", &[])));
    let read = stored.clone();
    api.expect_get_iam_policy()
        .returning(move |_| Ok(read.lock().unwrap().clone()));
    let written = stored.clone();
    api.expect_set_iam_policy()
        .with(eq(SA), always())
        .times(1)
        .returning(move |_, p| {
            *written.lock().unwrap() = p.clone();
            Ok(p)
        });
    let p = provider(api);
    let bindings: Vec<Binding> = (0..30).map(|i| binding(&format!("svc-{i}"))).collect();
    let results = join_all(bindings.iter().map(|b| p.bind(b))).await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_ok_and(|o| o.change == BindChange::Created))
    );
    assert_eq!(stored.lock().unwrap().bindings[1].members.len(), 30);
}

#[tokio::test]
async fn unbind_of_an_absent_member_writes_nothing() {
    let mut api = mock();
    api.expect_get_iam_policy()
        .times(1)
        .returning(|_| Ok(policy(b"e1", &["user:bob@example.com"])));
    api.expect_set_iam_policy().never();
    let outcome = provider(api).unbind(&binding("api")).await.unwrap();
    assert_eq!(outcome, UnbindOutcome::AlreadyAbsent);
}
