//! What the in-memory and the wire tests share: the race of three deploy processes and a
//! foreign writer on one service account's IAM policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;
use porter_identity_core::{Binding, ErrorKind, WorkloadIdentityProvider};
use porter_identity_gcp::api::{GcpApi, PolicyBinding};
use porter_identity_gcp::fake::FakeGcp;
use porter_identity_gcp::{GcpWorkloadIdentityProvider, WORKLOAD_IDENTITY_USER};

/// Binds `bindings` (distinct workloads, all to service account `sa`) through `providers` in
/// turn, all at once, while someone else's tooling adds 20 members of its own with its own
/// read-modify-writes; then checks that every workload's member, every foreign member and the
/// policy's unrelated first binding are there. `member_of` gives a binding's member.
pub(crate) async fn race_on_one_service_account(
    gcp: &FakeGcp,
    sa: &str,
    providers: &[GcpWorkloadIdentityProvider],
    bindings: &[Binding],
    member_of: impl Fn(&Binding) -> String,
) {
    let unrelated = gcp.policy_json(sa).unwrap()["bindings"][0].clone();
    assert!(unrelated.is_object(), "set up an unrelated binding first");
    let foreign = async {
        let mut added = Vec::new();
        for n in 0..20 {
            let who = format!("user:foreign-{n}@example.com");
            loop {
                let mut policy = gcp.get_iam_policy(sa).await.unwrap();
                // Another tool adds a member to the same binding of the role.
                match policy
                    .bindings
                    .iter_mut()
                    .find(|b| b.role == WORKLOAD_IDENTITY_USER && b.condition.is_none())
                {
                    Some(b) => b.members.push(who.clone()),
                    None => policy.bindings.push(
                        PolicyBinding::new()
                            .set_role(WORKLOAD_IDENTITY_USER)
                            .set_members([who.clone()]),
                    ),
                }
                match gcp.set_iam_policy(sa, policy).await {
                    Ok(_) => break,
                    Err(e) if e.kind() == ErrorKind::Conflict => continue,
                    Err(e) => panic!("foreign writer: {e}"),
                }
            }
            added.push(who);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        added
    };
    let binds = join_all(
        bindings
            .iter()
            .enumerate()
            .map(|(i, b)| providers[i % providers.len()].bind(b)),
    );
    let (results, added) = tokio::join!(binds, foreign);
    for (b, r) in bindings.iter().zip(results) {
        r.unwrap_or_else(|e| panic!("{b}: {e}"));
    }
    let users: BTreeSet<String> = gcp.workload_identity_users(sa).into_iter().collect();
    for b in bindings {
        assert!(users.contains(&member_of(b)), "{b} lost");
    }
    for who in &added {
        assert!(users.contains(who), "the foreign writer's {who} was lost");
    }
    assert_eq!(users.len(), bindings.len() + added.len());
    assert_eq!(
        gcp.policy_json(sa).unwrap()["bindings"][0],
        unrelated,
        "unrelated binding untouched"
    );
}
