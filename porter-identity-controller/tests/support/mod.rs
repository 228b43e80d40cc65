//! What the controller's tests share: YAML documents applied to the Kubernetes API fake through
//! kube-rs, as `kubectl apply --server-side` applies them, and waiting for a condition.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;

/// The repository's `deploy/` folder.
pub(crate) fn deploy_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy"))
}

/// The YAML documents of `text` (empty ones skipped).
pub(crate) fn documents(text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("the YAML reads");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The plural of a kind, as the API server names its resource.
pub(crate) fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else if lower.ends_with('s') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

/// The API of `object`'s kind, in its namespace when it has one.
pub(crate) fn api_of(client: &Client, object: &Value) -> (Api<DynamicObject>, String) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &plural(kind));
    let name = object["metadata"]["name"].as_str().expect("metadata.name");
    let api = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    (api, name.to_owned())
}

/// Applies every document of `text` (server-side apply, field manager `kubectl`).
pub(crate) async fn apply_yaml(client: &Client, text: &str) -> Vec<DynamicObject> {
    let mut applied = Vec::new();
    for doc in documents(text) {
        let (api, name) = api_of(client, &doc);
        let object: DynamicObject = serde_json::from_value(doc).expect("an object");
        let written = api
            .patch(
                &name,
                &PatchParams::apply("kubectl").force(),
                &Patch::Apply(&object),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {name}: {e}"));
        applied.push(written);
    }
    applied
}

/// Applies a file of `deploy/`.
pub(crate) async fn apply_file(client: &Client, relative: &str) -> Vec<DynamicObject> {
    let text = std::fs::read_to_string(deploy_dir().join(relative)).expect("the deploy file");
    apply_yaml(client, &text).await
}

/// Polls `check` every 50 ms until it gives `Some`, for at most `limit`.
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {limit:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the sample `name` (no labels) in a Prometheus text `page`.
pub(crate) fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
