//! Boundaries of the name validators, through the public API: each limit is accepted and the
//! next value refused with an `InvalidInput` error naming the field.

use porter_identity_core::{
    AwsPartition, AzureIdentityName, AzureResourceGroup, Error, ErrorKind, GcpServiceAccountEmail,
    KubernetesName, Namespace, Result, RoleRef, ServiceAccountName, Workload,
};

/// The error of `r`, checked to be `InvalidInput` about `field` and to say `needle`.
fn refused<T: std::fmt::Debug>(r: Result<T>, field: &str, needle: &str) {
    let e = match r {
        Ok(v) => panic!("accepted {v:?}; expected an error about {field} saying {needle:?}"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let Error::InvalidInput { field: got, .. } = &e else {
        panic!("not InvalidInput: {e:?}");
    };
    assert_eq!(got, field, "{e}");
    assert!(e.to_string().contains(needle), "{needle:?} not in {e}");
    assert!(e.fix().is_some(), "no fix: {e}");
}

#[test]
fn namespace_63_ok_64_refused() {
    assert!(Namespace::parse("a").is_ok());
    assert!(Namespace::parse(&"a".repeat(63)).is_ok());
    assert!(Namespace::parse(&format!("a{}z", "-".repeat(61))).is_ok());
    refused(
        Namespace::parse(&"a".repeat(64)),
        "namespace",
        "64 characters",
    );
    refused(Namespace::parse(""), "namespace", "is empty");
    refused(Namespace::parse("kube_system"), "namespace", "'_'");
}

#[test]
fn kubernetes_name_names_its_field() {
    assert!(KubernetesName::parse("service", &"s".repeat(63)).is_ok());
    refused(
        KubernetesName::parse("service", &"s".repeat(64)),
        "service",
        "64 characters",
    );
}

#[test]
fn service_account_253_ok_254_refused() {
    let ok = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(ok.len(), 253);
    assert!(ServiceAccountName::parse(&ok).is_ok());
    refused(
        ServiceAccountName::parse(&format!("{ok}d")),
        "serviceAccount",
        "254 characters",
    );
    // one part of 253 characters is a valid subdomain too
    assert!(ServiceAccountName::parse(&"a".repeat(253)).is_ok());
    refused(
        ServiceAccountName::parse(&"a".repeat(254)),
        "serviceAccount",
        "254 characters",
    );
    refused(
        ServiceAccountName::parse("a..b"),
        "serviceAccount",
        "empty part",
    );
}

#[test]
fn derived_service_account_stays_a_label() {
    // `<app>-<service>` of exactly 63 characters is kept; 64 is shortened to 63 with a hash.
    let exact =
        ServiceAccountName::for_service(&"a".repeat(31), &"s".repeat(31)).expect("valid names");
    assert_eq!(
        exact.as_str(),
        format!("{}-{}", "a".repeat(31), "s".repeat(31))
    );
    let over =
        ServiceAccountName::for_service(&"a".repeat(32), &"s".repeat(31)).expect("valid names");
    assert_eq!(over.as_str().len(), 63);
    assert!(Namespace::parse(over.as_str()).is_ok(), "{over}");
    // the longest inputs (63 + 63) still give a valid, stable label
    let longest =
        ServiceAccountName::for_service(&"a".repeat(63), &"s".repeat(63)).expect("valid names");
    assert_eq!(longest.as_str().len(), 63);
    assert_eq!(
        longest,
        ServiceAccountName::for_service(&"a".repeat(63), &"s".repeat(63)).expect("valid names")
    );
    let w =
        Workload::for_service("default", &"a".repeat(63), &"s".repeat(63)).expect("valid workload");
    assert_eq!(w.service_account(), &longest);
    refused(
        ServiceAccountName::for_service(&"a".repeat(64), "api"),
        "app",
        "64 characters",
    );
}

#[test]
fn aws_account_is_exactly_12_digits() {
    for (account, ok) in [
        ("123456789012", true),
        ("000000000000", true),
        ("12345678901", false),
        ("1234567890123", false),
        ("12345678901x", false),
        ("", false),
    ] {
        let r = RoleRef::parse(&format!("arn:aws:iam::{account}:role/api"));
        if ok {
            assert_eq!(r.expect("valid").account(), Some(account));
        } else {
            refused(r, "awsRole.role", "exactly 12 digits");
        }
    }
}

#[test]
fn each_aws_partition() {
    for (p, want) in [
        ("aws", AwsPartition::Aws),
        ("aws-cn", AwsPartition::AwsCn),
        ("aws-us-gov", AwsPartition::AwsUsGov),
    ] {
        let r =
            RoleRef::parse(&format!("arn:{p}:iam::123456789012:role/svc/api")).expect("valid ARN");
        assert_eq!(r.partition(), Some(want));
        assert_eq!(want.to_string(), p);
        assert_eq!(r.name(), "api");
        assert_eq!(r.path(), Some("/svc/"));
    }
    for p in ["aws-iso", "aws-iso-b", "AWS", ""] {
        refused(
            RoleRef::parse(&format!("arn:{p}:iam::123456789012:role/api")),
            "awsRole.role",
            "partition",
        );
    }
}

#[test]
fn role_name_64_ok_65_refused() {
    assert!(RoleRef::parse(&"r".repeat(64)).is_ok());
    refused(
        RoleRef::parse(&"r".repeat(65)),
        "awsRole.role",
        "65 characters",
    );
    let arn = |name: &str| format!("arn:aws:iam::123456789012:role/{name}");
    assert!(RoleRef::parse(&arn(&"r".repeat(64))).is_ok());
    refused(
        RoleRef::parse(&arn(&"r".repeat(65))),
        "awsRole.role",
        "65 characters",
    );
}

#[test]
fn azure_identity_3_to_128() {
    for len in [3, 128] {
        assert!(AzureIdentityName::parse(&"i".repeat(len)).is_ok(), "{len}");
    }
    for (len, needle) in [
        (2, "2 characters"),
        (129, "129 characters"),
        (0, "0 characters"),
    ] {
        refused(
            AzureIdentityName::parse(&"i".repeat(len)),
            "azureManagedIdentity.identityName",
            needle,
        );
    }
}

#[test]
fn azure_resource_group_1_to_90() {
    for len in [1, 90] {
        assert!(AzureResourceGroup::parse(&"g".repeat(len)).is_ok(), "{len}");
    }
    // Unicode letters are allowed and counted as characters, not bytes.
    assert!(AzureResourceGroup::parse(&"é".repeat(90)).is_ok());
    for (len, needle) in [(0, "0 characters"), (91, "91 characters")] {
        refused(
            AzureResourceGroup::parse(&"g".repeat(len)),
            "azureManagedIdentity.resourceGroup",
            needle,
        );
    }
}

#[test]
fn gcp_ids_6_to_30() {
    let email =
        |account: &str, project: &str| format!("{account}@{project}.iam.gserviceaccount.com");
    for (account, project) in [
        ("a".repeat(6), "p".repeat(6)),
        ("a".repeat(30), "p".repeat(30)),
    ] {
        let sa = GcpServiceAccountEmail::parse(&email(&account, &project)).expect("valid");
        assert_eq!(sa.account_id(), account);
        assert_eq!(sa.project_id(), project);
    }
    const FIELD: &str = "gcpServiceAccount.serviceAccountEmail";
    refused(
        GcpServiceAccountEmail::parse(&email(&"a".repeat(5), "my-project")),
        FIELD,
        "has an account id of 5 characters; GCP allows 6 to 30",
    );
    refused(
        GcpServiceAccountEmail::parse(&email(&"a".repeat(31), "my-project")),
        FIELD,
        "has an account id of 31 characters; GCP allows 6 to 30",
    );
    refused(
        GcpServiceAccountEmail::parse(&email("my-app", &"p".repeat(5))),
        FIELD,
        "project id of 5 characters",
    );
    refused(
        GcpServiceAccountEmail::parse(&email("my-app", &"p".repeat(31))),
        FIELD,
        "project id of 31 characters",
    );
}

#[test]
fn gcp_project_id_problems_read_as_english() {
    // "a project id", as "an account id": the article follows the word.
    let email = |project: &str| format!("my-app@{project}.iam.gserviceaccount.com");
    const FIELD: &str = "gcpServiceAccount.serviceAccountEmail";
    refused(
        GcpServiceAccountEmail::parse(&email("short")),
        FIELD,
        "has a project id of 5 characters; GCP allows 6 to 30",
    );
    refused(
        GcpServiceAccountEmail::parse(&email("1-project")),
        FIELD,
        "has a project id that does not start with a letter",
    );
    refused(
        GcpServiceAccountEmail::parse(&email("my-project-")),
        FIELD,
        "has a project id that ends with '-'",
    );
    refused(
        GcpServiceAccountEmail::parse("1-my-app@my-project.iam.gserviceaccount.com"),
        FIELD,
        "has an account id that does not start with a letter",
    );
}

#[test]
fn lengths_are_counted_in_characters() {
    // 40 characters (80 bytes) is within 63: refused for its letters, not its length.
    refused(
        Namespace::parse(&"é".repeat(40)),
        "namespace",
        "contains 'é'",
    );
    refused(
        Namespace::parse(&"é".repeat(64)),
        "namespace",
        "is 64 characters",
    );
    refused(
        KubernetesName::parse("service", &"é".repeat(64)),
        "service",
        "is 64 characters",
    );
    refused(
        ServiceAccountName::parse(&"é".repeat(254)),
        "serviceAccount",
        "is 254 characters",
    );
    // 16 characters (32 bytes) is within 6 to 30: refused for its letters, not its length.
    const FIELD: &str = "gcpServiceAccount.serviceAccountEmail";
    refused(
        GcpServiceAccountEmail::parse(&format!(
            "{}@my-project.iam.gserviceaccount.com",
            "é".repeat(16)
        )),
        FIELD,
        "has 'é' in its account id",
    );
    // 5 characters (10 bytes) is too short, 31 (62 bytes) too long.
    for (n, needle) in [
        (5, "has an account id of 5 characters"),
        (31, "has an account id of 31 characters"),
    ] {
        refused(
            GcpServiceAccountEmail::parse(&format!(
                "{}@my-project.iam.gserviceaccount.com",
                "é".repeat(n)
            )),
            FIELD,
            needle,
        );
    }
    refused(
        AzureIdentityName::parse(&"é".repeat(2)),
        "azureManagedIdentity.identityName",
        "2 characters",
    );
}
