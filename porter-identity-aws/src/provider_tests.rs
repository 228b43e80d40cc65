//! The exact cloud calls of each bind path, on a mock of the port.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use mockall::Sequence;
use mockall::predicate::eq;
use porter_identity_core::{
    BindChange, Binding, Cloud, Connection, Error, ErrorKind, PlanAction, RetryPolicy, RoleRef,
    UnbindOutcome, Workload, WorkloadIdentityProvider,
};

use crate::api::{
    Association, AssociationPage, AssociationSummary, ClusterInfo, MockEksIamApi, RoleInfo,
};
use crate::{AwsPodIdentityProvider, MANAGED_BY_VALUE, TAG_APP, TAG_MANAGED_BY, TAG_SERVICE};

const ACCOUNT: &str = "111122223333";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
const TRUST_NO_TAG: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

fn binding(service: &str, role: &str) -> Binding {
    Binding::new(
        Workload::for_service("shop", "demo", service).unwrap(),
        Connection::aws_role(RoleRef::parse(role).unwrap()),
    )
}

fn summary(id: &str, owner: Option<&str>) -> AssociationSummary {
    AssociationSummary {
        association_id: id.into(),
        association_arn: format!(
            "arn:aws:eks:us-east-1:{ACCOUNT}:podidentityassociation/prod/{id}"
        ),
        namespace: "shop".into(),
        service_account: "demo-api".into(),
        owner_arn: owner.map(str::to_owned),
    }
}

/// An association made by porter-identity for service `api` of app `demo`.
fn association(id: &str, role: &str) -> Association {
    tagged(id, role, "demo", "api")
}

/// An association made by porter-identity for service `service` of app `app`.
fn tagged(id: &str, role: &str, app: &str, service: &str) -> Association {
    Association {
        tags: [
            (TAG_MANAGED_BY, MANAGED_BY_VALUE),
            (TAG_APP, app),
            (TAG_SERVICE, service),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..untagged(id, role)
    }
}

/// An association made by hand or another tool: no porter-identity tags.
fn untagged(id: &str, role: &str) -> Association {
    Association {
        association_id: id.into(),
        association_arn: format!(
            "arn:aws:eks:us-east-1:{ACCOUNT}:podidentityassociation/prod/{id}"
        ),
        namespace: "shop".into(),
        service_account: "demo-api".into(),
        role_arn: role_arn(role),
        owner_arn: None,
        tags: Default::default(),
        changed_at: None,
        ..Association::default()
    }
}

fn page(associations: Vec<AssociationSummary>) -> AssociationPage {
    AssociationPage {
        associations,
        next_token: None,
    }
}

/// A mock that answers DescribeCluster and GetRole (trust policy `trust`) once each.
fn mock_with_role(role: &'static str, trust: &'static str) -> MockEksIamApi {
    let mut api = MockEksIamApi::new();
    api.expect_describe_cluster()
        .with(eq("prod"))
        .times(1)
        .returning(|_| {
            Ok(ClusterInfo {
                name: "prod".into(),
                arn: format!("arn:aws:eks:us-east-1:{ACCOUNT}:cluster/prod"),
                status: "ACTIVE".into(),
                ..ClusterInfo::default()
            })
        });
    api.expect_get_role()
        .with(eq(role))
        .times(1)
        .returning(move |name| {
            Ok(RoleInfo {
                name: name.into(),
                arn: role_arn(name),
                assume_role_policy_document: trust.into(),
            })
        });
    api
}

fn provider(api: MockEksIamApi) -> AwsPodIdentityProvider {
    let retry = RetryPolicy::default()
        .initial_backoff(Duration::from_millis(1))
        .jitter_seed(5);
    AwsPodIdentityProvider::new("prod", Arc::new(api), retry).unwrap()
}

/// One filtered listing of service account `demo-api` (what a bind of one binding makes).
fn list_returns(api: &mut MockEksIamApi, seq: &mut Sequence, found: Vec<AssociationSummary>) {
    api.expect_list_pod_identity_associations()
        .withf(|c, ns, sa, token| {
            c == "prod" && *ns == Some("shop") && *sa == Some("demo-api") && token.is_none()
        })
        .times(1)
        .in_sequence(seq)
        .returning(move |_, _, _, _| Ok(page(found.clone())));
}

#[tokio::test]
async fn first_bind_creates_with_token_and_tags() {
    let mut api = mock_with_role("api-role", TRUST);
    let mut seq = Sequence::new();
    list_returns(&mut api, &mut seq, vec![]);
    api.expect_create_pod_identity_association()
        .withf(|input| {
            input.cluster == "prod"
                && input.namespace == "shop"
                && input.service_account == "demo-api"
                && input.role_arn == role_arn("api-role")
                && !input.client_request_token.is_empty()
                && input.tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
                && input.tags.get(TAG_APP).map(String::as_str) == Some("demo")
                && input.tags.get(TAG_SERVICE).map(String::as_str) == Some("api")
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(association("a-1", "api-role")));
    let outcome = provider(api)
        .bind(&binding("api", "api-role"))
        .await
        .unwrap();
    assert_eq!(outcome.change, BindChange::Created);
    assert!(outcome.resource_id.ends_with("/a-1"));
    assert!(outcome.service_account_patch.annotations.is_empty());
    assert!(outcome.service_account_patch.needs_pod_restart);
}

#[tokio::test]
async fn same_role_is_unchanged_without_writes() {
    let mut api = mock_with_role("api-role", TRUST);
    let mut seq = Sequence::new();
    list_returns(&mut api, &mut seq, vec![summary("a-1", None)]);
    api.expect_describe_pod_identity_association()
        .with(eq("prod"), eq("a-1"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(association("a-1", "api-role")));
    // No create/update/delete expectation: any write fails the test.
    let outcome = provider(api)
        .bind(&binding("api", "api-role"))
        .await
        .unwrap();
    assert_eq!(outcome.change, BindChange::Unchanged);
    assert!(!outcome.service_account_patch.needs_pod_restart);
}

#[tokio::test]
async fn other_role_is_updated_in_place() {
    let mut api = mock_with_role("new-role", TRUST);
    let mut seq = Sequence::new();
    list_returns(&mut api, &mut seq, vec![summary("a-1", None)]);
    api.expect_describe_pod_identity_association()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(association("a-1", "old-role")));
    api.expect_update_pod_identity_association()
        .withf(|u| {
            u.cluster == "prod" && u.association_id == "a-1" && u.role_arn == role_arn("new-role")
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(association("a-1", "new-role")));
    let outcome = provider(api)
        .bind(&binding("api", "new-role"))
        .await
        .unwrap();
    assert_eq!(
        outcome.change,
        BindChange::Updated {
            previous: role_arn("old-role")
        }
    );
}

#[tokio::test]
async fn create_race_adopts_the_winner() {
    let mut api = mock_with_role("api-role", TRUST);
    let mut seq = Sequence::new();
    list_returns(&mut api, &mut seq, vec![]);
    api.expect_create_pod_identity_association()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| {
            Err(Error::cloud(
                ErrorKind::AlreadyExists,
                Cloud::Aws,
                "CreatePodIdentityAssociation",
                "Association already exists",
            ))
        });
    list_returns(&mut api, &mut seq, vec![summary("a-9", None)]);
    api.expect_describe_pod_identity_association()
        .with(eq("prod"), eq("a-9"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(association("a-9", "api-role")));
    let outcome = provider(api)
        .bind(&binding("api", "api-role"))
        .await
        .unwrap();
    assert_eq!(outcome.change, BindChange::Unchanged);
    assert!(outcome.resource_id.ends_with("/a-9"));
}

#[tokio::test]
async fn create_race_with_other_role_updates_the_winner() {
    let mut api = mock_with_role("api-role", TRUST);
    let mut seq = Sequence::new();
    list_returns(&mut api, &mut seq, vec![]);
    api.expect_create_pod_identity_association()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| {
            Err(Error::cloud(
                ErrorKind::AlreadyExists,
                Cloud::Aws,
                "CreatePodIdentityAssociation",
                "in use",
            ))
        });
    list_returns(&mut api, &mut seq, vec![summary("a-9", None)]);
    api.expect_describe_pod_identity_association()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(association("a-9", "stale-role")));
    api.expect_update_pod_identity_association()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(association("a-9", "api-role")));
    let outcome = provider(api)
        .bind(&binding("api", "api-role"))
        .await
        .unwrap();
    assert!(matches!(outcome.change, BindChange::Updated { .. }));
}

#[tokio::test]
async fn addon_owned_association_is_refused_untouched() {
    // Only the listing is expected: the refusal ends the bind before the role and cluster
    // reads beside it are made (a mock call without an expectation fails the test).
    let mut api = MockEksIamApi::new();
    let mut seq = Sequence::new();
    let owner = "arn:aws:eks:us-east-1:111122223333:addon/prod/aws-ebs-csi-driver/x";
    list_returns(&mut api, &mut seq, vec![summary("a-1", Some(owner))]);
    let p = provider(api);
    let err = p.bind(&binding("api", "api-role")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains(owner), "{err}");
    assert!(err.fix().unwrap().contains("own service account"), "{err}");
}

#[tokio::test]
async fn addon_owned_association_is_not_deleted_by_unbind() {
    let mut api = MockEksIamApi::new();
    let owner = "arn:aws:eks:us-east-1:111122223333:addon/prod/vpc-cni/x";
    let mut seq = Sequence::new();
    list_returns(&mut api, &mut seq, vec![summary("a-1", Some(owner))]);
    let err = provider(api)
        .unbind(&binding("api", "api-role"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[tokio::test]
async fn unbind_deletes_and_absent_is_success() {
    let mut api = MockEksIamApi::new();
    let mut seq = Sequence::new();
    list_returns(&mut api, &mut seq, vec![summary("a-1", None)]);
    api.expect_describe_pod_identity_association()
        .with(eq("prod"), eq("a-1"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(association("a-1", "api-role")));
    api.expect_delete_pod_identity_association()
        .with(eq("prod"), eq("a-1"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    list_returns(&mut api, &mut seq, vec![]);
    let p = provider(api);
    let b = binding("api", "api-role");
    assert!(matches!(
        p.unbind(&b).await.unwrap(),
        UnbindOutcome::Deleted { .. }
    ));
    assert_eq!(p.unbind(&b).await.unwrap(), UnbindOutcome::AlreadyAbsent);
}

#[tokio::test]
async fn broken_trust_policy_fails_before_any_write() {
    let mut api = mock_with_role("api-role", TRUST_NO_TAG);
    // The listing is a read and runs beside the role check; there is no create expectation:
    // the check must stop bind before any write.
    list_returns(&mut api, &mut Sequence::new(), vec![]);
    let err = provider(api)
        .bind(&binding("api", "api-role"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("sts:TagSession"), "{text}");
    assert!(
        err.fix().unwrap().contains("pods.eks.amazonaws.com"),
        "{err}"
    );
}

#[tokio::test]
async fn foreign_account_arn_is_refused_without_get_role() {
    let mut api = MockEksIamApi::new();
    list_returns(&mut api, &mut Sequence::new(), vec![]);
    api.expect_describe_cluster().times(1).returning(|_| {
        Ok(ClusterInfo {
            name: "prod".into(),
            arn: format!("arn:aws:eks:us-east-1:{ACCOUNT}:cluster/prod"),
            status: "ACTIVE".into(),
            ..ClusterInfo::default()
        })
    });
    let err = provider(api)
        .bind(&binding("api", "arn:aws:iam::999999999999:role/elsewhere"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("999999999999"), "{err}");
}

#[tokio::test]
async fn missing_role_names_the_service_and_the_fix() {
    let mut api = MockEksIamApi::new();
    list_returns(&mut api, &mut Sequence::new(), vec![]);
    api.expect_describe_cluster().times(1).returning(|_| {
        Ok(ClusterInfo {
            name: "prod".into(),
            arn: format!("arn:aws:eks:us-east-1:{ACCOUNT}:cluster/prod"),
            status: "ACTIVE".into(),
            ..ClusterInfo::default()
        })
    });
    api.expect_get_role().times(1).returning(|_| {
        Err(Error::cloud(
            ErrorKind::NotFound,
            Cloud::Aws,
            "GetRole",
            "The role with name ghost cannot be found.",
        ))
    });
    let err = provider(api)
        .bind(&binding("api", "ghost"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("service api"), "{err}");
    assert!(err.fix().unwrap().contains("sts:TagSession"), "{err}");
}

#[tokio::test]
async fn role_is_read_once_per_provider() {
    // mock_with_role expects GetRole exactly once, for two binds of different services.
    let mut api = mock_with_role("shared-role", TRUST);
    api.expect_list_pod_identity_associations()
        .times(2)
        .returning(|_, _, _, _| Ok(page(vec![])));
    api.expect_create_pod_identity_association()
        .times(2)
        .returning(|input| {
            let mut a = association("a-x", "shared-role");
            a.service_account = input.service_account;
            Ok(a)
        });
    let p = provider(api);
    p.bind(&binding("api", "shared-role")).await.unwrap();
    p.bind(&binding("worker", "shared-role")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried() {
    let mut api = mock_with_role("api-role", TRUST);
    let mut seq = Sequence::new();
    api.expect_list_pod_identity_associations()
        .times(2)
        .in_sequence(&mut seq)
        .returning(|_, _, _, _| {
            Err(Error::cloud(
                ErrorKind::Throttled,
                Cloud::Aws,
                "ListPodIdentityAssociations",
                "Rate exceeded",
            ))
        });
    list_returns(&mut api, &mut seq, vec![]);
    api.expect_create_pod_identity_association()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| {
            Err(Error::cloud(
                ErrorKind::Unavailable,
                Cloud::Aws,
                "CreatePodIdentityAssociation",
                "ServerException",
            ))
        });
    api.expect_create_pod_identity_association()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(association("a-1", "api-role")));
    let outcome = provider(api)
        .bind(&binding("api", "api-role"))
        .await
        .unwrap();
    assert_eq!(outcome.change, BindChange::Created);
}

#[tokio::test(start_paused = true)]
async fn throttling_gives_up_after_max_attempts() {
    let mut api = mock_with_role("api-role", TRUST);
    api.expect_list_pod_identity_associations()
        .times(3)
        .returning(|_, _, _, _| {
            Err(Error::cloud(
                ErrorKind::Throttled,
                Cloud::Aws,
                "ListPodIdentityAssociations",
                "Rate exceeded",
            ))
        });
    let retry = RetryPolicy::default().max_attempts(3).jitter_seed(2);
    let p = AwsPodIdentityProvider::new("prod", Arc::new(api), retry).unwrap();
    let err = p.bind(&binding("api", "api-role")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn plan_reads_only() {
    let mut api = mock_with_role("new-role", TRUST);
    let mut seq = Sequence::new();
    list_returns(&mut api, &mut seq, vec![summary("a-1", None)]);
    api.expect_describe_pod_identity_association()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(association("a-1", "old-role")));
    let plan = provider(api)
        .plan(&binding("api", "new-role"))
        .await
        .unwrap();
    assert_eq!(
        plan.action,
        PlanAction::Update {
            current: role_arn("old-role")
        }
    );
    assert!(
        plan.description.contains("old-role"),
        "{}",
        plan.description
    );
}

#[tokio::test]
async fn other_cloud_is_invalid_input_without_calls() {
    let p = provider(MockEksIamApi::new());
    let b = Binding::new(
        Workload::for_service("shop", "demo", "api").unwrap(),
        Connection::gcp_service_account(
            "api-sa@my-project.iam.gserviceaccount.com".parse().unwrap(),
        ),
    );
    assert_eq!(
        p.bind(&b).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        p.unbind(&b).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        p.verify(&b).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        p.plan(&b).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

// ---- the ownership guard -------------------------------------------------------------------

/// A mock whose service account `demo-api` has association a-1 (role `api-role`) described as
/// `found`, with no write expected: any write fails the test.
fn mock_with_association(found: Association, role_calls: bool) -> MockEksIamApi {
    let mut api = if role_calls {
        mock_with_role("new-role", TRUST)
    } else {
        MockEksIamApi::new()
    };
    api.expect_list_pod_identity_associations()
        .returning(|_, _, _, _| Ok(page(vec![summary("a-1", None)])));
    api.expect_describe_pod_identity_association()
        .with(eq("prod"), eq("a-1"))
        .returning(move |_, _| Ok(found.clone()));
    api
}

#[tokio::test]
async fn another_apps_association_is_never_changed_or_deleted() {
    // App `demo-api-x`'s services can derive the same service account name; here the tags say
    // the association was made for service `api` of app `shop`.
    for (who, found) in [
        ("another app", tagged("a-1", "api-role", "shop", "api")),
        (
            "another service of this app",
            tagged("a-1", "api-role", "demo", "worker"),
        ),
    ] {
        let b = binding("api", "new-role");
        let err = provider(mock_with_association(found.clone(), true))
            .bind(&b)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "bind vs {who}: {err}");
        let owner_app = found.tags[TAG_APP].as_str();
        let owner_service = found.tags[TAG_SERVICE].as_str();
        assert!(
            err.to_string()
                .contains(&format!("service `{owner_service}` of app `{owner_app}`")),
            "bind vs {who} names the owner: {err}"
        );
        let fix = err.fix().unwrap();
        assert!(
            fix.contains("rename") && fix.contains("explicit service account"),
            "{fix}"
        );

        let err = provider(mock_with_association(found.clone(), true))
            .plan(&b)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "plan vs {who}: {err}");

        let err = provider(mock_with_association(found.clone(), false))
            .unbind(&b)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "unbind vs {who}: {err}");
    }
}

#[tokio::test]
async fn an_untagged_association_is_adopted() {
    let mut api = mock_with_association(untagged("a-1", "old-role"), true);
    api.expect_update_pod_identity_association()
        .withf(|u| u.association_id == "a-1" && u.role_arn == role_arn("new-role"))
        .times(1)
        .returning(|_| Ok(untagged("a-1", "new-role")));
    let outcome = provider(api)
        .bind(&binding("api", "new-role"))
        .await
        .unwrap();
    assert!(matches!(outcome.change, BindChange::Updated { .. }));

    let mut api = mock_with_association(untagged("a-1", "old-role"), false);
    api.expect_delete_pod_identity_association()
        .times(1)
        .returning(|_, _| Ok(()));
    let outcome = provider(api)
        .unbind(&binding("api", "new-role"))
        .await
        .unwrap();
    assert!(matches!(outcome, UnbindOutcome::Deleted { .. }));
}

#[tokio::test]
async fn a_reconcile_keeps_another_apps_association_named_by_the_previous_deploy() {
    let mut api = MockEksIamApi::new();
    api.expect_list_pod_identity_associations()
        .withf(|_, ns, sa, token| *ns == Some("shop") && sa.is_none() && token.is_none())
        .times(1)
        .returning(|_, _, _, _| Ok(page(vec![summary("a-1", None)])));
    api.expect_describe_pod_identity_association()
        .times(1)
        .returning(|_, _| Ok(tagged("a-1", "api-role", "shop", "api")));
    // No delete expectation: removing it fails the test.
    let p = provider(api);
    let report = porter_identity_core::Reconciler::new("demo", "shop")
        .provider(&p)
        .desired_bindings([])
        .previous_bindings([binding("api", "api-role")])
        .run()
        .await
        .unwrap();
    assert!(report.removed.is_empty(), "{report}");
    assert_eq!(report.kept.len(), 1, "{report}");
    assert!(report.kept[0].reason.contains("app `shop`"), "{report}");
}

// ---- batches ---------------------------------------------------------------------------------

#[tokio::test]
async fn bind_all_lists_the_namespace_once_and_describes_only_the_batch() {
    let mut api = mock_with_role("api-role", TRUST);
    let sa = |name: &str, id: &str| AssociationSummary {
        service_account: name.into(),
        ..summary(id, None)
    };
    // Two pages of the namespace: the batch's `demo-api` and `demo-worker`, and another app's
    // `other-x`, which is never described.
    api.expect_list_pod_identity_associations()
        .withf(|_, ns, sa, token| *ns == Some("shop") && sa.is_none() && token.is_none())
        .times(1)
        .returning(move |_, _, _, _| {
            Ok(AssociationPage {
                associations: vec![sa("demo-api", "a-1"), sa("other-x", "a-9")],
                next_token: Some("page-2".into()),
            })
        });
    api.expect_list_pod_identity_associations()
        .withf(|_, ns, sa, token| {
            *ns == Some("shop") && sa.is_none() && token.as_deref() == Some("page-2")
        })
        .times(1)
        .returning(move |_, _, _, _| Ok(page(vec![sa("demo-worker", "a-2")])));
    api.expect_describe_pod_identity_association()
        .with(eq("prod"), eq("a-1"))
        .times(1)
        .returning(|_, _| Ok(association("a-1", "api-role")));
    api.expect_describe_pod_identity_association()
        .with(eq("prod"), eq("a-2"))
        .times(1)
        .returning(|_, _| {
            Ok(Association {
                service_account: "demo-worker".into(),
                ..tagged("a-2", "old-role", "demo", "worker")
            })
        });
    api.expect_update_pod_identity_association()
        .withf(|u| u.association_id == "a-2")
        .times(1)
        .returning(|_| Ok(tagged("a-2", "api-role", "demo", "worker")));
    api.expect_create_pod_identity_association()
        .withf(|input| input.service_account == "demo-cron")
        .times(1)
        .returning(|_| Ok(tagged("a-3", "api-role", "demo", "cron")));
    let bindings = [
        binding("api", "api-role"),
        binding("worker", "api-role"),
        binding("cron", "api-role"),
    ];
    let results = provider(api)
        .bind_all(&porter_identity_core::RunContext::apply(), &bindings)
        .await;
    let changes: Vec<_> = results.into_iter().map(|r| r.unwrap().change).collect();
    assert_eq!(changes[0], BindChange::Unchanged);
    assert!(matches!(changes[1], BindChange::Updated { .. }));
    assert_eq!(changes[2], BindChange::Created);
}

#[tokio::test]
async fn bind_all_refuses_a_second_role_for_one_service_account() {
    // The first binding is made; the second, another role for the same service account, is
    // refused before any call of its own (there is one association per service account).
    let mut api = mock_with_role("api-role", TRUST);
    list_returns(&mut api, &mut Sequence::new(), vec![]);
    api.expect_create_pod_identity_association()
        .withf(|input| input.role_arn == role_arn("api-role"))
        .times(1)
        .returning(|_| Ok(association("a-1", "api-role")));
    let results = provider(api)
        .bind_all(
            &porter_identity_core::RunContext::apply(),
            &[binding("api", "api-role"), binding("api", "other-role")],
        )
        .await;
    assert_eq!(results[0].as_ref().unwrap().change, BindChange::Created);
    let second = results[1].as_ref().unwrap_err();
    assert_eq!(second.kind(), ErrorKind::InvalidInput, "{second}");
    assert!(second.to_string().contains("bindings[0]"), "{second}");
}
