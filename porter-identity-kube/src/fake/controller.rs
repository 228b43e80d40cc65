//! The fake's controllers, as far as porter-identity sees them: a Deployment, StatefulSet or
//! DaemonSet whose pod template changes (a new label, a rollout restart's `restartedAt`) has its
//! pods replaced by new ones that start now, as the API server's controllers roll them.
//! CronJobs make no pods here (their Jobs run on a schedule).

use porter_identity_core::provider::stable_hash_hex;
use serde_json::{Value, json};

use super::ObjectKey;
use super::store::{State, now};

/// The field manager of the pods the fake's controllers make.
const CONTROLLER: &str = "kube-controller-manager";

/// After a write of `key` (`before` is the object before it, `None` when it was created):
/// rolls the workload's pods when its pod template changed.
pub(super) fn after_write(state: &mut State, key: &ObjectKey, before: Option<&Value>) {
    if key.api_version != "apps/v1"
        || !matches!(
            key.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet"
        )
    {
        return;
    }
    let Some(object) = state.object(key).cloned() else {
        return;
    };
    let template = &object["spec"]["template"];
    if before.is_some_and(|b| &b["spec"]["template"] == template) {
        return;
    }
    // The first pods start with their workload; later ones when the template changed.
    let started = match before {
        None => state.creation(key).map_or_else(now, str::to_owned),
        Some(_) => now(),
    };
    roll(state, key, &object, started);
}

/// Whether `pod` belongs to the workload `key` (a Deployment's pods through its ReplicaSet
/// `<name>-<hash>`).
fn owned_by(pod: &Value, key: &ObjectKey) -> bool {
    let Some(owner) = pod["metadata"]["ownerReferences"].get(0) else {
        return false;
    };
    let (kind, name) = (
        owner["kind"].as_str(),
        owner["name"].as_str().unwrap_or_default(),
    );
    match key.kind.as_str() {
        "Deployment" => {
            kind == Some("ReplicaSet")
                && name
                    .rsplit_once('-')
                    .is_some_and(|(head, _)| head == key.name)
        }
        other => kind == Some(other) && name == key.name,
    }
}

fn roll(state: &mut State, key: &ObjectKey, workload: &Value, started: String) {
    let old: Vec<ObjectKey> = state
        .keys()
        .filter(|k| k.kind == "Pod" && k.namespace == key.namespace)
        .filter(|k| state.object(k).is_some_and(|p| owned_by(p, key)))
        .cloned()
        .collect();
    for pod in &old {
        state.remove(pod);
    }
    let mut nodes: Vec<String> = state
        .keys()
        .filter(|k| k.kind == "Node")
        .map(|k| k.name.clone())
        .collect();
    nodes.sort();
    let template = &workload["spec"]["template"];
    let hash = stable_hash_hex(&[&template.to_string()], 10);
    let (owner_kind, owner_name) = match key.kind.as_str() {
        "Deployment" => ("ReplicaSet", format!("{}-{hash}", key.name)),
        other => (other, key.name.clone()),
    };
    let count = match key.kind.as_str() {
        "DaemonSet" => nodes.len(),
        _ => workload["spec"]["replicas"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1),
    };
    for i in 0..count {
        let name = match key.kind.as_str() {
            "StatefulSet" => format!("{}-{i}", key.name),
            _ => format!(
                "{owner_name}-{}",
                &stable_hash_hex(&[&started, &i.to_string()], 5)
            ),
        };
        let mut spec = template["spec"].clone();
        if let (Some(map), false) = (spec.as_object_mut(), nodes.is_empty()) {
            map.insert("nodeName".into(), json!(nodes[i % nodes.len()]));
        }
        let pod = json!({
            "metadata": {
                "labels": template["metadata"]["labels"],
                "annotations": template["metadata"]["annotations"],
                "ownerReferences": [{
                    "apiVersion": if owner_kind == "ReplicaSet" { "apps/v1" } else { key.api_version.as_str() },
                    "kind": owner_kind,
                    "name": owner_name,
                    "uid": "",
                    "controller": true,
                }],
            },
            "spec": spec,
            "status": {"phase": "Running"},
        });
        let pod_key = ObjectKey::new("v1", "Pod", &key.namespace, &name);
        state.put(&pod_key, CONTROLLER, strip_nulls(pod), started.clone());
    }
}

/// The pod without the `null`s of absent template fields.
fn strip_nulls(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
        for v in map.values_mut() {
            *v = strip_nulls(v.take());
        }
    }
    value
}
