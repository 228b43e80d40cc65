//! What a provider author needs: everything beside the [`WorkloadIdentityProvider`] trait
//! that the AWS, Azure and GCP providers share, for a fourth to use the same way. A deployer
//! needs none of it.
//!
//! - **Calls**: [`CloudCalls`] is the gate every cloud call goes through (at most N in flight,
//!   each under the [`RetryPolicy`](crate::RetryPolicy), each attempt counted in the run);
//!   [`pages`] and [`collect_pages`] follow a paginated listing.
//! - **Batches**: [`batch_refusals`] finds, before any call, the bindings a batch refuses
//!   (another cloud's, two connections fighting over one link: [`link_conflicts`],
//!   [`ensure_cloud`]); [`per_group`] runs a batch group by group (one Azure identity, one GCP
//!   IAM policy at a time) and [`batch_results`] puts results back in input order;
//!   [`each_binding`] runs a batch binding by binding.
//! - **Runs**: [`SharedRead`] is a typed key for a read that a provider's binds share with its
//!   stale-link search in the same [`RunContext`](crate::RunContext).
//! - **Names and endpoints**: [`stable_hash_hex`] for the hashed form of long names;
//!   [`is_loopback_host`] for the rule that a plain-`http` endpoint must be loopback;
//!   [`wildcard_match`] for `*`/`?` patterns (IAM actions and resources, selectors, policies).
//!
//! A provider implements the batch calls of [`WorkloadIdentityProvider`] only; the
//! single-binding calls are provided. With feature `testing`,
//! [`testing::run_all`](crate::testing::run_all) is the conformance suite it passes.
//!
//! [`WorkloadIdentityProvider`]: crate::WorkloadIdentityProvider

pub use crate::batch::{batch_results, per_group};
pub use crate::binding::{batch_refusals, link_conflicts};
pub use crate::calls::CloudCalls;
pub use crate::loopback::is_loopback_host;
pub use crate::names::stable_hash_hex;
pub use crate::paging::{collect_pages, pages};
pub use crate::provider_trait::{each_binding, ensure_cloud};
pub use crate::run::SharedRead;
pub use crate::wildcard::wildcard_match;
