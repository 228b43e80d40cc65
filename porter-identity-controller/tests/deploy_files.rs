//! The files of `deploy/` agree with the code, with kustomize and with the API server:
//! `deploy/crd.yaml` is what `porter-identity-controller crd` prints; what `kubectl kustomize
//! deploy/` renders (kept in `tests/fixtures/kustomize-deploy.yaml`: kubectl is not a tool this
//! project installs) is the objects of deploy/ as they are now; and every rendered object is
//! applied to the Kubernetes API fake through kube-rs, the examples after them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;

use kube::api::DynamicObject;
use porter_identity::kube::fake::{FakeKube, ObjectKey};
use serde_json::Value;
use support::{apply_yaml, deploy_dir, documents};

/// What `kubectl kustomize deploy/` renders: the documents of its `resources`, in order. The
/// kustomization uses no transformer (each file names its namespace), so the rendering is
/// exactly that; a key this reading does not know fails the test rather than being skipped.
fn rendered() -> Vec<Value> {
    let text = std::fs::read_to_string(deploy_dir().join("kustomization.yaml")).unwrap();
    let kustomization = &documents(&text)[0];
    for key in kustomization.as_object().unwrap().keys() {
        assert!(
            ["apiVersion", "kind", "resources"].contains(&key.as_str()),
            "kustomization.yaml has `{key}`: teach this test what kustomize does with it"
        );
    }
    kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let file = deploy_dir().join(r.as_str().unwrap());
            documents(&std::fs::read_to_string(&file).unwrap())
        })
        .collect()
}

/// The objects `kubectl kustomize deploy/` rendered, in its order.
fn rendered_by_kustomize() -> Vec<Value> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kustomize-deploy.yaml");
    documents(&std::fs::read_to_string(file).unwrap())
}

/// Numbers as f64: YAML writers differ on `0` and `0.0` (schemars' `minimum: 0.0` comes back
/// from kustomize as `0`), which are one value to the API server.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map_or(Value::Null, Value::from),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `kind/name` of each object, with the object normalized.
fn by_kind_and_name(objects: Vec<Value>) -> std::collections::BTreeMap<String, Value> {
    objects
        .iter()
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or_default(),
                    o["metadata"]["name"].as_str().unwrap_or_default()
                ),
                normalized(o),
            )
        })
        .collect()
}

#[test]
fn the_kustomize_rendering_is_of_the_deploy_files_as_they_are() {
    let ours = by_kind_and_name(rendered());
    let theirs = by_kind_and_name(rendered_by_kustomize());
    let differ: std::collections::BTreeSet<&String> = ours
        .keys()
        .chain(theirs.keys())
        .filter(|k| ours.get(*k) != theirs.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "deploy/ changed since tests/fixtures/kustomize-deploy.yaml was rendered ({differ:?} differ): run `kubectl kustomize deploy/` again (see the file's header)"
    );
    assert_eq!(ours.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rendered_object_and_the_examples_apply_to_the_api_server() {
    let objects = rendered_by_kustomize();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    let kube = FakeKube::new();
    let server = kube.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = server.cluster().await.unwrap().client().clone();
    let mut applied: Vec<DynamicObject> = Vec::new();
    for object in &objects {
        let text = serde_json::to_string(object).unwrap();
        applied.extend(apply_yaml(&client, &text).await);
    }
    assert_eq!(applied.len(), objects.len());
    for example in ["examples/identitypolicy.yaml", "examples/appidentity.yaml"] {
        let text = std::fs::read_to_string(deploy_dir().join(example)).unwrap();
        assert_eq!(apply_yaml(&client, &text).await.len(), 1, "{example}");
    }

    let deployment = kube
        .get(&ObjectKey::new(
            "apps/v1",
            "Deployment",
            "porter-identity-system",
            "porter-identity-controller",
        ))
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "porter-identity-controller"
    );
    let app = kube
        .get(&ObjectKey::new(
            "identity.porter.run/v1alpha1",
            "AppIdentity",
            "shop",
            "shop",
        ))
        .unwrap();
    assert_eq!(app["spec"]["services"][1]["name"], "worker");
    // The controller's ClusterRole names every verb its calls use.
    let role = kube
        .get(&ObjectKey::new(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "",
            "porter-identity-controller",
        ))
        .unwrap();
    let grants = |resource: &str, verb: &str| {
        role["rules"].as_array().unwrap().iter().any(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == resource)
                && r["verbs"].as_array().unwrap().iter().any(|x| x == verb)
        })
    };
    for (resource, verb) in [
        ("appidentities", "watch"),
        ("appidentities", "patch"),
        ("appidentities/status", "patch"),
        ("identitypolicies", "watch"),
        ("serviceaccounts", "patch"),
        ("deployments", "patch"),
        ("events", "create"),
    ] {
        assert!(
            grants(resource, verb),
            "the ClusterRole lacks {verb} on {resource}"
        );
    }
    server.shutdown().await;
}

#[test]
fn the_committed_crds_are_the_ones_the_binary_prints() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crd.yaml");
    let committed = std::fs::read_to_string(&file).expect("deploy/crd.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_porter-identity-controller"))
        .arg("crd")
        .output()
        .expect("run the binary");
    assert!(out.status.success());
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "deploy/crd.yaml differs from the types: run `cargo run -p porter-identity-controller -- crd > deploy/crd.yaml`"
    );
    assert_eq!(committed, porter_identity_controller::crd::crd_yaml());
}

#[test]
fn a_wrong_command_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_porter-identity-controller"))
        .arg("run-everything")
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("usage")
    );
}
