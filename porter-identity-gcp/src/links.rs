//! The read-modify-write of a service account's IAM policy, coalesced: every edit of one
//! policy that arrives while a cycle is in flight (concurrent binds, a whole batch) is applied
//! by the next single cycle, so N workloads on one service account cost one or two
//! read-modify-writes, not N racing ones.
//!
//! A cycle reads the policy (version 3), applies its edits, and — only when something changed
//! — checks the service account once per provider and writes the policy with the etag read.
//! A stale etag (someone else wrote in between) is retried by re-reading and redoing the whole
//! cycle, under the core retry policy's attempts, backoff, jitter and deadline.

use std::sync::{Mutex, PoisonError};

use porter_identity_core::provider::{batch_refusals, per_group};
use porter_identity_core::{
    BindChange, BindOutcome, Binding, Cloud, ErrorKind, GcpServiceAccountEmail, Plan, PlanAction,
    Result, RunContext, UnbindOutcome,
};
use tokio::sync::oneshot;

use crate::api::Policy;
use crate::operation as op;
use crate::policy::{MemberState, add_member, member_state, remove_member};
use crate::provider::GcpWorkloadIdentityProvider;

/// How many times an edit is queued again after a cancelled cycle dropped it.
const ABANDONED_ROUNDS: usize = 3;

/// One edit of a policy: add or remove a member of `roles/iam.workloadIdentityUser`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edit {
    Add,
    Remove,
}

/// What an edit found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edited {
    /// The policy changed.
    Changed,
    /// It already was as asked.
    AsAsked,
}

struct Pending {
    member: String,
    edit: Edit,
    done: oneshot::Sender<Result<Edited>>,
}

/// The edits waiting for one service account's next read-modify-write, and the turn that
/// lets one cycle run at a time.
#[derive(Default)]
pub(crate) struct PolicyQueue {
    waiting: Mutex<Vec<Pending>>,
    turn: tokio::sync::Mutex<()>,
}

impl GcpWorkloadIdentityProvider {
    /// Applies `edits` to the policy of `email`, together with every other edit of that policy
    /// waiting in this provider; one result per edit, in order.
    pub(crate) async fn edit_policy(
        &self,
        run: &RunContext,
        email: &GcpServiceAccountEmail,
        edits: Vec<(String, Edit)>,
    ) -> Vec<Result<Edited>> {
        let queue = self.queue(email);
        let mut results: Vec<Option<Result<Edited>>> = edits.iter().map(|_| None).collect();
        let mut todo: Vec<(usize, String, Edit)> = edits
            .into_iter()
            .enumerate()
            .map(|(i, (member, edit))| (i, member, edit))
            .collect();
        // A cycle run by a caller that is then cancelled (a timeout around its bind) drops the
        // edits it took without an answer: those are queued again, a bounded number of times.
        for _ in 0..ABANDONED_ROUNDS {
            let receivers: Vec<_> = {
                let mut waiting = queue.waiting.lock().unwrap_or_else(PoisonError::into_inner);
                todo.drain(..)
                    .map(|(i, member, edit)| {
                        let (done, rx) = oneshot::channel();
                        waiting.push(Pending {
                            member: member.clone(),
                            edit,
                            done,
                        });
                        (i, member, edit, rx)
                    })
                    .collect()
            };
            {
                // Whoever holds the turn takes everything waiting, ours included if no cycle
                // before took it; then our results are sent whichever cycle ran them.
                let _turn = queue.turn.lock().await;
                // Edits started in the same instant (a loop of binds, a join of them) are
                // waiting to be queued: let them, so that one cycle takes them all.
                tokio::task::yield_now().await;
                let batch = std::mem::take(
                    &mut *queue.waiting.lock().unwrap_or_else(PoisonError::into_inner),
                );
                if !batch.is_empty() {
                    self.read_modify_write(run, email, batch).await;
                }
            }
            for (i, member, edit, rx) in receivers {
                match rx.await {
                    Ok(r) => results[i] = Some(r),
                    Err(_) => todo.push((i, member, edit)),
                }
            }
            if todo.is_empty() {
                break;
            }
        }
        let abandoned = || {
            op::SET_IAM_POLICY.error(ErrorKind::Unavailable,
                format!(
                    "the edit of the IAM policy of {email} was abandoned {ABANDONED_ROUNDS} times by cancelled calls sharing its read-modify-write"
                ),
            )
            .retryable(true)
        };
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(abandoned())))
            .collect()
    }

    /// One coalesced cycle for `batch`, retried whole on a stale etag; sends each edit its
    /// result.
    async fn read_modify_write(
        &self,
        run: &RunContext,
        email: &GcpServiceAccountEmail,
        batch: Vec<Pending>,
    ) {
        let edits: Vec<(String, Edit)> = batch.iter().map(|p| (p.member.clone(), p.edit)).collect();
        let unsure = Mutex::new(vec![false; edits.len()]);
        let outcome = self
            .calls
            .retry_policy()
            .run_cycle(Cloud::Gcp, op::SET_IAM_POLICY.name(), || {
                self.cycle(run, email, &edits, &unsure)
            })
            .await;
        tracing::debug!(
            service_account = %email,
            edits = edits.len(),
            ok = outcome.is_ok(),
            "policy read-modify-write"
        );
        match outcome {
            Ok(each) => {
                for (p, r) in batch.into_iter().zip(each) {
                    let _ = p.done.send(Ok(r));
                }
            }
            Err(e) => {
                for p in batch {
                    let _ = p.done.send(Err(e.clone()));
                }
            }
        }
    }

    /// One read-modify-write. `Err` is a stale etag or a write that may succeed again (retry
    /// the cycle); `Ok(Err)` is final (the read already retried, or the write was refused).
    ///
    /// The policy this provider last read or wrote is a starting point for a write, not a
    /// source of truth: when the edits change it, it is written with its etag, and a stale
    /// etag (anyone wrote since) sends the retry to a fresh read. When they would change
    /// nothing, a fresh read decides, so that `Unchanged` and `AlreadyAbsent` are never said
    /// from memory. A deploy that binds and then removes stale members thus reads each policy
    /// once.
    ///
    /// `unsure` marks the edits of a write whose answer was lost (cut by its timeout, or a
    /// 5xx): it may have landed. An edit it carried that a later read finds as asked is said
    /// `Changed`, since that write made it, not `AsAsked`.
    async fn cycle(
        &self,
        run: &RunContext,
        email: &GcpServiceAccountEmail,
        edits: &[(String, Edit)],
        unsure: &Mutex<Vec<bool>>,
    ) -> Result<Result<Vec<Edited>>> {
        let credited = |each: &[Edited]| -> Vec<Edited> {
            let unsure = unsure.lock().unwrap_or_else(PoisonError::into_inner);
            each.iter()
                .zip(unsure.iter())
                .map(|(r, unsure)| if *unsure { Edited::Changed } else { *r })
                .collect()
        };
        let from_memory = self
            .remembered_policy(email)
            .map(|p| apply(p, edits))
            .filter(|(_, each)| each.contains(&Edited::Changed));
        let (policy, each) = match from_memory {
            Some(edited) => edited,
            None => match self.read_policy(run, email).await {
                Ok(p) => apply(p, edits),
                Err(e) => return Ok(Err(e)),
            },
        };
        if !each.contains(&Edited::Changed) {
            return Ok(Ok(credited(&each)));
        }
        let adds = edits
            .iter()
            .zip(&each)
            .any(|((_, edit), r)| *edit == Edit::Add && *r == Edited::Changed);
        if adds && let Err(e) = self.ensure_usable(run, email).await {
            return Ok(Err(e));
        }
        let written = self
            .calls
            .run_once(run, op::SET_IAM_POLICY, || {
                self.api.set_iam_policy(email.as_str(), policy.clone())
            })
            .await;
        match written {
            Ok(now) => {
                self.remember_policy(email, Some(now));
                Ok(Ok(credited(&each)))
            }
            Err(e) => {
                self.remember_policy(email, None);
                if e.kind() == ErrorKind::Unavailable {
                    let mut unsure = unsure.lock().unwrap_or_else(PoisonError::into_inner);
                    for (unsure, r) in unsure.iter_mut().zip(&each) {
                        *unsure |= *r == Edited::Changed;
                    }
                }
                if e.is_retryable() {
                    Err(e)
                } else {
                    Ok(Err(Self::service_account_error(email, e)))
                }
            }
        }
    }

    /// `getIamPolicy` (version 3), with transient errors retried; remembered as the starting
    /// point of this provider's next write.
    pub(crate) async fn read_policy(
        &self,
        run: &RunContext,
        email: &GcpServiceAccountEmail,
    ) -> Result<Policy> {
        let policy = self
            .calls
            .run(run, op::GET_IAM_POLICY, || {
                self.api.get_iam_policy(email.as_str())
            })
            .await
            .map_err(|e| Self::service_account_error(email, e))?;
        self.remember_policy(email, Some(policy.clone()));
        Ok(policy)
    }

    // ---- batches ----------------------------------------------------------------------------

    /// Bindings refused before any call: of another cloud, or (plan and bind) fighting over one
    /// link with an earlier binding of the batch.
    fn refusals<T>(bindings: &[Binding], conflicts: bool) -> Vec<Option<Result<T>>> {
        batch_refusals(bindings, conflicts, |b| Self::email_of(b).map(drop))
            .into_iter()
            .map(|e| e.map(Err))
            .collect()
    }

    /// Runs `work` once per service account with its admitted bindings' indexes and members,
    /// service accounts side by side; results in input order. The pool is read first: if it
    /// cannot be, every admitted binding gets that error and nothing else is called.
    async fn per_service_account<T, F, Fut>(
        &self,
        run: &RunContext,
        bindings: &[Binding],
        conflicts: bool,
        work: F,
    ) -> Vec<Result<T>>
    where
        F: Fn(GcpServiceAccountEmail, Vec<(usize, String)>) -> Fut,
        Fut: std::future::Future<Output = Vec<(usize, Result<T>)>>,
    {
        let mut results: Vec<Option<Result<T>>> = Self::refusals(bindings, conflicts);
        let admitted = results.iter().any(Option::is_none);
        let pool = if admitted {
            self.pool(run).await.map(str::to_owned)
        } else {
            Ok(String::new())
        };
        if let Err(e) = pool {
            for r in results.iter_mut().filter(|r| r.is_none()) {
                *r = Some(Err(e.clone()));
            }
            return porter_identity_core::provider::batch_results(Cloud::Gcp, "batch", results);
        }
        per_group(
            Cloud::Gcp,
            bindings.iter().map(Self::key_of),
            results,
            |group: Vec<usize>| {
                let work = &work;
                async move {
                    let Some(email) = group
                        .first()
                        .and_then(|&i| Self::email_of(&bindings[i]).ok())
                        .cloned()
                    else {
                        return Vec::new();
                    };
                    let mut items = Vec::with_capacity(group.len());
                    for &i in &group {
                        match self.member_of(run, &bindings[i]).await {
                            Ok(m) => items.push((i, m)),
                            Err(e) => return group.iter().map(|&i| (i, Err(e.clone()))).collect(),
                        }
                    }
                    work(email, items).await
                }
            },
        )
        .await
    }

    pub(crate) async fn bind_batch(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<BindOutcome>> {
        self.per_service_account(run, bindings, true, |email, items| async move {
            let email = &email;
            let edits = items.iter().map(|(_, m)| (m.clone(), Edit::Add)).collect();
            let done = self.edit_policy(run, email, edits).await;
            items
                .into_iter()
                .zip(done)
                .map(|((i, member), r)| {
                    let outcome = r.map(|edited| {
                        let changed = edited == Edited::Changed;
                        BindOutcome::new(
                            if changed {
                                BindChange::Created
                            } else {
                                BindChange::Unchanged
                            },
                            Self::resource_id(email, &member),
                            Self::patch(email, changed),
                        )
                    });
                    (i, outcome)
                })
                .collect()
        })
        .await
    }

    pub(crate) async fn unbind_batch(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<UnbindOutcome>> {
        self.per_service_account(run, bindings, false, |email, items| async move {
            let email = &email;
            let edits = items
                .iter()
                .map(|(_, m)| (m.clone(), Edit::Remove))
                .collect();
            let done = self.edit_policy(run, email, edits).await;
            items
                .into_iter()
                .zip(done)
                .map(|((i, member), r)| {
                    let outcome = match r {
                        Ok(Edited::Changed) => Ok(UnbindOutcome::Deleted {
                            resource_id: Self::resource_id(email, &member),
                        }),
                        Ok(Edited::AsAsked) => Ok(UnbindOutcome::AlreadyAbsent),
                        // The service account is gone, and the member with it.
                        Err(e) if e.kind() == ErrorKind::NotFound => {
                            Ok(UnbindOutcome::AlreadyAbsent)
                        }
                        Err(e) => Err(e),
                    };
                    (i, outcome)
                })
                .collect()
        })
        .await
    }

    /// What bind would do: one policy read per service account, and the service-account check
    /// where bind would write.
    pub(crate) async fn plan_batch(
        &self,
        run: &RunContext,
        bindings: &[Binding],
    ) -> Vec<Result<Plan>> {
        self.per_service_account(run, bindings, true, |email, items| async move {
            let email = &email;
            let policy = match self.read_policy(run, email).await {
                Ok(p) => p,
                Err(e) => {
                    return items
                        .into_iter()
                        .map(|(i, _)| (i, Err(e.clone())))
                        .collect();
                }
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, member) in items {
                let state = member_state(&policy, &member);
                let plan = if state == MemberState::Bound {
                    Ok(Plan::new(
                        PlanAction::Unchanged,
                        format!("{member} is already bound on {email}"),
                        Self::patch(email, false),
                    ))
                } else {
                    self.ensure_usable(run, email).await.map(|()| {
                        Plan::new(
                            PlanAction::Create,
                            format!("add {member} to roles/iam.workloadIdentityUser on {email}"),
                            Self::patch(email, true),
                        )
                    })
                };
                out.push((i, plan));
            }
            out
        })
        .await
    }
}

/// Applies `edits` to `policy` in order: the edited policy, and what each edit did.
fn apply(mut policy: Policy, edits: &[(String, Edit)]) -> (Policy, Vec<Edited>) {
    let each = edits
        .iter()
        .map(|(member, edit)| {
            let changed = match edit {
                Edit::Add => add_member(&mut policy, member),
                Edit::Remove => remove_member(&mut policy, member),
            };
            if changed {
                Edited::Changed
            } else {
                Edited::AsAsked
            }
        })
        .collect();
    (policy, each)
}
