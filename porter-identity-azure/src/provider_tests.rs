//! The exact ARM calls of each bind path, on a mock of the port.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use mockall::Sequence;
use mockall::predicate::eq;
use porter_identity_core::{
    AzureIdentityName, AzureResourceGroup, BindChange, Binding, Cloud, Connection, Error,
    ErrorKind, RetryPolicy, UnbindOutcome, Workload, WorkloadIdentityProvider,
};

use crate::api::{
    CredentialPage, CredentialSpec, FederatedCredential, Identity, ManagedCluster, MockArmApi,
};
use crate::names::credential_name;
use crate::provider::{AzureWorkloadIdentityProvider, ClusterSource};

const ISSUER: &str = "https://eastus.oic.prod-aks.azure.com/tenant/prod/";
const SUBJECT: &str = "system:serviceaccount:shop:demo-api";
const AUDIENCE: &str = "api://AzureADTokenExchange";

fn binding() -> Binding {
    Binding::new(
        Workload::for_service("shop", "demo", "api").unwrap(),
        Connection::azure_managed_identity(
            AzureIdentityName::parse("api-id").unwrap(),
            AzureResourceGroup::parse("rg").unwrap(),
        ),
    )
}

fn credential(name: &str, audiences: &[&str]) -> FederatedCredential {
    FederatedCredential {
        name: name.into(),
        id: format!(
            "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/api-id/federatedIdentityCredentials/{name}"
        ),
        issuer: ISSUER.into(),
        subject: SUBJECT.into(),
        audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
    }
}

fn ours() -> String {
    credential_name(ISSUER, &binding().workload)
}

/// The AKS cluster, with its issuer on.
fn cluster() -> ManagedCluster {
    ManagedCluster {
        id: "/subscriptions/s/resourceGroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/prod".into(),
        name: "prod".into(),
        oidc_issuer_enabled: true,
        issuer_url: Some(ISSUER.into()),
        workload_identity_enabled: true,
    }
}

/// A mock that answers the cluster and the identity once each.
fn mock() -> MockArmApi {
    let mut api = MockArmApi::new();
    api.expect_get_managed_cluster()
        .with(eq("aks-rg"), eq("prod"))
        .times(1)
        .returning(|_, _| Ok(cluster()));
    api.expect_get_identity()
        .with(eq("rg"), eq("api-id"))
        .times(1)
        .returning(|_, name| {
            Ok(Identity {
                id: format!("/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"),
                name: name.into(),
                client_id: "client-guid".into(),
                principal_id: "principal-guid".into(),
                tenant_id: "tenant-guid".into(),
            })
        });
    api
}

fn lists(api: &mut MockArmApi, seq: &mut Sequence, held: Vec<FederatedCredential>) {
    api.expect_list_federated_credentials()
        .withf(|rg, id, next| rg == "rg" && id == "api-id" && next.is_none())
        .times(1)
        .in_sequence(seq)
        .returning(move |_, _, _| {
            Ok(CredentialPage {
                credentials: held.clone(),
                next_link: None,
            })
        });
}

fn is_our_spec(spec: &CredentialSpec) -> bool {
    spec.issuer == ISSUER && spec.subject == SUBJECT && spec.audiences == [AUDIENCE]
}

fn provider(api: MockArmApi) -> AzureWorkloadIdentityProvider {
    let retry = RetryPolicy::default()
        .initial_backoff(Duration::from_millis(1))
        .jitter_seed(3);
    AzureWorkloadIdentityProvider::new(
        Arc::new(api),
        ClusterSource::Aks {
            resource_group: "aks-rg".into(),
            name: "prod".into(),
        },
        retry,
        None,
    )
}

#[tokio::test]
async fn first_bind_creates_under_the_derived_name() {
    let mut api = mock();
    let mut seq = Sequence::new();
    lists(&mut api, &mut seq, vec![]);
    api.expect_put_federated_credential()
        .withf(|rg, id, name, spec| {
            rg == "rg" && id == "api-id" && name == ours() && is_our_spec(spec)
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, name, _| Ok(credential(name, &[AUDIENCE])));
    let outcome = provider(api).bind(&binding()).await.unwrap();
    assert_eq!(outcome.change, BindChange::Created);
    assert_eq!(
        outcome.service_account_patch.annotations["azure.workload.identity/client-id"],
        "client-guid"
    );
}

#[tokio::test]
async fn an_existing_credential_is_unchanged_without_writes() {
    let mut api = mock();
    lists(
        &mut api,
        &mut Sequence::new(),
        vec![credential(&ours(), &[AUDIENCE])],
    );
    // No put expectation: any write fails the test.
    let outcome = provider(api).bind(&binding()).await.unwrap();
    assert_eq!(outcome.change, BindChange::Unchanged);
}

#[tokio::test]
async fn a_credential_under_another_name_is_adopted() {
    let mut api = mock();
    lists(
        &mut api,
        &mut Sequence::new(),
        vec![credential("made-by-hand", &[AUDIENCE])],
    );
    let outcome = provider(api).bind(&binding()).await.unwrap();
    assert_eq!(outcome.change, BindChange::Unchanged);
    assert!(outcome.resource_id.ends_with("/made-by-hand"));
}

#[tokio::test]
async fn a_wrong_audience_is_fixed_in_place_under_its_own_name() {
    let mut api = mock();
    let mut seq = Sequence::new();
    lists(
        &mut api,
        &mut seq,
        vec![credential("made-by-hand", &["api://other"])],
    );
    api.expect_put_federated_credential()
        .withf(|_, _, name, spec| name == "made-by-hand" && is_our_spec(spec))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, name, _| Ok(credential(name, &[AUDIENCE])));
    let outcome = provider(api).bind(&binding()).await.unwrap();
    assert_eq!(
        outcome.change,
        BindChange::Updated {
            previous: "audiences api://other".into()
        }
    );
}

#[tokio::test]
async fn a_full_identity_is_refused_before_any_write() {
    let mut api = mock();
    let held: Vec<_> = (0..20)
        .map(|i| FederatedCredential {
            subject: format!("system:serviceaccount:other:sa-{i}"),
            ..credential(&format!("c{i}"), &[AUDIENCE])
        })
        .collect();
    lists(&mut api, &mut Sequence::new(), held);
    let err = provider(api).bind(&binding()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    assert!(
        err.to_string().contains("system:serviceaccount:other:sa-7"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn another_processs_concurrent_write_is_retried() {
    let mut api = mock();
    let mut seq = Sequence::new();
    lists(&mut api, &mut seq, vec![]);
    api.expect_put_federated_credential()
        .times(2)
        .in_sequence(&mut seq)
        .returning(|_, _, _, _| {
            Err(crate::arm::map_arm_error(
                "FederatedIdentityCredentials_CreateOrUpdate",
                409,
                None,
                br#"{"error":{"code":"ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity","message":"Too many Federated Identity Credentials are written concurrently"}}"#,
            ))
        });
    api.expect_put_federated_credential()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, name, _| Ok(credential(name, &[AUDIENCE])));
    let outcome = provider(api).bind(&binding()).await.unwrap();
    assert_eq!(outcome.change, BindChange::Created);
}

#[tokio::test]
async fn a_duplicate_written_meanwhile_under_another_name_is_adopted() {
    let mut api = mock();
    let mut seq = Sequence::new();
    lists(&mut api, &mut seq, vec![]);
    api.expect_put_federated_credential()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _, _| {
            Err(Error::cloud(
                ErrorKind::AlreadyExists,
                Cloud::Azure,
                "FederatedIdentityCredentials_CreateOrUpdate",
                "Issuer and subject combination already exists for this Managed Identity.",
            ))
        });
    lists(
        &mut api,
        &mut seq,
        vec![credential("other-process", &[AUDIENCE])],
    );
    let outcome = provider(api).bind(&binding()).await.unwrap();
    assert_eq!(outcome.change, BindChange::Unchanged);
    assert!(outcome.resource_id.ends_with("/other-process"));
}

#[tokio::test]
async fn another_apps_credential_is_never_written_or_deleted() {
    // app `demo-a` + service `pi`... any other marks: here the credential's name says service
    // `worker` of app `demo`.
    let theirs = credential_name(
        ISSUER,
        &Workload::new("shop", "demo-api", "demo", "worker").unwrap(),
    );
    let mut api = mock();
    lists(
        &mut api,
        &mut Sequence::new(),
        vec![credential(&theirs, &[AUDIENCE])],
    );
    let err = provider(api).bind(&binding()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.to_string().contains("service `worker` of app `demo`"),
        "{err}"
    );

    let mut api = MockArmApi::new();
    api.expect_get_managed_cluster()
        .returning(|_, _| Ok(cluster()));
    let theirs_too = theirs.clone();
    api.expect_list_federated_credentials()
        .returning(move |_, _, _| {
            Ok(CredentialPage {
                credentials: vec![credential(&theirs_too, &[AUDIENCE])],
                next_link: None,
            })
        });
    // No delete expectation.
    let err = provider(api).unbind(&binding()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[tokio::test]
async fn unbind_deletes_and_an_absent_credential_is_success() {
    let mut api = MockArmApi::new();
    api.expect_get_managed_cluster()
        .times(1)
        .returning(|_, _| Ok(cluster()));
    let mut seq = Sequence::new();
    lists(
        &mut api,
        &mut seq,
        vec![credential("made-by-hand", &[AUDIENCE])],
    );
    api.expect_delete_federated_credential()
        .with(eq("rg"), eq("api-id"), eq("made-by-hand"))
        .times(1)
        .in_sequence(&mut seq)
        // 204: deleted by someone else since the listing.
        .returning(|_, _, _| Ok(false));
    lists(&mut api, &mut seq, vec![]);
    let p = provider(api);
    assert_eq!(
        p.unbind(&binding()).await.unwrap(),
        UnbindOutcome::AlreadyAbsent
    );
    assert_eq!(
        p.unbind(&binding()).await.unwrap(),
        UnbindOutcome::AlreadyAbsent
    );
}

#[tokio::test]
async fn a_batch_reads_each_identity_and_lists_its_credentials_once() {
    let mut api = mock();
    let mut seq = Sequence::new();
    lists(&mut api, &mut seq, vec![]);
    api.expect_put_federated_credential()
        .times(3)
        .returning(|_, _, name, spec| {
            Ok(FederatedCredential {
                subject: spec.subject.clone(),
                ..credential(name, &[AUDIENCE])
            })
        });
    let bindings: Vec<Binding> = ["api", "worker", "cron"]
        .into_iter()
        .map(|service| {
            Binding::new(
                Workload::for_service("shop", "demo", service).unwrap(),
                binding().connection,
            )
        })
        .collect();
    for r in provider(api)
        .bind_all(&porter_identity_core::RunContext::apply(), &bindings)
        .await
    {
        assert_eq!(r.unwrap().change, BindChange::Created);
    }
}
