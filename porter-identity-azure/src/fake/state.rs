//! The fake's in-memory ARM and the rules of each operation. Everything here runs under the
//! one lock of [`super::FakeAzure`]; nothing here awaits.

use std::collections::BTreeMap;
use std::time::Duration;

use porter_identity_core::testing::FakeCalls;
use porter_identity_core::{ErrorKind, Operation};

use crate::operation as op;
use tokio::time::Instant;

use crate::api::FEDERATED_CREDENTIAL_LIMIT;

/// Every operation the fake counts, by its ARM operation id; [`State::inject`] refuses others
/// so that a typo cannot make an injected failure silently never fire.
pub(crate) const OPERATIONS: [&str; 8] = {
    let arm = Operation::names(op::ALL);
    [
        arm[0], arm[1], arm[2], arm[3], arm[4], arm[5], arm[6],
        // The token request of the fake's Entra ID face.
        "Token",
    ]
};

/// The write operations ([`super::FakeAzure::write_calls`]).
pub(crate) const WRITE_OPERATIONS: [&str; 2] = Operation::names(op::WRITES);

/// The code Azure answers a write racing another write on one identity with (HTTP 409).
pub(crate) const CONCURRENT: &str =
    "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity";

/// An ARM error: status, `error.code` and `error.message`, as the HTTP face sends it and as the
/// real client's mapper reads it (the in-memory face maps it with the same function).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArmError {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ArmError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ArmError {
            status,
            code,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "ResourceNotFound", message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// The error body ARM sends.
    pub(crate) fn body(&self) -> String {
        serde_json::json!({"error": {"code": self.code, "message": self.message}}).to_string()
    }

    /// What a test asked for with `inject_failures`.
    fn injected(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Throttled => Self::new(
                429,
                "TooManyRequests",
                "The request is being throttled as the limit has been reached.",
            ),
            ErrorKind::Unavailable => Self::new(
                503,
                "ServiceUnavailable",
                "The service is temporarily unavailable.",
            ),
            ErrorKind::Conflict => Self::new(
                409,
                CONCURRENT,
                "Too many Federated Identity Credentials are written concurrently for the managed identity. Please retry.",
            ),
            ErrorKind::NotFound => Self::not_found("The Resource was not found."),
            ErrorKind::PermissionDenied => Self::new(
                403,
                "AuthorizationFailed",
                "The client does not have authorization to perform the action over the scope.",
            ),
            ErrorKind::Unauthenticated => Self::new(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            ),
            _ => Self::new(500, "InternalServerError", "An internal error occurred."),
        }
    }
}

/// An AKS cluster.
#[derive(Debug, Clone)]
pub(crate) struct ClusterRecord {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) location: String,
    pub(crate) oidc_issuer_enabled: bool,
    pub(crate) issuer_url: String,
    pub(crate) workload_identity_enabled: bool,
}

/// A federated identity credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CredentialRecord {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) audiences: Vec<String>,
}

/// A user-assigned managed identity.
#[derive(Debug, Clone)]
pub(crate) struct IdentityRecord {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) location: String,
    pub(crate) client_id: String,
    pub(crate) principal_id: String,
    pub(crate) tenant_id: String,
    /// By lower-cased name (ARM names are case-insensitive), in creation order of insertion.
    pub(crate) credentials: BTreeMap<String, CredentialRecord>,
    /// A write to this identity is in flight until then: another one meanwhile is refused
    /// with the concurrent-writes 409, as Azure does.
    busy_until: Option<Instant>,
}

/// A role assignment.
#[derive(Debug, Clone)]
pub(crate) struct RoleAssignmentRecord {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) scope: String,
    pub(crate) role_definition_id: String,
    pub(crate) principal_id: String,
}

/// A role definition.
#[derive(Debug, Clone)]
pub(crate) struct RoleDefinitionRecord {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) role_name: String,
}

/// The properties of a PUT of a credential, each as sent (a missing one is a 400).
#[derive(Debug, Clone, Default)]
pub(crate) struct PutBody {
    pub(crate) issuer: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) audiences: Option<Vec<String>>,
}

/// A page of FederatedIdentityCredentials_List: the credentials, and the index of the next
/// page's first (its `$skipToken`).
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub(crate) credentials: Vec<CredentialRecord>,
    pub(crate) next: Option<usize>,
}

/// The whole fake cloud: one subscription of one tenant.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) subscription_id: String,
    pub(crate) tenant_id: String,
    clusters: BTreeMap<(String, String), ClusterRecord>,
    identities: BTreeMap<(String, String), IdentityRecord>,
    pub(crate) role_assignments: Vec<RoleAssignmentRecord>,
    role_definitions: BTreeMap<String, RoleDefinitionRecord>,
    pub(crate) page_size: usize,
    /// Counters, injected failures, latency and stalls.
    pub(crate) calls: FakeCalls,
    next_guid: u64,
}

fn key(resource_group: &str, name: &str) -> (String, String) {
    (
        resource_group.to_ascii_lowercase(),
        name.to_ascii_lowercase(),
    )
}

/// Azure's rule for credential names: `^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$`.
pub(crate) fn valid_credential_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=120).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

impl State {
    pub(crate) fn new(subscription_id: &str, tenant_id: &str) -> Self {
        State {
            subscription_id: subscription_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            clusters: BTreeMap::new(),
            identities: BTreeMap::new(),
            role_assignments: Vec::new(),
            role_definitions: BTreeMap::new(),
            page_size: FEDERATED_CREDENTIAL_LIMIT,
            calls: FakeCalls::new("FakeAzure", &OPERATIONS),
            next_guid: 1,
        }
    }

    /// A GUID unique within this fake.
    pub(crate) fn guid(&mut self) -> String {
        let n = self.next_guid;
        self.next_guid += 1;
        format!("00000000-0000-4000-8000-{n:012x}")
    }

    pub(crate) fn resource_group_id(&self, resource_group: &str) -> String {
        format!(
            "/subscriptions/{}/resourcegroups/{resource_group}",
            self.subscription_id
        )
    }

    // ---- calls, failures ------------------------------------------------------------------

    /// Counts a call and answers an injected failure when one matches.
    pub(crate) fn begin_call(&mut self, op: &str) -> Result<(), ArmError> {
        self.calls.begin(op).map_err(ArmError::injected)
    }

    // ---- setup ----------------------------------------------------------------------------

    pub(crate) fn add_cluster(&mut self, resource_group: &str, name: &str, issuer_url: &str) {
        assert!(
            !self.clusters.contains_key(&key(resource_group, name)),
            "FakeAzure::add_aks_cluster: cluster {resource_group}/{name} already exists"
        );
        let id = format!(
            "{}/providers/Microsoft.ContainerService/managedClusters/{name}",
            self.resource_group_id(resource_group)
        );
        self.clusters.insert(
            key(resource_group, name),
            ClusterRecord {
                id,
                name: name.to_owned(),
                location: "eastus".to_owned(),
                oidc_issuer_enabled: true,
                issuer_url: issuer_url.to_owned(),
                workload_identity_enabled: true,
            },
        );
    }

    pub(crate) fn cluster_mut(&mut self, resource_group: &str, name: &str) -> &mut ClusterRecord {
        self.clusters
            .get_mut(&key(resource_group, name))
            .unwrap_or_else(|| panic!("FakeAzure: no cluster {resource_group}/{name}"))
    }

    pub(crate) fn add_identity(&mut self, resource_group: &str, name: &str) -> IdentityRecord {
        assert!(
            !self.identities.contains_key(&key(resource_group, name)),
            "FakeAzure::add_identity: identity {resource_group}/{name} already exists"
        );
        let record = IdentityRecord {
            id: format!(
                "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
                self.resource_group_id(resource_group)
            ),
            name: name.to_owned(),
            location: "eastus".to_owned(),
            client_id: self.guid(),
            principal_id: self.guid(),
            tenant_id: self.tenant_id.clone(),
            credentials: BTreeMap::new(),
            busy_until: None,
        };
        self.identities
            .insert(key(resource_group, name), record.clone());
        record
    }

    pub(crate) fn identity_record(
        &self,
        resource_group: &str,
        name: &str,
    ) -> Option<&IdentityRecord> {
        self.identities.get(&key(resource_group, name))
    }

    pub(crate) fn delete_identity(&mut self, resource_group: &str, name: &str) {
        self.identities.remove(&key(resource_group, name));
    }

    pub(crate) fn add_role_definition(&mut self, guid: &str, role_name: &str) {
        let id = format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}");
        self.role_definitions.insert(
            guid.to_ascii_lowercase(),
            RoleDefinitionRecord {
                id,
                name: guid.to_owned(),
                role_name: role_name.to_owned(),
            },
        );
    }

    pub(crate) fn assign_role(&mut self, principal_id: &str, role_guid: &str, scope: &str) {
        let name = self.guid();
        self.role_assignments.push(RoleAssignmentRecord {
            id: format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"),
            name,
            scope: scope.to_owned(),
            role_definition_id: format!(
                "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}",
                self.subscription_id
            ),
            principal_id: principal_id.to_owned(),
        });
    }

    // ---- ManagedClusters and UserAssignedIdentities ------------------------------------------

    pub(crate) fn get_cluster(
        &self,
        resource_group: &str,
        name: &str,
    ) -> Result<ClusterRecord, ArmError> {
        self.clusters
            .get(&key(resource_group, name))
            .cloned()
            .ok_or_else(|| {
                ArmError::not_found(format!(
                    "The Resource 'Microsoft.ContainerService/managedClusters/{name}' under resource group '{resource_group}' was not found."
                ))
            })
    }

    fn identity(&self, resource_group: &str, name: &str) -> Result<&IdentityRecord, ArmError> {
        self.identities.get(&key(resource_group, name)).ok_or_else(|| {
            ArmError::not_found(format!(
                "The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/{name}' under resource group '{resource_group}' was not found."
            ))
        })
    }

    fn identity_mut(
        &mut self,
        resource_group: &str,
        name: &str,
    ) -> Result<&mut IdentityRecord, ArmError> {
        self.identities
            .get_mut(&key(resource_group, name))
            .ok_or_else(|| {
                ArmError::new(
                    404,
                    "ParentResourceNotFound",
                    format!(
                        "Can not perform requested operation on nested resource. Parent resource '{name}' not found."
                    ),
                )
            })
    }

    pub(crate) fn get_identity(
        &self,
        resource_group: &str,
        name: &str,
    ) -> Result<IdentityRecord, ArmError> {
        self.identity(resource_group, name).cloned()
    }

    // ---- federated identity credentials --------------------------------------------------------

    pub(crate) fn list_credentials(
        &self,
        resource_group: &str,
        identity: &str,
        from: usize,
    ) -> Result<Page, ArmError> {
        let record = self.identity(resource_group, identity)?;
        let all: Vec<&CredentialRecord> = record.credentials.values().collect();
        let end = (from + self.page_size.max(1)).min(all.len());
        Ok(Page {
            credentials: all
                .get(from..end)
                .unwrap_or_default()
                .iter()
                .map(|c| (*c).clone())
                .collect(),
            next: (end < all.len()).then_some(end),
        })
    }

    /// A write to an identity: refused with the concurrent-writes 409 while another is in
    /// flight (for the call's latency), as Azure does.
    fn begin_write(
        &mut self,
        resource_group: &str,
        identity: &str,
        window: Duration,
    ) -> Result<(), ArmError> {
        let now = Instant::now();
        let record = self.identity_mut(resource_group, identity)?;
        if record.busy_until.is_some_and(|until| until > now) {
            return Err(ArmError::new(
                409,
                CONCURRENT,
                format!(
                    "Too many Federated Identity Credentials are written concurrently for the managed identity '{identity}'. Please retry."
                ),
            ));
        }
        record.busy_until = (!window.is_zero()).then(|| now + window);
        Ok(())
    }

    /// FederatedIdentityCredentials_CreateOrUpdate, with Azure's rules: the name, one
    /// audience, issuer and subject, a unique issuer and subject, 20 credentials at most.
    /// Returns the credential and whether it was created (201) rather than replaced (200).
    pub(crate) fn put_credential(
        &mut self,
        resource_group: &str,
        identity: &str,
        name: &str,
        body: PutBody,
        window: Duration,
    ) -> Result<(CredentialRecord, bool), ArmError> {
        let PutBody {
            issuer,
            subject,
            audiences,
        } = body;
        if !valid_credential_name(name) {
            return Err(ArmError::bad_request(format!(
                "The federated identity credential name '{name}' is invalid. It must match ^[a-zA-Z0-9][a-zA-Z0-9-_]{{2,119}}$."
            )));
        }
        let (Some(issuer), Some(subject), Some(audiences)) = (issuer, subject, audiences) else {
            return Err(ArmError::bad_request(
                "The request format was unexpected. Federated Identity Credential must specify 'issuer', 'subject' and 'audience'.",
            ));
        };
        if audiences.len() != 1 {
            return Err(ArmError::bad_request(
                "Federated Identity Credential must have exactly one audience.",
            ));
        }
        if !issuer.starts_with("https://") {
            return Err(ArmError::bad_request(format!(
                "The issuer '{issuer}' is invalid: it must be an https URL."
            )));
        }
        self.begin_write(resource_group, identity, window)?;
        let record = self.identity_mut(resource_group, identity)?;
        let lower = name.to_ascii_lowercase();
        let duplicate = record
            .credentials
            .iter()
            .any(|(n, c)| *n != lower && c.issuer == issuer && c.subject == subject);
        if duplicate {
            return Err(ArmError::bad_request(
                "Issuer and subject combination already exists for this Managed Identity.",
            ));
        }
        let exists = record.credentials.contains_key(&lower);
        if !exists && record.credentials.len() >= FEDERATED_CREDENTIAL_LIMIT {
            return Err(ArmError::bad_request(format!(
                "The maximum number of federated identity credentials ({FEDERATED_CREDENTIAL_LIMIT}) for this managed identity has been reached."
            )));
        }
        let credential = CredentialRecord {
            name: record
                .credentials
                .get(&lower)
                .map_or_else(|| name.to_owned(), |c| c.name.clone()),
            id: format!("{}/federatedIdentityCredentials/{name}", record.id),
            issuer,
            subject,
            audiences,
        };
        record.credentials.insert(lower, credential.clone());
        Ok((credential, !exists))
    }

    /// FederatedIdentityCredentials_Delete: `true` (200) when it existed, `false` (204) when
    /// it did not.
    pub(crate) fn delete_credential(
        &mut self,
        resource_group: &str,
        identity: &str,
        name: &str,
        window: Duration,
    ) -> Result<bool, ArmError> {
        self.begin_write(resource_group, identity, window)?;
        let record = self.identity_mut(resource_group, identity)?;
        Ok(record
            .credentials
            .remove(&name.to_ascii_lowercase())
            .is_some())
    }

    /// Every credential of an identity (setup and inspection; no call counted).
    pub(crate) fn credentials(
        &self,
        resource_group: &str,
        identity: &str,
    ) -> Vec<CredentialRecord> {
        self.identities
            .get(&key(resource_group, identity))
            .map(|r| r.credentials.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds a credential as a user would, bypassing the write window (setup).
    pub(crate) fn insert_credential(
        &mut self,
        resource_group: &str,
        identity: &str,
        name: &str,
        issuer: &str,
        subject: &str,
        audiences: &[&str],
    ) {
        let record = self
            .identities
            .get_mut(&key(resource_group, identity))
            .unwrap_or_else(|| panic!("FakeAzure: no identity {resource_group}/{identity}"));
        let credential = CredentialRecord {
            name: name.to_owned(),
            id: format!("{}/federatedIdentityCredentials/{name}", record.id),
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
        };
        record
            .credentials
            .insert(name.to_ascii_lowercase(), credential);
    }

    // ---- role assignments and definitions ----------------------------------------------------

    pub(crate) fn role_assignments_of(&self, principal_id: &str) -> Vec<RoleAssignmentRecord> {
        self.role_assignments
            .iter()
            .filter(|a| a.principal_id.eq_ignore_ascii_case(principal_id))
            .cloned()
            .collect()
    }

    pub(crate) fn role_definition(&self, guid: &str) -> Result<RoleDefinitionRecord, ArmError> {
        self.role_definitions
            .get(&guid.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| {
                ArmError::new(
                    404,
                    "RoleDefinitionDoesNotExist",
                    format!("The specified role definition with ID '{guid}' does not exist."),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_follow_azures_rule() {
        for ok in ["abc", "a-b_c", &"x".repeat(120), "0ab"] {
            assert!(valid_credential_name(ok), "{ok}");
        }
        for bad in ["ab", "-ab", "_ab", "a b", "a.b", &"x".repeat(121), "é12"] {
            assert!(!valid_credential_name(bad), "{bad}");
        }
    }
}
