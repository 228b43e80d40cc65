//! The Kubernetes API fake as a controller sees it, through kube-rs's own client over HTTPS:
//! custom resources of a CRD with their status subresource and generation, watches (in order,
//! from a list's resourceVersion, 410 once the log has moved on), finalizers holding a delete,
//! JSON patches, replaces with the optimistic check, events, and the RBAC kinds.
//!
//! Every test starts its own fake in process: nothing here needs the test script's server.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::{Client, Resource};
use porter_identity_kube::fake::{FakeKube, FakeKubeServer};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

async fn serve(kube: &FakeKube) -> (FakeKubeServer, Client) {
    let server = kube.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = server.cluster().await.unwrap().client().clone();
    (server, client)
}

/// The status of a refused call.
fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected the API server's refusal, got {other:?}"),
    }
}

/// A JSON patch (RFC 6902) of `name` in `namespace`, as kube-runtime's finalizer helper sends
/// one. (kube's `Patch::Json` needs its `jsonpatch` feature; the body is the same JSON.)
async fn json_patch<K>(client: &Client, namespace: &str, name: &str, ops: Value) -> kube::Result<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone,
{
    let url = K::url_path(&(), Some(namespace));
    let mut request = kube::core::Request::new(url)
        .patch(name, &PatchParams::default(), &Patch::Merge(&ops))
        .unwrap();
    request.headers_mut().insert(
        "content-type",
        "application/json-patch+json".parse().unwrap(),
    );
    client.request::<K>(request).await
}

/// A ConfigMap `name` with `data`.
fn config_map(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data,
    }))
    .unwrap()
}

fn widgets() -> ApiResource {
    ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    }
}

/// A CRD applied is served at once: its objects are created, listed, got; a write to the
/// object leaves its status alone and one to `/status` (merge or apply) changes only status;
/// the generation moves with the spec only.
#[tokio::test]
async fn a_crds_custom_resources_are_served_with_their_status_subresource() {
    let kube = FakeKube::new();
    let (server, client) = serve(&kube).await;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}},
            }],
        },
    }))
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let ar = widgets();
    let shop: Api<DynamicObject> = Api::namespaced_with(client.clone(), "shop", &ar);
    assert_eq!(
        refusal(shop.list(&ListParams::default()).await).code,
        404,
        "not served before its CRD"
    );
    crds.patch(
        "widgets.example.com",
        &PatchParams::apply("test"),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();

    let widget = DynamicObject::new("w1", &ar)
        .within("shop")
        .data(json!({"spec": {"size": 1}, "status": {"ready": true}}));
    let created = shop.create(&PostParams::default(), &widget).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.data.get("status").is_none(),
        "a create sets no status: {:?}",
        created.data
    );

    let list = shop.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.metadata.resource_version,
        Some(kube.version().to_string())
    );
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let got = shop.get("w1").await.unwrap();
    assert_eq!(got.data["spec"]["size"], 1);
    assert_eq!(got.types.unwrap().kind, "Widget");

    // `/status`: only status changes, however the body reads.
    let status = shop
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 5}, "status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert_eq!(status.data["status"]["ready"], true);
    assert_eq!(
        status.data["spec"]["size"], 1,
        "the spec is not the status's"
    );
    assert_eq!(status.metadata.generation, Some(1));

    // The object: its status is kept, and a spec change moves the generation.
    let resized = shop
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}, "status": {"ready": false}})),
        )
        .await
        .unwrap();
    assert_eq!(resized.data["spec"]["size"], 2);
    assert_eq!(resized.data["status"]["ready"], true, "status kept");
    assert_eq!(resized.metadata.generation, Some(2));

    let labelled = shop
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2), "metadata only");

    // A status apply, as a controller writes its status (forced: the merge above owns
    // `status.ready` with another value).
    let applied = shop
        .patch_status(
            "w1",
            &PatchParams::apply("widget-controller").force(),
            &Patch::Apply(json!({
                "apiVersion": "example.com/v1", "kind": "Widget",
                "spec": {"size": 7},
                "status": {"ready": false, "observedGeneration": 2},
            })),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["status"]["ready"], false);
    assert_eq!(applied.data["status"]["observedGeneration"], 2);
    assert_eq!(applied.data["spec"]["size"], 2);
    assert_eq!(applied.metadata.generation, Some(2));
    assert_eq!(
        shop.get_status("w1").await.unwrap().data["status"]["ready"],
        false
    );
    // The object's own apply neither sets status nor drops the controller's.
    let spec_applied = shop
        .patch(
            "w1",
            &PatchParams::apply("owner").force(),
            &Patch::Apply(json!({
                "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
                "spec": {"size": 3}, "status": {"ready": true},
            })),
        )
        .await
        .unwrap();
    assert_eq!(spec_applied.data["spec"]["size"], 3);
    assert_eq!(spec_applied.data["status"]["ready"], false);
    assert_eq!(spec_applied.metadata.generation, Some(3));
    assert_eq!(kube.writes_to("Widget"), 6);
    server.shutdown().await;
}

/// Next event that is not a bookmark, within a few seconds.
async fn next_event<S, K>(stream: &mut S) -> WatchEvent<K>
where
    S: futures_util::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin,
{
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("an event within 10s")
            .expect("a readable event")
            .expect("the stream still open");
        if !matches!(event, WatchEvent::Bookmark(_)) {
            return event;
        }
    }
}

fn data_a(cm: &ConfigMap) -> String {
    cm.data
        .as_ref()
        .and_then(|d| d.get("a"))
        .cloned()
        .unwrap_or_default()
}

/// A watch from a list's resourceVersion sees each change after it, in order, with the field
/// selector applied; a watch from `0` starts with the current objects.
#[tokio::test]
async fn a_watch_from_a_lists_version_sees_added_modified_deleted_in_order() {
    let kube = FakeKube::new();
    let (server, client) = serve(&kube).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "watch");
    let others: Api<ConfigMap> = Api::namespaced(client.clone(), "elsewhere");
    let version = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(
            &WatchParams::default().fields("metadata.name=c").timeout(20),
            &version,
        )
        .await
        .unwrap()
        .boxed();
    let pp = PostParams::default();
    cms.create(&pp, &config_map("c", json!({"a": "1"})))
        .await
        .unwrap();
    cms.create(&pp, &config_map("not-c", json!({"a": "x"})))
        .await
        .unwrap();
    others
        .create(&pp, &config_map("c", json!({"a": "y"})))
        .await
        .unwrap();
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .unwrap();
    cms.delete("c", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(match next_event(&mut stream).await {
            WatchEvent::Added(cm) => ("ADDED", data_a(&cm)),
            WatchEvent::Modified(cm) => ("MODIFIED", data_a(&cm)),
            WatchEvent::Deleted(cm) => ("DELETED", data_a(&cm)),
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(
        seen,
        [
            ("ADDED", "1".to_owned()),
            ("MODIFIED", "2".to_owned()),
            ("DELETED", "2".to_owned())
        ]
    );

    let mut from_zero = cms
        .watch(&WatchParams::default().timeout(20), "0")
        .await
        .unwrap()
        .boxed();
    match next_event(&mut from_zero).await {
        WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("not-c")),
        other => panic!("{other:?}"),
    }
    cms.delete("not-c", &DeleteParams::default()).await.unwrap();
    assert!(matches!(
        next_event(&mut from_zero).await,
        WatchEvent::Deleted(_)
    ));

    // A watch ends after its timeoutSeconds, and every watch ends when the server stops.
    let mut short = cms
        .watch(
            &WatchParams::default().timeout(1),
            &kube.version().to_string(),
        )
        .await
        .unwrap()
        .boxed();
    let end = tokio::time::timeout(Duration::from_secs(10), short.next()).await;
    assert!(matches!(end, Ok(None)), "ended after 1s: {end:?}");
    server.shutdown().await;
    let end = tokio::time::timeout(Duration::from_secs(10), from_zero.next()).await;
    assert!(matches!(end, Ok(None)), "ended with the server: {end:?}");
}

/// Once the watch log has moved past a resourceVersion, a watch from it is one 410 `Expired`
/// error and the end of the stream. A watch is one request, and no write.
#[tokio::test]
async fn a_watch_from_a_version_the_log_no_longer_keeps_is_410_expired() {
    let kube = FakeKube::new();
    kube.set_watch_log_limit(2);
    let (server, client) = serve(&kube).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "old");
    cms.create(&PostParams::default(), &config_map("first", json!({})))
        .await
        .unwrap();
    // Not 0: that would ask for the current objects first.
    let version = kube.version().to_string();
    for i in 0..5 {
        cms.create(
            &PostParams::default(),
            &config_map(&format!("c{i}"), json!({})),
        )
        .await
        .unwrap();
    }
    let (requests, writes) = (kube.requests(), kube.writes());
    let mut stream = cms
        .watch(&WatchParams::default(), &version)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
            assert!(
                status
                    .message
                    .starts_with(&format!("too old resource version: {version} (")),
                "{}",
                status.message
            );
        }
        other => panic!("{other:?}"),
    }
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the stream ends");
    assert!(end.is_none(), "{end:?}");
    assert_eq!(kube.requests(), requests + 1, "one request");
    assert_eq!(kube.writes(), writes, "a watch is no write");

    // A recent version is still served; the fault knobs act on a watch as on any GET.
    let recent = kube.version().to_string();
    kube.fail_next(1);
    assert_eq!(
        refusal(
            cms.watch(&WatchParams::default(), &recent)
                .await
                .map(|_| ())
        )
        .code,
        503
    );
    let mut stream = cms
        .watch(&WatchParams::default(), &recent)
        .await
        .unwrap()
        .boxed();
    cms.delete("c0", &DeleteParams::default()).await.unwrap();
    assert!(matches!(
        next_event(&mut stream).await,
        WatchEvent::Deleted(_)
    ));
    server.shutdown().await;
}

/// A delete of an object with finalizers keeps it, with its deletionTimestamp, until a JSON
/// patch removes the last finalizer (as kube-runtime's finalizer helper does): then it is gone.
#[tokio::test]
async fn finalizers_hold_a_delete_until_a_json_patch_removes_the_last() {
    let kube = FakeKube::new();
    let (server, client) = serve(&kube).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fin");
    cms.create(&PostParams::default(), &config_map("f", json!({})))
        .await
        .unwrap();
    // The finalizer helper's first patch: a test of the absent list against null, then add.
    let held: ConfigMap = json_patch(
        &client,
        "fin",
        "f",
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/hold"]},
        ]),
    )
    .await
    .unwrap();
    assert_eq!(
        held.metadata.finalizers,
        Some(vec!["example.com/hold".to_owned()])
    );

    let deleted = cms
        .delete("f", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the object, still there");
    assert!(deleted.metadata.deletion_timestamp.is_some());
    let still = cms.get("f").await.unwrap();
    assert_eq!(
        still.metadata.deletion_timestamp,
        deleted.metadata.deletion_timestamp
    );
    let again = cms
        .delete("f", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the object, still there");
    assert_eq!(
        again.metadata.resource_version, still.metadata.resource_version,
        "a second delete changes nothing"
    );

    let last: ConfigMap = json_patch(
        &client,
        "fin",
        "f",
        json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": "example.com/hold"},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ]),
    )
    .await
    .unwrap();
    assert!(last.metadata.deletion_timestamp.is_some(), "its last state");
    assert_eq!(refusal(cms.get("f").await).code, 404, "gone");
    server.shutdown().await;
}

/// A JSON patch whose `test` fails is 422 `Invalid` and changes nothing, not even the ops
/// before it.
#[tokio::test]
async fn a_json_patch_whose_test_fails_is_422_and_changes_nothing() {
    let kube = FakeKube::new();
    let (server, client) = serve(&kube).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "jp");
    let before = cms
        .create(&PostParams::default(), &config_map("t", json!({"a": "1"})))
        .await
        .unwrap();
    let refused = refusal(
        json_patch::<ConfigMap>(
            &client,
            "jp",
            "t",
            json!([
                {"op": "add", "path": "/data/b", "value": "2"},
                {"op": "test", "path": "/data/a", "value": "not 1"},
                {"op": "replace", "path": "/data/a", "value": "3"},
            ]),
        )
        .await,
    );
    assert_eq!((refused.code, refused.reason.as_str()), (422, "Invalid"));
    let after = cms.get("t").await.unwrap();
    assert_eq!(after.data, before.data);
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    let bad_path = refusal(
        json_patch::<ConfigMap>(
            &client,
            "jp",
            "t",
            json!([{"op": "remove", "path": "/data/missing"}]),
        )
        .await,
    );
    assert_eq!(bad_path.code, 422);

    let patched: ConfigMap = json_patch(
        &client,
        "jp",
        "t",
        json!([
            {"op": "test", "path": "/data/a", "value": "1"},
            {"op": "replace", "path": "/data/a", "value": "3"},
        ]),
    )
    .await
    .unwrap();
    assert_eq!(data_a(&patched), "3");
    server.shutdown().await;
}

/// `Api::replace` carries the resourceVersion read: the current one is taken, a stale one is
/// the API server's 409 `Conflict`, as leader election relies on.
#[tokio::test]
async fn a_replace_with_a_stale_resource_version_is_409_and_with_the_current_one_succeeds() {
    let kube = FakeKube::new();
    let (server, client) = serve(&kube).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "ctl");
    let pp = PostParams {
        field_manager: Some("candidate".into()),
        ..PostParams::default()
    };
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
    }))
    .unwrap();
    let read = leases.create(&pp, &lease).await.unwrap();

    let mut mine = read.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let taken = leases.replace("leader", &pp, &mine).await.unwrap();
    assert_eq!(taken.spec.unwrap().holder_identity.as_deref(), Some("b"));
    assert_ne!(
        taken.metadata.resource_version,
        read.metadata.resource_version
    );

    let mut stale = read.clone();
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let conflict = refusal(leases.replace("leader", &pp, &stale).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        conflict.message,
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"leader\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let now = leases.get("leader").await.unwrap();
    assert_eq!(now.spec.unwrap().holder_identity.as_deref(), Some("b"));

    let mut missing = read.clone();
    missing.metadata.name = Some("nobody".into());
    assert_eq!(
        refusal(leases.replace("nobody", &pp, &missing).await).code,
        404
    );
    server.shutdown().await;
}

/// An events.k8s.io/v1 Event is created (named by `generateName` when it has no name), and
/// patched as kube-runtime's Recorder patches a series.
#[tokio::test]
async fn events_are_created_with_generated_names_and_patched() {
    let kube = FakeKube::new();
    let (server, client) = serve(&kube).await;
    let events: Api<Event> = Api::namespaced(client.clone(), "shop");
    let event: Event = serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"generateName": "w1-"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reason": "LinkCreated", "action": "Reconcile", "type": "Normal",
        "note": "linked", "reportingController": "test", "reportingInstance": "test-0",
        "regarding": {"kind": "Widget", "name": "w1", "namespace": "shop"},
    }))
    .unwrap();
    let created = events.create(&PostParams::default(), &event).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert!(
        name.starts_with("w1-") && name.len() == 8,
        "generateName and five characters: {name}"
    );
    assert_eq!(created.reason.as_deref(), Some("LinkCreated"));

    let series = events
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(series.series.unwrap().count, 2);
    assert_eq!(
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(kube.writes_to("Event"), 2);
    server.shutdown().await;
}

/// A namespace and the RBAC kinds take server-side apply and read back.
#[tokio::test]
async fn namespaces_and_rbac_kinds_take_server_side_apply() {
    let kube = FakeKube::new();
    let (server, client) = serve(&kube).await;
    let ssa = PatchParams::apply("installer");

    async fn apply<K>(api: &Api<K>, name: &str, ssa: &PatchParams, body: Value) -> K
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        api.patch(name, ssa, &Patch::Apply(body))
            .await
            .unwrap_or_else(|e| panic!("apply {name}: {e}"))
    }

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = apply(
        &namespaces,
        "porter",
        &ssa,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "porter", "labels": {"a": "b"}}}),
    )
    .await;
    assert_eq!(ns.metadata.labels.unwrap()["a"], "b");

    let rule =
        json!([{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "patch"]}]);
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    apply(
        &cluster_roles,
        "porter",
        &ssa,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "porter"}, "rules": rule}),
    )
    .await;
    let subject = json!([{"kind": "ServiceAccount", "name": "porter", "namespace": "porter"}]);
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    apply(
        &bindings,
        "porter",
        &ssa,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "porter"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "porter"},
            "subjects": subject,
        }),
    )
    .await;
    let roles: Api<Role> = Api::namespaced(client.clone(), "porter");
    apply(
        &roles,
        "leader",
        &ssa,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "leader"}, "rules": rule}),
    )
    .await;
    let role_bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "porter");
    apply(
        &role_bindings,
        "leader",
        &ssa,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "leader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "leader"},
            "subjects": subject,
        }),
    )
    .await;

    let role = cluster_roles.get("porter").await.unwrap();
    assert_eq!(
        role.rules.unwrap()[0].verbs,
        ["get".to_owned(), "patch".to_owned()]
    );
    let binding = bindings.get("porter").await.unwrap();
    assert_eq!(binding.role_ref.name, "porter");
    assert_eq!(binding.subjects.unwrap()[0].name, "porter");
    let all_roles: Api<Role> = Api::all(client.clone());
    assert_eq!(
        all_roles
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        role_bindings.get("leader").await.unwrap().role_ref.kind,
        "Role"
    );
    assert_eq!(
        namespaces.list(&ListParams::default()).await.unwrap().items[0]
            .metadata
            .name
            .as_deref(),
        Some("porter")
    );
    server.shutdown().await;
}
