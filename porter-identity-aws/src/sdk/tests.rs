//! Unit tests of [`super::map_sdk_error`] on synthetic SDK errors, and of [`super::SdkApi`]
//! against tiny local HTTP servers (error wire formats, pagination, request contents). The
//! wire tests against moto are in `tests/moto_wire.rs`.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_eks::config::http::HttpResponse;
use aws_sdk_eks::config::retry::RetryConfig;
use aws_sdk_eks::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_eks::error::{ConnectorError, ErrorMetadata, SdkError};
use aws_sdk_eks::operation::create_pod_identity_association::CreatePodIdentityAssociationError;
use aws_sdk_iam::operation::get_role::GetRoleError;
use aws_smithy_types::body::SdkBody;
use porter_identity_core::{Cloud, ErrorKind};

use super::*;

const ACCESS_KEY: &str = "AKIDUNITTESTKEY00001";
const SECRET_KEY: &str = "unit/test/secret/key/never/printed/0000";

fn meta(code: Option<&str>, message: Option<&str>) -> ErrorMetadata {
    let mut meta = ErrorMetadata::builder();
    if let Some(code) = code {
        meta = meta.code(code);
    }
    if let Some(message) = message {
        meta = meta.message(message);
    }
    meta.build()
}

fn raw(status: u16) -> HttpResponse {
    HttpResponse::new(status.try_into().unwrap(), SdkBody::empty())
}

fn eks_error(
    code: Option<&str>,
    message: Option<&str>,
    status: u16,
) -> SdkError<CreatePodIdentityAssociationError> {
    SdkError::service_error(
        CreatePodIdentityAssociationError::generic(meta(code, message)),
        raw(status),
    )
}

fn iam_error(code: Option<&str>, message: Option<&str>, status: u16) -> SdkError<GetRoleError> {
    SdkError::service_error(GetRoleError::generic(meta(code, message)), raw(status))
}

fn map_eks(err: SdkError<CreatePodIdentityAssociationError>) -> Error {
    map_sdk_error(Service::Eks, "CreatePodIdentityAssociation", err)
}

fn map_iam(err: SdkError<GetRoleError>) -> Error {
    map_sdk_error(Service::Iam, "GetRole", err)
}

#[test]
fn service_error_codes_map_to_kinds() {
    let cases: &[(&str, u16, ErrorKind)] = &[
        ("ResourceNotFoundException", 404, ErrorKind::NotFound),
        ("NoSuchEntity", 404, ErrorKind::NotFound),
        ("NotFoundException", 404, ErrorKind::NotFound),
        ("ResourceInUseException", 409, ErrorKind::AlreadyExists),
        ("EntityAlreadyExists", 409, ErrorKind::AlreadyExists),
        (
            "ResourceLimitExceededException",
            400,
            ErrorKind::LimitExceeded,
        ),
        ("LimitExceeded", 409, ErrorKind::LimitExceeded),
        ("Throttling", 400, ErrorKind::Throttled),
        ("ThrottlingException", 400, ErrorKind::Throttled),
        ("TooManyRequestsException", 429, ErrorKind::Throttled),
        ("RequestLimitExceeded", 503, ErrorKind::Throttled),
        ("ServerException", 500, ErrorKind::Unavailable),
        ("ServiceFailure", 500, ErrorKind::Unavailable),
        ("ServiceUnavailable", 503, ErrorKind::Unavailable),
        ("InternalFailure", 500, ErrorKind::Unavailable),
        ("AccessDenied", 403, ErrorKind::PermissionDenied),
        ("AccessDeniedException", 403, ErrorKind::PermissionDenied),
        ("UnauthorizedOperation", 403, ErrorKind::PermissionDenied),
        ("InvalidClientTokenId", 403, ErrorKind::Unauthenticated),
        (
            "UnrecognizedClientException",
            403,
            ErrorKind::Unauthenticated,
        ),
        ("ExpiredToken", 403, ErrorKind::Unauthenticated),
        ("ExpiredTokenException", 403, ErrorKind::Unauthenticated),
        ("InvalidSignatureException", 403, ErrorKind::Unauthenticated),
        ("SignatureDoesNotMatch", 403, ErrorKind::Unauthenticated),
        ("InvalidParameterException", 400, ErrorKind::InvalidInput),
        ("InvalidRequestException", 400, ErrorKind::InvalidInput),
        ("ValidationError", 400, ErrorKind::InvalidInput),
        ("MalformedPolicyDocument", 400, ErrorKind::InvalidInput),
        ("ConcurrentModification", 409, ErrorKind::Conflict),
        // Unknown codes fall back to the status.
        ("SomethingNew", 400, ErrorKind::Other),
        ("SomethingNew", 429, ErrorKind::Throttled),
        ("SomethingNew", 502, ErrorKind::Unavailable),
    ];
    for &(code, status, kind) in cases {
        let err = map_eks(eks_error(Some(code), Some("the AWS message"), status));
        assert_eq!(err.kind(), kind, "{code} (HTTP {status}): {err}");
        assert_eq!(err.operation(), Some("CreatePodIdentityAssociation"));
        assert_eq!(err.cloud_name(), Some(Cloud::Aws));
        assert_eq!(
            err.is_retryable(),
            matches!(
                kind,
                ErrorKind::Throttled | ErrorKind::Unavailable | ErrorKind::Conflict
            ),
            "{code}"
        );
        assert!(err.to_string().contains("the AWS message"), "{err}");
    }
}

#[test]
fn throttling_reads_as_the_aws_message() {
    let err = map_eks(eks_error(
        Some("ThrottlingException"),
        Some("Rate exceeded"),
        400,
    ));
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "aws CreatePodIdentityAssociation failed (throttled): Rate exceeded"
    );
    // The typed SDK error is kept as the source, with the AWS code in it.
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("ThrottlingException"), "{source}");
}

#[test]
fn access_denied_names_the_iam_action() {
    let err = map_eks(eks_error(
        Some("AccessDeniedException"),
        Some("User: arn:aws:iam::123456789012:user/ci is not authorized"),
        403,
    ));
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(!err.is_retryable());
    let fix = err.fix().unwrap();
    assert!(fix.contains("`eks:CreatePodIdentityAssociation`"), "{fix}");

    let err = map_iam(iam_error(Some("AccessDenied"), Some("not authorized"), 403));
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.fix().unwrap().contains("`iam:GetRole`"), "{err}");
    assert_eq!(err.operation(), Some("GetRole"));
}

#[test]
fn expired_credentials_say_how_to_refresh() {
    let err = map_iam(iam_error(
        Some("ExpiredToken"),
        Some("The security token included in the request is expired"),
        403,
    ));
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    let fix = err.fix().unwrap();
    assert!(fix.contains("aws sso login"), "{fix}");
    assert!(fix.contains("AWS_PROFILE"), "{fix}");
}

#[test]
fn unknown_codes_keep_the_code_in_the_message() {
    let err = map_eks(eks_error(Some("ClientException"), Some("bad thing"), 400));
    assert_eq!(err.kind(), ErrorKind::Other);
    assert!(
        err.to_string().contains("ClientException: bad thing"),
        "{err}"
    );
}

#[test]
fn responses_without_an_aws_code_are_judged_by_status() {
    let err = map_eks(eks_error(None, None, 404));
    assert_eq!(err.kind(), ErrorKind::Other);
    assert!(
        err.to_string()
            .contains("HTTP 404 without an AWS error code"),
        "{err}"
    );

    let err = map_eks(eks_error(None, None, 503));
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retryable());

    let err = map_eks(eks_error(None, Some("slow down"), 429));
    assert_eq!(err.kind(), ErrorKind::Throttled);
}

#[test]
fn connection_failures_are_unavailable_and_retryable() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
    let err = map_eks(SdkError::dispatch_failure(ConnectorError::io(Box::new(io))));
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("could not reach the EKS endpoint"), "{text}");
    assert!(text.contains("connection refused"), "{text}");

    let err = map_iam(SdkError::timeout_error("read timed out after 3s"));
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retryable());
    assert!(err.to_string().contains("read timed out"), "{err}");

    let timeout = ConnectorError::timeout("connect timeout".into());
    let err = map_iam(SdkError::dispatch_failure(timeout));
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

#[test]
fn credential_chain_failures_are_unauthenticated() {
    // The SDK reports a failed credential chain as a dispatch failure whose source is the
    // credential error; its text is what identifies it.
    let inner = std::io::Error::other("the credential provider was not enabled");
    let err = map_eks(SdkError::dispatch_failure(ConnectorError::other(
        Box::new(inner),
        None,
    )));
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(!err.is_retryable());
    assert!(err.fix().unwrap().contains("aws sso login"));
}

#[test]
fn construction_failures_are_invalid_input() {
    let err = map_eks(SdkError::construction_failure(
        "cluster_name was not specified",
    ));
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("cluster_name was not specified"),
        "{err}"
    );
}

#[test]
fn source_chain_skips_generic_wrappers() {
    let io = std::io::Error::other("tcp connect error");
    let err: SdkError<GetRoleError> = SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
    assert_eq!(source_chain(&err), "io error: tcp connect error");
}

// ---- the real SDK clients against local servers -------------------------------------------

fn sdk_config(endpoint: &str, credentials: Option<SharedCredentialsProvider>) -> SdkConfig {
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled());
    builder.set_credentials_provider(credentials);
    builder.build()
}

fn api_at(endpoint: &str) -> SdkApi {
    let credentials = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "unit-test");
    let config = sdk_config(endpoint, Some(SharedCredentialsProvider::new(credentials)));
    SdkApi::from_sdk_config(&config)
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    body: String,
}

type Responder = Arc<dyn Fn(&Seen) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync>;

/// Serves `respond` on a free loopback port; returns the URL and the requests seen.
async fn serve(respond: Responder) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let respond = respond.clone();
        let log = log.clone();
        async move {
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            let seen = Seen {
                method,
                uri,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let (status, headers, body) = respond(&seen);
            log.lock().unwrap().push(seen);
            let mut response = axum::http::Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(axum::body::Body::from(body)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn json(status: u16, body: &str) -> (u16, Vec<(&'static str, String)>, String) {
    (
        status,
        vec![("content-type", "application/json".to_owned())],
        body.to_owned(),
    )
}

fn xml(status: u16, body: &str) -> (u16, Vec<(&'static str, String)>, String) {
    (
        status,
        vec![("content-type", "text/xml".to_owned())],
        body.to_owned(),
    )
}

#[tokio::test]
async fn debug_shows_the_region_and_no_credentials() {
    let api = api_at("http://127.0.0.1:9");
    let debug = format!("{api:?}");
    assert_eq!(debug, r#"SdkApi { region: Some("us-east-1") }"#);
    assert!(!debug.contains(ACCESS_KEY) && !debug.contains(SECRET_KEY));
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let api = api_at(&format!("http://127.0.0.1:{}", closed_port()));
    let err = api.describe_cluster("prod").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert_eq!(err.operation(), Some("DescribeCluster"));
    let text = err.to_string();
    assert!(text.contains("could not reach the EKS endpoint"), "{text}");
    assert!(text.contains("Connection refused"), "{text}");
    assert!(!text.contains(SECRET_KEY) && !text.contains(ACCESS_KEY));

    let err = api.get_role("app").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("IAM endpoint"), "{err}");
}

#[tokio::test]
async fn no_credentials_provider_is_unauthenticated() {
    let config = sdk_config(&format!("http://127.0.0.1:{}", closed_port()), None);
    let api = SdkApi::from_sdk_config(&config);
    let err = api.get_role("app").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert_eq!(
        err.to_string().split(". Fix:").next().unwrap(),
        "aws GetRole failed (unauthenticated): no usable AWS credentials: the AWS configuration \
         has no credentials provider"
    );
    assert!(err.fix().unwrap().contains("aws sso login"));
}

#[tokio::test]
async fn no_region_is_invalid_input() {
    let credentials = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "unit-test");
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .retry_config(RetryConfig::disabled())
        .build();
    let err = SdkApi::from_sdk_config(&config)
        .describe_cluster("prod")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.fix().unwrap().contains("AWS_REGION"), "{err}");
}

// `ProfileFiles` is deprecated in favour of the same type in `aws-runtime`, which this crate
// does not depend on; the alias is what aws-config itself re-exports.
#[allow(deprecated)]
#[tokio::test]
async fn a_profile_without_credentials_is_unauthenticated() {
    use aws_config::profile::ProfileFileCredentialsProvider;
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};

    let dir = std::env::temp_dir().join(format!(
        "porter-identity-sdk-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let credentials = dir.join("credentials");
    std::fs::write(&credentials, "[other]\naws_access_key_id = x\n").unwrap();
    let provider = ProfileFileCredentialsProvider::builder()
        .profile_files(
            ProfileFiles::builder()
                .with_file(ProfileFileKind::Credentials, &credentials)
                .build(),
        )
        .profile_name("missing")
        .build();
    let config = sdk_config(
        &format!("http://127.0.0.1:{}", closed_port()),
        Some(SharedCredentialsProvider::new(provider)),
    );
    let api = SdkApi::from_sdk_config(&config);
    let err = api.describe_cluster("prod").await.unwrap_err();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    let text = err.to_string();
    assert!(text.contains("no usable AWS credentials"), "{text}");
    // The profile's own explanation is kept.
    assert!(text.contains("profile `missing`"), "{text}");
}

#[tokio::test]
async fn eks_json_errors_are_read_from_the_wire() {
    let (url, _) = serve(Arc::new(|seen: &Seen| {
        if seen.uri.contains("/addons/") {
            let mut r = json(
                404,
                r#"{"message":"No addon: eks-pod-identity-agent found in cluster: prod"}"#,
            );
            r.1.push(("x-amzn-errortype", "ResourceNotFoundException".to_owned()));
            r
        } else {
            let mut r = json(400, r#"{"message":"Rate exceeded"}"#);
            r.1.push(("x-amzn-errortype", "ThrottlingException".to_owned()));
            r
        }
    }))
    .await;
    let api = api_at(&url);
    let err = api.describe_cluster("prod").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err}");
    assert_eq!(
        err.to_string(),
        "aws DescribeCluster failed (throttled): Rate exceeded"
    );
    // A missing add-on is an answer, not an error.
    assert_eq!(
        api.describe_addon("prod", "eks-pod-identity-agent")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn iam_xml_errors_are_read_from_the_wire() {
    let (url, _) = serve(Arc::new(|_: &Seen| {
        xml(
            403,
            r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/ci is not authorized to perform: iam:GetRole</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"#,
        )
    }))
    .await;
    let err = api_at(&url).get_role("app").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("is not authorized"), "{err}");
    assert!(err.fix().unwrap().contains("`iam:GetRole`"));
}

#[tokio::test]
async fn a_server_error_page_is_unavailable() {
    let (url, _) = serve(Arc::new(|_: &Seen| {
        (
            502,
            vec![("content-type", "text/html".to_owned())],
            "<html>Bad Gateway</html>".to_owned(),
        )
    }))
    .await;
    let err = api_at(&url).describe_cluster("prod").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn list_pod_identity_associations_reads_one_page_and_its_token() {
    let (url, seen) = serve(Arc::new(|seen: &Seen| {
        let (id, next) = if seen.uri.contains("nextToken=page-2") {
            ("a-2", None)
        } else {
            ("a-1", Some("page-2"))
        };
        let next = next.map(|t| format!(r#","nextToken":"{t}""#)).unwrap_or_default();
        json(
            200,
            &format!(
                r#"{{"associations":[{{"clusterName":"prod","namespace":"shop","serviceAccount":"shop-api","associationArn":"arn:aws:eks:us-east-1:123456789012:podidentityassociation/prod/{id}","associationId":"{id}"{owner}}}]{next}}}"#,
                owner = if id == "a-2" {
                    r#","ownerArn":"arn:aws:eks:us-east-1:123456789012:addon/prod/x/y""#
                } else {
                    ""
                }
            ),
        )
    }))
    .await;
    let api = api_at(&url);
    let first = api
        .list_pod_identity_associations("prod", Some("shop"), Some("shop-api"), None)
        .await
        .unwrap();
    assert_eq!(first.associations.len(), 1);
    assert_eq!(first.associations[0].association_id, "a-1");
    assert_eq!(first.associations[0].owner_arn, None);
    assert_eq!(first.next_token.as_deref(), Some("page-2"));
    let second = api
        .list_pod_identity_associations("prod", Some("shop"), Some("shop-api"), first.next_token)
        .await
        .unwrap();
    assert_eq!(second.associations[0].association_id, "a-2");
    assert!(second.associations[0].owner_arn.is_some());
    assert_eq!(second.next_token, None);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].uri.contains("nextToken=page-2"), "{}", seen[1].uri);
    for request in seen.iter() {
        assert_eq!(request.method, "GET");
        assert!(
            request
                .uri
                .starts_with("/clusters/prod/pod-identity-associations?"),
            "{}",
            request.uri
        );
        assert!(request.uri.contains("namespace=shop"), "{}", request.uri);
        assert!(
            request.uri.contains("serviceAccount=shop-api"),
            "{}",
            request.uri
        );
    }
}

#[tokio::test]
async fn iam_lists_follow_every_page() {
    let (url, seen) = serve(Arc::new(|seen: &Seen| {
        let second = seen.body.contains("Marker=m1");
        if seen.body.contains("Action=ListRolePolicies") {
            let (name, more) = if second {
                ("inline-2", "<IsTruncated>false</IsTruncated>")
            } else {
                ("inline-1", "<IsTruncated>true</IsTruncated><Marker>m1</Marker>")
            };
            xml(
                200,
                &format!(
                    r#"<ListRolePoliciesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListRolePoliciesResult><PolicyNames><member>{name}</member></PolicyNames>{more}</ListRolePoliciesResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></ListRolePoliciesResponse>"#
                ),
            )
        } else {
            let (name, more) = if second {
                ("p2", "<IsTruncated>false</IsTruncated>")
            } else {
                ("p1", "<IsTruncated>true</IsTruncated><Marker>m1</Marker>")
            };
            xml(
                200,
                &format!(
                    r#"<ListAttachedRolePoliciesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListAttachedRolePoliciesResult><AttachedPolicies><member><PolicyName>{name}</PolicyName><PolicyArn>arn:aws:iam::123456789012:policy/{name}</PolicyArn></member></AttachedPolicies>{more}</ListAttachedRolePoliciesResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></ListAttachedRolePoliciesResponse>"#
                ),
            )
        }
    }))
    .await;
    let api = api_at(&url);
    assert_eq!(
        api.list_role_policies("app").await.unwrap(),
        ["inline-1", "inline-2"]
    );
    let attached = api.list_attached_role_policies("app").await.unwrap();
    let names: Vec<_> = attached.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["p1", "p2"]);
    assert_eq!(attached[1].arn, "arn:aws:iam::123456789012:policy/p2");
    assert_eq!(seen.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn create_sends_the_token_and_tags_and_reads_the_association() {
    let (url, seen) = serve(Arc::new(|_: &Seen| {
        json(
            200,
            r#"{"association":{"clusterName":"prod","namespace":"shop","serviceAccount":"shop-api","roleArn":"arn:aws:iam::123456789012:role/app","associationArn":"arn:aws:eks:us-east-1:123456789012:podidentityassociation/prod/a-1","associationId":"a-1","tags":{"porter.run/managed-by":"porter-identity"},"createdAt":1527807879.988,"modifiedAt":1527807879.988}}"#,
        )
    }))
    .await;
    let created = api_at(&url)
        .create_pod_identity_association(CreateAssociation {
            cluster: "prod".into(),
            namespace: "shop".into(),
            service_account: "shop-api".into(),
            role_arn: "arn:aws:iam::123456789012:role/app".into(),
            client_request_token: "token-123".into(),
            tags: [(
                "porter.run/managed-by".to_owned(),
                "porter-identity".to_owned(),
            )]
            .into(),
            ..CreateAssociation::default()
        })
        .await
        .unwrap();
    assert_eq!(created.association_id, "a-1");
    assert_eq!(created.role_arn, "arn:aws:iam::123456789012:role/app");
    assert_eq!(created.tags["porter.run/managed-by"], "porter-identity");
    assert_eq!(created.owner_arn, None);

    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].uri, "/clusters/prod/pod-identity-associations");
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["clientRequestToken"], "token-123");
    assert_eq!(body["namespace"], "shop");
    assert_eq!(body["serviceAccount"], "shop-api");
    assert_eq!(body["tags"]["porter.run/managed-by"], "porter-identity");
}

/// The `aws.call` spans opened while it is the thread's default subscriber, with their fields.
/// A span's fields, as (name, value).
type SpanFields = Vec<(String, String)>;

#[derive(Clone, Default)]
struct SpanRecorder {
    spans: Arc<Mutex<Vec<SpanFields>>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl tracing::Subscriber for SpanRecorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        if attrs.metadata().name() == "aws.call" {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            self.spans.lock().unwrap().push(fields.0);
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::span::Id::from_u64(id + 1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn field<'a>(span: &'a [(String, String)], name: &str) -> Option<&'a str> {
    span.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn every_request_gets_one_span_with_its_identifiers_and_no_secret() {
    let (url, _) = serve(Arc::new(|seen: &Seen| {
        let next = if seen.uri.contains("nextToken=") {
            ""
        } else {
            r#","nextToken":"page-2""#
        };
        json(200, &format!(r#"{{"associations":[]{next}}}"#))
    }))
    .await;
    let recorder = SpanRecorder::default();
    // The test runtime is single-threaded, so the thread's default subscriber sees every poll.
    let _guard = tracing::subscriber::set_default(recorder.clone());

    let api = api_at(&url);
    let page = api
        .list_pod_identity_associations("prod", Some("shop"), Some("shop-api"), None)
        .await
        .unwrap();
    api.list_pod_identity_associations("prod", Some("shop"), Some("shop-api"), page.next_token)
        .await
        .unwrap();
    let closed = api_at(&format!("http://127.0.0.1:{}", closed_port()));
    closed.get_role("app-role").await.unwrap_err();

    let spans = recorder.spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 3, "{spans:?}");
    for (page, span) in spans[..2].iter().enumerate() {
        assert_eq!(
            field(span, "operation"),
            Some("ListPodIdentityAssociations")
        );
        assert_eq!(field(span, "cluster"), Some("prod"));
        assert_eq!(field(span, "namespace"), Some("shop"));
        assert_eq!(field(span, "service_account"), Some("shop-api"));
        assert_eq!(
            field(span, "next_page"),
            Some(if page == 0 { "false" } else { "true" })
        );
    }
    assert_eq!(field(&spans[2], "operation"), Some("GetRole"));
    assert_eq!(field(&spans[2], "role"), Some("app-role"));
    assert_eq!(field(&spans[2], "cluster"), None);
    let all = format!("{spans:?}");
    assert!(
        !all.contains(SECRET_KEY) && !all.contains(ACCESS_KEY),
        "{all}"
    );
}
