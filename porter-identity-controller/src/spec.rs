//! An `AppIdentity`'s spec as the bindings a `Reconciler` takes, checked with porter.yaml's
//! rules; errors name the field of the object (`spec.services[1].connections[0].role`).

use porter_identity_core::{Binding, Connection, Error, Result, Workload};
use serde_json::Value;

use crate::resource::{AppIdentitySpec, ServiceSpec};

impl AppIdentitySpec {
    /// The bindings of every identity connection of the spec, for its objects in `namespace`.
    ///
    /// ```
    /// use porter_identity_controller::{AppIdentitySpec, ServiceSpec};
    ///
    /// let spec: AppIdentitySpec = serde_json::from_value(serde_json::json!({
    ///     "app": "shop",
    ///     "services": [{"name": "api", "connections": [{"type": "awsRole", "role": "shop-api"}]}]
    /// }))?;
    /// let bindings = spec.bindings("shop")?;
    /// assert_eq!(bindings[0].to_string(), "shop/shop-api -> awsRole shop-api");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bindings(&self, namespace: &str) -> Result<Vec<Binding>> {
        services_bindings(&self.app, &self.services, namespace, "spec.services")
    }
}

/// Where a connection is in a spec: (service index, connection index).
pub(crate) type ConnectionAt = (usize, usize);

/// The bindings of `services` (a spec's, or what a status records as applied), with errors at
/// `at[i]…`.
pub(crate) fn services_bindings(
    app: &str,
    services: &[ServiceSpec],
    namespace: &str,
    at: &str,
) -> Result<Vec<Binding>> {
    Ok(indexed_bindings(app, services, namespace, at)?
        .into_iter()
        .map(|(_, b)| b)
        .collect())
}

/// [`services_bindings`], each with where its connection is.
pub(crate) fn indexed_bindings(
    app: &str,
    services: &[ServiceSpec],
    namespace: &str,
    at: &str,
) -> Result<Vec<(ConnectionAt, Binding)>> {
    let mut bindings = Vec::new();
    for (i, service) in services.iter().enumerate() {
        let field = |rest: &str| format!("{at}[{i}]{rest}");
        let workload = match &service.service_account {
            Some(sa) => Workload::new(namespace, sa, app, &service.name),
            None => Workload::for_service(namespace, app, &service.name),
        }
        .map_err(|e| {
            let (problem, fix) = split(&e.to_string());
            Error::invalid_input(field(""), problem, fix)
        })?;
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for (j, fields) in service.connections.iter().enumerate() {
            let connection: Connection = serde_json::from_value(Value::Object(fields.clone()))
                .map_err(|e| {
                    let (problem, fix) = split(&e.to_string());
                    Error::invalid_input(field(&format!(".connections[{j}]")), problem, fix)
                })?;
            if !connection.is_identity() {
                continue;
            }
            let kind = connection.cloud().map_or("", |c| c.connection_type());
            if let Some((_, k)) = seen.iter().find(|(t, _)| *t == kind) {
                return Err(Error::invalid_input(
                    field(&format!(".connections[{j}]")),
                    format!(
                        "is a second `{kind}` connection (the first is connections[{k}]); a service has at most one of each type"
                    ),
                    "remove one of them",
                ));
            }
            seen.push((kind, j));
            bindings.push(((i, j), Binding::new(workload.clone(), connection)));
        }
    }
    Ok(bindings)
}

/// A message as `problem. Fix: fix`, split (a whole message is the problem when it has none).
fn split(message: &str) -> (String, String) {
    match message.split_once(". Fix: ") {
        Some((problem, fix)) => (problem.to_owned(), fix.to_owned()),
        None => (
            message.to_owned(),
            "correct the field as the message says".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(services: Value) -> AppIdentitySpec {
        serde_json::from_value(json!({"app": "shop", "services": services})).unwrap()
    }

    #[test]
    fn bindings_follow_porter_yaml_and_take_an_explicit_service_account() {
        let s = spec(json!([
            {"name": "api", "connections": [
                {"type": "awsRole", "role": "shop-api", "mode": "irsa"},
                {"type": "cloudSql", "instance": "main"}
            ]},
            {"name": "worker", "serviceAccount": "shop-jobs", "connections": [
                {"type": "gcpServiceAccount", "serviceAccountEmail": "shop-jobs@shop-123456.iam.gserviceaccount.com"}
            ]}
        ]));
        let b = s.bindings("shop").unwrap();
        assert_eq!(b.len(), 2, "{b:?}");
        assert_eq!(b[0].to_string(), "shop/shop-api -> awsRole shop-api (IRSA)");
        assert_eq!(b[1].workload.service_account().as_str(), "shop-jobs");
    }

    #[test]
    fn errors_name_the_field_of_the_object() {
        for (services, at, says) in [
            (
                json!([{"name": "api", "connections": [{"type": "awsRole"}]}]),
                "spec.services[0].connections[0]",
                "role",
            ),
            (
                json!([{"name": "api"}, {"name": "Bad_Name"}]),
                "spec.services[1]",
                "Bad_Name",
            ),
            (
                json!([{"name": "api", "connections": [
                    {"type": "awsRole", "role": "a"}, {"type": "awsRole", "role": "b"}
                ]}]),
                "spec.services[0].connections[1]",
                "second `awsRole`",
            ),
        ] {
            let e = spec(services).bindings("shop").unwrap_err();
            let text = e.to_string();
            assert!(text.contains(at), "{at}: {text}");
            assert!(text.contains(says), "{at}: {text}");
        }
    }
}
