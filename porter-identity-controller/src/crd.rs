//! The CRDs of the controller's custom resources, as the API server takes them: made from the
//! Rust types (kube's derive, schemars for the OpenAPI schemas), so the schema and the code
//! cannot drift. `deploy/crd.yaml` is this text; a test keeps them equal.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{AppIdentity, IdentityPolicy};

/// The CRDs: `AppIdentity` (namespaced) and `IdentityPolicy` (cluster-scoped).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![AppIdentity::crd(), IdentityPolicy::crd()]
}

/// The CRDs as one YAML stream (`porter-identity-controller crd`, `deploy/crd.yaml`).
///
/// ```
/// let yaml = porter_identity_controller::crd::crd_yaml();
/// assert!(yaml.contains("name: appidentities.identity.porter.run"));
/// assert!(yaml.contains("name: identitypolicies.identity.porter.run"));
/// ```
pub fn crd_yaml() -> String {
    let mut out = String::from(
        "# The CRDs of porter-identity-controller: `porter-identity-controller crd` prints this file.\n",
    );
    // A CRD is plain data: serializing it cannot fail.
    out.push_str(&serde_saphyr::to_string_multiple(&crds()).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_yaml_reads_back_as_the_crds() {
        let yaml = crd_yaml();
        let docs: Vec<CustomResourceDefinition> =
            serde_saphyr::from_multiple(&yaml).expect("the CRD YAML reads back");
        assert_eq!(docs, crds());
    }

    #[test]
    fn the_schemas_are_structural_and_keep_connections_as_written() {
        let app = AppIdentity::crd();
        let version = &app.spec.versions[0];
        assert_eq!(app.spec.scope, "Namespaced");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let schema = serde_json::to_value(&version.schema).unwrap();
        let connection = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["services"]
            ["items"]["properties"]["connections"]["items"];
        assert_eq!(connection["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(connection["required"][0], "type");
        assert_eq!(IdentityPolicy::crd().spec.scope, "Cluster");
    }
}
