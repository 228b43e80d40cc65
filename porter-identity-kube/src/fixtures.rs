//! Objects the unit tests share.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::diagnose::GKE_NODE_POOL_LABEL;

/// A GKE node of node pool `pool`.
pub(crate) fn gke_node(name: &str, pool: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                GKE_NODE_POOL_LABEL.to_owned(),
                pool.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}
