//! [`EksIamApi`] over the AWS SDK for Rust (`aws-sdk-eks`, `aws-sdk-iam`): the only module of
//! this crate that sees SDK types.
//!
//! Every AWS request runs in its own `tracing` span named `aws.call` (fields: `operation` and
//! whichever of `cluster`, `namespace`, `service_account`, `role`, … apply; never a secret), and
//! every SDK error goes through one function, `map_sdk_error`, which turns it into a
//! porter-identity [`Error`] with the AWS operation name, the AWS message and, where the caller
//! can act on it, a fix.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use aws_sdk_eks::config::retry::RetryConfig;
use aws_sdk_eks::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eks::types::PodIdentityAssociation;
use porter_identity_core::provider::collect_pages;
use porter_identity_core::{Cloud, Error, ErrorKind, Result};
use tracing::Instrument;

use crate::api::{
    AddonInfo, Association, AssociationPage, AssociationSettings, AssociationSummary,
    AttachedPolicy, ClusterInfo, CreateAssociation, EksIamApi, FargateProfile, FargateSelector,
    OidcProvider, RoleInfo, UpdateAssociation,
};
use crate::operation as op;

/// [`EksIamApi`] over the real AWS SDK clients.
///
/// ```no_run
/// # async fn run() {
/// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
/// let api = porter_identity_aws::SdkApi::from_sdk_config(&config);
/// # let _ = api;
/// # }
/// ```
///
/// Cloning is cheap: the SDK clients are reference-counted.
#[derive(Clone)]
pub struct SdkApi {
    eks: aws_sdk_eks::Client,
    iam: aws_sdk_iam::Client,
}

impl SdkApi {
    /// Wraps ready-made SDK clients: their region, credentials, endpoint, timeouts and retry
    /// settings are used as they are. Build them with `RetryConfig::disabled()` so that the
    /// provider's [`RetryPolicy`](porter_identity_core::RetryPolicy) stays the only retry layer
    /// ([`SdkApi::from_sdk_config`] does).
    pub fn new(eks: aws_sdk_eks::Client, iam: aws_sdk_iam::Client) -> Self {
        Self { eks, iam }
    }

    /// Builds both SDK clients from one shared AWS configuration, e.g. the default credential
    /// chain's `aws_config::load_defaults(..)`, with the SDK's own retries turned off.
    ///
    /// The provider's [`RetryPolicy`](porter_identity_core::RetryPolicy) is the one retry
    /// layer: under it, the SDK's standard mode (3 attempts) would multiply every attempt by
    /// three and wait outside its deadline.
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        let eks = aws_sdk_eks::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .build();
        let iam = aws_sdk_iam::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .build();
        Self::new(
            aws_sdk_eks::Client::from_conf(eks),
            aws_sdk_iam::Client::from_conf(iam),
        )
    }
}

// Written by hand: the SDK clients' own Debug output includes their whole configuration, and
// only the region is useful (and safe) in logs.
impl fmt::Debug for SdkApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkApi")
            .field(
                "region",
                &self.eks.config().region().map(|r| r.as_ref().to_owned()),
            )
            .finish()
    }
}

/// The AWS service a call goes to; its IAM action prefix names the permission in fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// Amazon EKS (`eks:` actions).
    Eks,
    /// AWS IAM (`iam:` actions).
    Iam,
}

impl Service {
    fn action_prefix(self) -> &'static str {
        match self {
            Service::Eks => "eks",
            Service::Iam => "iam",
        }
    }

    fn display_name(self) -> &'static str {
        match self {
            Service::Eks => "EKS",
            Service::Iam => "IAM",
        }
    }
}

/// The fix for every credential problem.
const CREDENTIALS_FIX: &str = "refresh the AWS credentials (e.g. `aws sso login`), check that \
     AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) selects the intended account, and \
     check with `aws sts get-caller-identity`";

/// Error codes, as AWS spells them across the JSON (EKS) and query (IAM) protocols.
fn kind_of_code(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "ResourceNotFoundException" | "NoSuchEntity" | "NotFoundException" => ErrorKind::NotFound,
        "ResourceInUseException" | "EntityAlreadyExists" => ErrorKind::AlreadyExists,
        "ResourceLimitExceededException" | "LimitExceeded" => ErrorKind::LimitExceeded,
        "Throttling"
        | "ThrottlingException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "RequestThrottledException" => ErrorKind::Throttled,
        "ServerException"
        | "ServiceFailure"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "InternalFailure"
        | "InternalError"
        | "ResourcePropagationDelayException" => ErrorKind::Unavailable,
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
            ErrorKind::PermissionDenied
        }
        "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "RequestExpired" => ErrorKind::Unauthenticated,
        "InvalidParameterException"
        | "InvalidRequestException"
        | "ValidationError"
        | "ValidationException"
        | "InvalidInput"
        | "MalformedPolicyDocument" => ErrorKind::InvalidInput,
        // IAM: another writer changed the same entity; a retry sees the new state.
        "ConcurrentModification" | "DeleteConflict" | "UnmodifiableEntity" => ErrorKind::Conflict,
        _ => return None,
    })
}

/// Text of the SDK's credential-chain and auth-scheme errors. The SDK resolves credentials
/// while it signs the request, so a missing or broken credential chain reaches us as a
/// *dispatch* failure; these texts tell it apart from a network problem. (The credential error
/// type itself lives in `aws-credential-types`, which this crate does not depend on, so it
/// cannot be downcast to.) The unit tests pin them against the SDK version in use.
const CREDENTIAL_PROBLEM_MARKERS: &[&str] = &[
    "the credential provider was not enabled",
    "an error occurred while loading credentials",
    "the credentials provider was not properly configured",
    "credentials provider timed out",
    "unexpected credentials error",
    "no providers in chain provided credentials",
];

/// The SDK's text when the client was built without any credentials provider.
const NO_IDENTITY_RESOLVER: &str = "there was no identity resolver";

/// The fix for a request that never reached AWS.
const NETWORK_FIX: &str = "check the network path to AWS (proxy, DNS, firewall) and any \
     endpoint override (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_EKS, AWS_ENDPOINT_URL_IAM)";

/// The fix for a configuration without a region.
const REGION_FIX: &str = "set AWS_REGION, or a region in the AWS profile";

/// Whether the endpoint resolver failed for want of a region (the SDK's endpoint rules say
/// "Invalid Configuration: Missing Region"): configuration, not a network problem.
fn names_missing_region(chain: &str) -> bool {
    chain.contains("Missing Region") || chain.contains("region must be set")
}

/// Maps any AWS SDK error to a porter-identity [`Error`] of cloud [`Cloud::Aws`].
///
/// - service errors by their AWS error code (see the table in [`crate::api::EksIamApi`]), then by
///   HTTP status where the code is unknown (429 → `Throttled`, 5xx → `Unavailable`); the message
///   is the AWS message and the source is the SDK's typed service error;
/// - `AccessDenied*` gets a fix naming the IAM action (`<service>:<operation>`);
/// - credential problems (expired, invalid, or none found) → `Unauthenticated` with a fix;
/// - no response at all (connection refused, DNS, TLS, timeouts) → `Unavailable` (retryable),
///   with the connector's reason in the message.
pub(crate) fn map_sdk_error<E>(service: Service, operation: &'static str, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let cloud =
        |kind: ErrorKind, message: String| Error::cloud(kind, Cloud::Aws, operation, message);

    if let Some(problem) = credential_problem(&err) {
        return cloud(
            ErrorKind::Unauthenticated,
            format!("no usable AWS credentials: {problem}"),
        )
        .with_fix(CREDENTIALS_FIX)
        .with_source(err);
    }

    match err {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let service_err = context.into_err();
            let code = service_err.code().map(str::to_owned);
            let message = service_err.message().map(str::to_owned);
            service_error(service, operation, code.as_deref(), message, status)
                .with_source(service_err)
        }
        SdkError::TimeoutError(_) => cloud(
            ErrorKind::Unavailable,
            format!(
                "the {} endpoint did not answer in time: {}",
                service.display_name(),
                source_chain(&err)
            ),
        )
        .with_source(err),
        SdkError::DispatchFailure(ref failure) if failure.is_user() => {
            // The connector refused the request itself (e.g. an unsupported URL scheme):
            // retrying cannot help, the configuration must change.
            let message = format!("the request could not be sent: {}", source_chain(&err));
            cloud(ErrorKind::Other, message)
                .with_fix("check the endpoint URL (AWS_ENDPOINT_URL*) and the region")
                .with_source(err)
        }
        SdkError::DispatchFailure(_) => {
            let chain = source_chain(&err);
            if names_missing_region(&chain) {
                return cloud(ErrorKind::InvalidInput, format!("no AWS region: {chain}"))
                    .with_fix(REGION_FIX)
                    .with_source(err);
            }
            cloud(
                ErrorKind::Unavailable,
                format!(
                    "could not reach the {} endpoint: {chain}",
                    service.display_name()
                ),
            )
            .with_fix(NETWORK_FIX)
            .with_source(err)
        }
        SdkError::ResponseError(ref response) => {
            let status = response.raw().status().as_u16();
            let kind = if status == 429 {
                ErrorKind::Throttled
            } else if status >= 500 {
                ErrorKind::Unavailable
            } else {
                ErrorKind::Other
            };
            let message = format!(
                "unreadable response from {} (HTTP {status}): {}",
                service.display_name(),
                source_chain(&err)
            );
            cloud(kind, message).with_source(err)
        }
        SdkError::ConstructionFailure(_) => {
            let chain = source_chain(&err);
            if names_missing_region(&chain) {
                return cloud(ErrorKind::InvalidInput, format!("no AWS region: {chain}"))
                    .with_fix(REGION_FIX)
                    .with_source(err);
            }
            // A required request field was missing or invalid before anything was sent.
            cloud(
                ErrorKind::InvalidInput,
                format!("the request could not be built: {chain}"),
            )
            .with_source(err)
        }
        // `SdkError` is non-exhaustive.
        other => {
            let message = source_chain(&other);
            cloud(ErrorKind::Other, message).with_source(other)
        }
    }
}

/// The error of a response that carried an AWS error (or at least an error status).
fn service_error(
    service: Service,
    operation: &'static str,
    code: Option<&str>,
    message: Option<String>,
    status: u16,
) -> Error {
    let kind = code.and_then(kind_of_code).unwrap_or(match status {
        429 => ErrorKind::Throttled,
        500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    });
    let message = match (code, message.filter(|m| !m.trim().is_empty())) {
        // A code we map is implied by the kind; the AWS message says the rest.
        (Some(code), Some(message)) if kind_of_code(code).is_some() => message,
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => format!("{code} (HTTP {status})"),
        // No AWS error code at all: most likely the endpoint is not an AWS API (a proxy, or an
        // emulator that does not implement the operation), so say so rather than guess a kind.
        (None, Some(message)) => format!("HTTP {status} without an AWS error code: {message}"),
        (None, None) => format!(
            "HTTP {status} without an AWS error code (does the endpoint serve the {} API?)",
            service.display_name()
        ),
    };
    let err = Error::cloud(kind, Cloud::Aws, operation, message);
    match kind {
        ErrorKind::PermissionDenied => {
            let action = format!("{}:{operation}", service.action_prefix());
            err.with_fix(format!(
                "allow `{action}` to the caller's IAM principal (see `aws sts get-caller-identity`), \
                 and check that no permissions boundary, SCP or resource policy denies it"
            ))
        }
        ErrorKind::Unauthenticated => err.with_fix(CREDENTIALS_FIX),
        ErrorKind::Conflict => err.retryable(true),
        _ => err,
    }
}

/// The first credential problem named in the error's source chain, if any.
fn credential_problem(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if text.contains(NO_IDENTITY_RESOLVER) {
            // The SDK's own sentence for this goes on about service models; ours says what
            // the caller can change.
            return Some("the AWS configuration has no credentials provider".to_owned());
        }
        if CREDENTIAL_PROBLEM_MARKERS
            .iter()
            .any(|marker| text.contains(marker))
        {
            // Start at the credential error: what wraps it ("dispatch failure", "other") says
            // nothing to the reader.
            return Some(source_chain(e));
        }
        current = e.source();
    }
    None
}

/// The error's message and those of its sources, joined with `: `, skipping the SDK's generic
/// wrappers' words where a source follows (they repeat what the caller already knows).
fn source_chain(err: &(dyn StdError + 'static)) -> String {
    const GENERIC: &[&str] = &[
        "dispatch failure",
        "request has timed out",
        "failed to construct request",
        "response error",
        "service error",
        "other",
    ];
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        let generic = GENERIC.contains(&text.as_str()) && e.source().is_some();
        if !generic && !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// Runs one AWS request inside its span and maps its error, so that both the request's own
/// SDK spans and our error event are attributed to the call.
async fn call<T, E>(
    span: tracing::Span,
    service: Service,
    operation: &'static str,
    request: impl Future<Output = std::result::Result<T, SdkError<E>>>,
) -> Result<T>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    async move {
        request.await.map_err(|err| {
            let err = map_sdk_error(service, operation, err);
            tracing::debug!(kind = %err.kind(), error = %err, "AWS call failed");
            err
        })
    }
    .instrument(span)
    .await
}

/// An error for a response that lacks a field AWS always sends.
fn missing_field(operation: &'static str, field: &str) -> Error {
    Error::cloud(
        ErrorKind::Other,
        Cloud::Aws,
        operation,
        format!("the response has no `{field}`"),
    )
}

/// A field AWS always sends, owned; its absence is an error naming it.
fn required(operation: &'static str, field: &str, value: Option<&str>) -> Result<String> {
    value
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| missing_field(operation, field))
}

/// The port's association from the SDK's (Describe/Create/Update answers share the shape).
fn association(
    operation: &'static str,
    association: Option<&PodIdentityAssociation>,
) -> Result<Association> {
    let a = association.ok_or_else(|| missing_field(operation, "association"))?;
    Ok(Association {
        association_id: required(operation, "associationId", a.association_id())?,
        association_arn: required(operation, "associationArn", a.association_arn())?,
        namespace: required(operation, "namespace", a.namespace())?,
        service_account: required(operation, "serviceAccount", a.service_account())?,
        role_arn: required(operation, "roleArn", a.role_arn())?,
        settings: AssociationSettings {
            target_role_arn: a
                .target_role_arn()
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            disable_session_tags: a.disable_session_tags().unwrap_or(false),
            policy: a.policy().filter(|p| !p.is_empty()).map(str::to_owned),
        },
        external_id: a.external_id().filter(|e| !e.is_empty()).map(str::to_owned),
        owner_arn: a.owner_arn().filter(|o| !o.is_empty()).map(str::to_owned),
        changed_at: a
            .modified_at()
            .or(a.created_at())
            .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
        tags: a
            .tags()
            .map(|tags| {
                tags.iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default(),
    })
}

#[async_trait]
impl EksIamApi for SdkApi {
    async fn describe_cluster(&self, cluster: &str) -> Result<ClusterInfo> {
        const OP: &str = op::DESCRIBE_CLUSTER.name();
        let span = tracing::info_span!("aws.call", operation = OP, cluster);
        let out = call(
            span,
            Service::Eks,
            OP,
            self.eks.describe_cluster().name(cluster).send(),
        )
        .await?;
        let c = out.cluster().ok_or_else(|| missing_field(OP, "cluster"))?;
        Ok(ClusterInfo {
            name: c.name().unwrap_or(cluster).to_owned(),
            arn: required(OP, "arn", c.arn())?,
            status: c
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            oidc_issuer: c
                .identity()
                .and_then(|i| i.oidc())
                .and_then(|o| o.issuer())
                .filter(|i| !i.is_empty())
                .map(str::to_owned),
        })
    }

    async fn describe_addon(&self, cluster: &str, addon: &str) -> Result<Option<AddonInfo>> {
        const OP: &str = op::DESCRIBE_ADDON.name();
        let span = tracing::info_span!("aws.call", operation = OP, cluster, addon);
        let request = self
            .eks
            .describe_addon()
            .cluster_name(cluster)
            .addon_name(addon)
            .send();
        let out = match call(span, Service::Eks, OP, request).await {
            Ok(out) => out,
            // EKS answers ResourceNotFoundException for an add-on that is not installed. (It
            // answers the same for a missing cluster; the provider checks the cluster first.)
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let a = out.addon().ok_or_else(|| missing_field(OP, "addon"))?;
        let health_issues = a
            .health()
            .map(|h| {
                h.issues()
                    .iter()
                    .map(|issue| {
                        let code = issue.code().map(|c| c.as_str()).unwrap_or("Unknown");
                        format!("{code}: {}", issue.message().unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(AddonInfo {
            name: a.addon_name().unwrap_or(addon).to_owned(),
            status: a
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            health_issues,
        }))
    }

    async fn get_role(&self, role_name: &str) -> Result<RoleInfo> {
        const OP: &str = op::GET_ROLE.name();
        let span = tracing::info_span!("aws.call", operation = OP, role = role_name);
        let out = call(
            span,
            Service::Iam,
            OP,
            self.iam.get_role().role_name(role_name).send(),
        )
        .await?;
        let role = out.role().ok_or_else(|| missing_field(OP, "Role"))?;
        Ok(RoleInfo {
            name: role.role_name().to_owned(),
            arn: required(OP, "Arn", Some(role.arn()))?,
            // Left URL-encoded, as IAM sends it: decoding is the policy parser's job.
            assume_role_policy_document: required(
                OP,
                "AssumeRolePolicyDocument",
                role.assume_role_policy_document(),
            )?,
        })
    }

    async fn list_pod_identity_associations<'a>(
        &self,
        cluster: &str,
        namespace: Option<&'a str>,
        service_account: Option<&'a str>,
        next_token: Option<String>,
    ) -> Result<AssociationPage> {
        const OP: &str = op::LIST_POD_IDENTITY_ASSOCIATIONS.name();
        let span = tracing::info_span!(
            "aws.call",
            operation = OP,
            cluster,
            namespace,
            service_account,
            next_page = next_token.is_some()
        );
        let request = self
            .eks
            .list_pod_identity_associations()
            .cluster_name(cluster)
            .set_namespace(namespace.map(str::to_owned))
            .set_service_account(service_account.map(str::to_owned))
            .set_next_token(next_token)
            .send();
        let out = call(span, Service::Eks, OP, request).await?;
        let associations = out
            .associations()
            .iter()
            .map(|a| {
                Ok(AssociationSummary {
                    association_id: required(OP, "associationId", a.association_id())?,
                    association_arn: required(OP, "associationArn", a.association_arn())?,
                    namespace: required(OP, "namespace", a.namespace())?,
                    service_account: required(OP, "serviceAccount", a.service_account())?,
                    owner_arn: a.owner_arn().filter(|o| !o.is_empty()).map(str::to_owned),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AssociationPage {
            associations,
            next_token: out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        })
    }

    async fn describe_pod_identity_association(
        &self,
        cluster: &str,
        association_id: &str,
    ) -> Result<Association> {
        const OP: &str = op::DESCRIBE_POD_IDENTITY_ASSOCIATION.name();
        let span = tracing::info_span!("aws.call", operation = OP, cluster, association_id);
        let request = self
            .eks
            .describe_pod_identity_association()
            .cluster_name(cluster)
            .association_id(association_id)
            .send();
        let out = call(span, Service::Eks, OP, request).await?;
        association(OP, out.association())
    }

    async fn create_pod_identity_association(
        &self,
        input: CreateAssociation,
    ) -> Result<Association> {
        const OP: &str = op::CREATE_POD_IDENTITY_ASSOCIATION.name();
        let span = tracing::info_span!(
            "aws.call",
            operation = OP,
            cluster = input.cluster.as_str(),
            namespace = input.namespace.as_str(),
            service_account = input.service_account.as_str(),
            role_arn = input.role_arn.as_str(),
            target_role_arn = input.settings.target_role_arn.as_deref()
        );
        let tags = (!input.tags.is_empty())
            .then(|| input.tags.into_iter().collect::<HashMap<String, String>>());
        let request = self
            .eks
            .create_pod_identity_association()
            .cluster_name(input.cluster)
            .namespace(input.namespace)
            .service_account(input.service_account)
            .role_arn(input.role_arn)
            .set_target_role_arn(input.settings.target_role_arn)
            // Sent only when on: false is EKS's default, and an older endpoint (or emulator)
            // that lacks the field then sees the request it knows.
            .set_disable_session_tags(input.settings.disable_session_tags.then_some(true))
            .set_policy(input.settings.policy)
            .client_request_token(input.client_request_token)
            .set_tags(tags)
            .send();
        let out = call(span, Service::Eks, OP, request).await?;
        association(OP, out.association())
    }

    async fn update_pod_identity_association(
        &self,
        input: UpdateAssociation,
    ) -> Result<Association> {
        const OP: &str = op::UPDATE_POD_IDENTITY_ASSOCIATION.name();
        let span = tracing::info_span!(
            "aws.call",
            operation = OP,
            cluster = input.cluster.as_str(),
            association_id = input.association_id.as_str(),
            role_arn = input.role_arn.as_str(),
            target_role_arn = input.target_role_arn.as_deref()
        );
        let request = self
            .eks
            .update_pod_identity_association()
            .cluster_name(input.cluster)
            .association_id(input.association_id)
            .role_arn(input.role_arn)
            .set_target_role_arn(input.target_role_arn)
            .set_disable_session_tags(input.disable_session_tags)
            .set_policy(input.policy)
            .send();
        let out = call(span, Service::Eks, OP, request).await?;
        association(OP, out.association())
    }

    async fn delete_pod_identity_association(
        &self,
        cluster: &str,
        association_id: &str,
    ) -> Result<()> {
        const OP: &str = op::DELETE_POD_IDENTITY_ASSOCIATION.name();
        let span = tracing::info_span!("aws.call", operation = OP, cluster, association_id);
        let request = self
            .eks
            .delete_pod_identity_association()
            .cluster_name(cluster)
            .association_id(association_id)
            .send();
        call(span, Service::Eks, OP, request).await?;
        Ok(())
    }

    async fn list_attached_role_policies(&self, role_name: &str) -> Result<Vec<AttachedPolicy>> {
        const OP: &str = op::LIST_ATTACHED_ROLE_POLICIES.name();
        collect_pages(op::LIST_ATTACHED_ROLE_POLICIES, |marker, page| async move {
            let span = tracing::info_span!("aws.call", operation = OP, role = role_name, page);
            let request = self
                .iam
                .list_attached_role_policies()
                .role_name(role_name)
                .set_marker(marker)
                .send();
            let out = call(span, Service::Iam, OP, request).await?;
            let items = out
                .attached_policies()
                .iter()
                .map(|p| {
                    Ok(AttachedPolicy {
                        name: required(OP, "PolicyName", p.policy_name())?,
                        arn: required(OP, "PolicyArn", p.policy_arn())?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            // IAM's Marker only means "more" when IsTruncated says so.
            let next = out.is_truncated().then(|| out.marker().map(str::to_owned));
            Ok((items, next.flatten()))
        })
        .await
    }

    async fn get_managed_policy_document(&self, policy_arn: &str) -> Result<String> {
        let version_id = {
            const OP: &str = op::GET_POLICY.name();
            let span = tracing::info_span!("aws.call", operation = OP, policy_arn);
            let out = call(
                span,
                Service::Iam,
                OP,
                self.iam.get_policy().policy_arn(policy_arn).send(),
            )
            .await?;
            let policy = out.policy().ok_or_else(|| missing_field(OP, "Policy"))?;
            required(OP, "DefaultVersionId", policy.default_version_id())?
        };
        const OP: &str = op::GET_POLICY_VERSION.name();
        let span = tracing::info_span!(
            "aws.call",
            operation = OP,
            policy_arn,
            version_id = version_id.as_str()
        );
        let request = self
            .iam
            .get_policy_version()
            .policy_arn(policy_arn)
            .version_id(&version_id)
            .send();
        let out = call(span, Service::Iam, OP, request).await?;
        let version = out
            .policy_version()
            .ok_or_else(|| missing_field(OP, "PolicyVersion"))?;
        required(OP, "Document", version.document())
    }

    async fn list_role_policies(&self, role_name: &str) -> Result<Vec<String>> {
        const OP: &str = op::LIST_ROLE_POLICIES.name();
        collect_pages(op::LIST_ROLE_POLICIES, |marker, page| async move {
            let span = tracing::info_span!("aws.call", operation = OP, role = role_name, page);
            let request = self
                .iam
                .list_role_policies()
                .role_name(role_name)
                .set_marker(marker)
                .send();
            let out = call(span, Service::Iam, OP, request).await?;
            let next = out.is_truncated().then(|| out.marker().map(str::to_owned));
            Ok((out.policy_names().to_vec(), next.flatten()))
        })
        .await
    }

    async fn get_role_policy(&self, role_name: &str, policy_name: &str) -> Result<String> {
        const OP: &str = op::GET_ROLE_POLICY.name();
        let span = tracing::info_span!(
            "aws.call",
            operation = OP,
            role = role_name,
            policy = policy_name
        );
        let request = self
            .iam
            .get_role_policy()
            .role_name(role_name)
            .policy_name(policy_name)
            .send();
        let out = call(span, Service::Iam, OP, request).await?;
        required(OP, "PolicyDocument", Some(out.policy_document()))
    }

    async fn list_open_id_connect_providers(&self) -> Result<Vec<String>> {
        const OP: &str = op::LIST_OPEN_ID_CONNECT_PROVIDERS.name();
        let span = tracing::info_span!("aws.call", operation = OP);
        let request = self.iam.list_open_id_connect_providers().send();
        let out = call(span, Service::Iam, OP, request).await?;
        Ok(out
            .open_id_connect_provider_list()
            .iter()
            .filter_map(|p| p.arn().map(str::to_owned))
            .collect())
    }

    async fn get_open_id_connect_provider(&self, arn: &str) -> Result<OidcProvider> {
        const OP: &str = op::GET_OPEN_ID_CONNECT_PROVIDER.name();
        let span = tracing::info_span!("aws.call", operation = OP, arn);
        let request = self
            .iam
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send();
        let out = call(span, Service::Iam, OP, request).await?;
        Ok(OidcProvider {
            arn: arn.to_owned(),
            url: required(OP, "Url", out.url())?,
            client_ids: out.client_id_list().to_vec(),
        })
    }

    async fn list_fargate_profiles(&self, cluster: &str) -> Result<Vec<String>> {
        const OP: &str = op::LIST_FARGATE_PROFILES.name();
        collect_pages(op::LIST_FARGATE_PROFILES, |token, page| async move {
            let span = tracing::info_span!("aws.call", operation = OP, cluster, page);
            let request = self
                .eks
                .list_fargate_profiles()
                .cluster_name(cluster)
                .set_next_token(token)
                .send();
            let out = call(span, Service::Eks, OP, request).await?;
            let next = out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            Ok((out.fargate_profile_names().to_vec(), next))
        })
        .await
    }

    async fn describe_fargate_profile(&self, cluster: &str, name: &str) -> Result<FargateProfile> {
        const OP: &str = op::DESCRIBE_FARGATE_PROFILE.name();
        let span = tracing::info_span!("aws.call", operation = OP, cluster, profile = name);
        let request = self
            .eks
            .describe_fargate_profile()
            .cluster_name(cluster)
            .fargate_profile_name(name)
            .send();
        let out = call(span, Service::Eks, OP, request).await?;
        let p = out
            .fargate_profile()
            .ok_or_else(|| missing_field(OP, "fargateProfile"))?;
        Ok(FargateProfile {
            name: p.fargate_profile_name().unwrap_or(name).to_owned(),
            status: p
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            selectors: p
                .selectors()
                .iter()
                .map(|sel| FargateSelector {
                    namespace: sel.namespace().unwrap_or_default().to_owned(),
                    labels: sel
                        .labels()
                        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests;
