//! Malformed porter.yaml inputs: each must give the specific [`ManifestError`] (path,
//! service, connection index, field, problem, location), quickly and without a panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use porter_identity_core::{
    AppManifest, Cloud, Connection, Error, ErrorKind, MAX_MANIFEST_BYTES, ManifestError,
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A porter.yaml whose connection under test is `services[1].connections[1]` (service `api`),
/// starting on line [`CONN_LINE`]. `lines` are the connection's `key: value` lines.
fn with_connection(lines: &[&str]) -> String {
    let mut y = String::from(
        "version: v2
name: shop
build:
  method: docker
services:
  - name: web
    run: npm start
  - name: api
    connections:
      - type: cloudSql
        config: {instance: main}
",
    );
    push_item(&mut y, "      ", lines);
    y
}
/// The line on which the connection of [`with_connection`] starts.
const CONN_LINE: u64 = 12;
/// The column of the connection's first key (after `      - `), and of every key below it.
const CONN_COLUMN: u64 = 9;

/// A porter.yaml whose `services[1]` (starting on line [`SERVICE_LINE`]) is `lines`.
fn with_service(lines: &[&str]) -> String {
    let mut y = String::from(
        "version: v2
services:
  - name: web
",
    );
    push_item(&mut y, "  ", lines);
    y
}
/// The line on which the service of [`with_service`] starts.
const SERVICE_LINE: u64 = 4;
/// The column of the service's first key (after `  - `).
const SERVICE_COLUMN: u64 = 5;
/// The column of the value of a `name: ` written on the service's first line.
const SERVICE_NAME_COLUMN: u64 = SERVICE_COLUMN + "name: ".len() as u64;

/// Appends a block sequence item: `- first` then the other lines aligned under it.
fn push_item(y: &mut String, indent: &str, lines: &[&str]) {
    for (i, line) in lines.iter().enumerate() {
        y.push_str(indent);
        y.push_str(if i == 0 { "- " } else { "  " });
        y.push_str(line);
        y.push('\n');
    }
}

/// The classic "billion laughs": nine levels of nine aliases each (9^9 nodes if expanded).
fn yaml_bomb() -> String {
    let mut y = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        let refs = vec![format!("*{prev}"); 9].join(",");
        y.push_str(&format!("{next}: &{next} [{refs}]\n"));
    }
    y.push_str(
        "services:\n  - name: api\n    connections:\n      - type: disk\n        data: *i\n",
    );
    y
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// What a row expects of the error's location.
#[derive(Debug, Clone, Copy)]
enum At {
    /// Present, at this line and column.
    LineCol(u64, u64),
    /// Present, on this line (column not pinned: an empty value, or a parser's own place).
    Line(u64),
    /// Present (the parser knows it), line not pinned.
    Known,
    /// Absent: the error is not about a place in the text.
    Nowhere,
}

struct Row {
    name: &'static str,
    yaml: String,
    path: String,
    service: Option<&'static str>,
    connection_index: Option<usize>,
    field: Option<&'static str>,
    problem: &'static str,
    at: At,
    max_time: Duration,
}

/// A ceiling that only catches a hang (a YAML bomb expanding): speed is the benches' job.
const DEFAULT_MAX_TIME: Duration = Duration::from_secs(10);

/// An error in the connection of [`with_connection`] (`services[1].connections[1]`).
fn conn(
    name: &'static str,
    lines: &[&str],
    field: Option<&'static str>,
    problem: &'static str,
) -> Row {
    Row {
        name,
        yaml: with_connection(lines),
        path: match field {
            Some(f) => format!("services[1].connections[1].{f}"),
            None => "services[1].connections[1]".into(),
        },
        service: Some("api"),
        connection_index: Some(1),
        field,
        problem,
        at: conn_at(lines, field),
        max_time: DEFAULT_MAX_TIME,
    }
}

/// Where an error about `field` of the connection written as `lines` must point: at the
/// field's own value (its line, the column after `field: `) when it is written with one; on
/// its line when its value is empty; at the connection's `- ` item when it is missing or the
/// error is about the connection itself.
fn conn_at(lines: &[&str], field: Option<&str>) -> At {
    let item = At::LineCol(CONN_LINE, CONN_COLUMN);
    let Some(field) = field else { return item };
    let key = format!("{field}:");
    let Some(i) = lines.iter().position(|l| l.starts_with(&key)) else {
        return item;
    };
    let line = CONN_LINE + i as u64;
    if lines[i].trim_end() == key {
        At::Line(line)
    } else {
        At::LineCol(line, CONN_COLUMN + key.len() as u64 + 1)
    }
}

/// An error about `field` of `services[0].connections[0]` (service `api`), for inputs
/// written unlike the fixtures (flow style, aliases, block scalars, CRLF, a BOM).
fn first_conn(
    name: &'static str,
    yaml: impl Into<String>,
    field: &'static str,
    problem: &'static str,
    at: At,
) -> Row {
    Row {
        name,
        yaml: yaml.into(),
        path: format!("services[0].connections[0].{field}"),
        service: Some("api"),
        connection_index: Some(0),
        field: Some(field),
        problem,
        at,
        max_time: DEFAULT_MAX_TIME,
    }
}

/// An error in the service of [`with_service`] (`services[1]`); `field` is `name` or
/// `connections` or `None` for the service itself.
fn svc(
    name: &'static str,
    lines: &[&str],
    field: Option<&'static str>,
    service: Option<&'static str>,
    problem: &'static str,
    at: At,
) -> Row {
    Row {
        name,
        yaml: with_service(lines),
        path: match field {
            Some(f) => format!("services[1].{f}"),
            None => "services[1]".into(),
        },
        service,
        connection_index: None,
        field,
        problem,
        at,
        max_time: DEFAULT_MAX_TIME,
    }
}

/// An error about the whole file or the `services` key.
fn file(
    name: &'static str,
    yaml: impl Into<String>,
    path: &str,
    problem: &'static str,
    at: At,
) -> Row {
    Row {
        name,
        yaml: yaml.into(),
        path: path.into(),
        service: None,
        connection_index: None,
        field: None,
        problem,
        at,
        max_time: DEFAULT_MAX_TIME,
    }
}

/// Every error of the YAML parser itself starts with this.
const NOT_YAML: &str = "is not valid YAML: ";

fn rows() -> Vec<Row> {
    let long_name = format!("name: {}", "a".repeat(64));
    let long_role = format!("role: {}", "r".repeat(65));
    let mut rows = vec![
        // --- wrong types: services and services[] ---
        file(
            "services is a string",
            "version: v2\nservices: api\n",
            "services",
            "must be a list, found a string",
            At::LineCol(2, 11),
        ),
        file(
            "services is a mapping",
            "services:\n  api:\n    run: npm start\n",
            "services",
            "must be a list, found a mapping",
            At::LineCol(2, 3),
        ),
        file(
            "services is a number",
            "services: 3\n",
            "services",
            "must be a list, found a number",
            At::LineCol(1, 11),
        ),
        svc(
            "a service is a string",
            &["api"],
            None,
            None,
            "must be a mapping, found a string",
            At::LineCol(SERVICE_LINE, SERVICE_COLUMN),
        ),
        svc(
            "a service is null",
            &[""],
            None,
            None,
            "must be a mapping, found an empty value",
            At::Line(SERVICE_LINE),
        ),
        svc(
            "a service is a list",
            &["- name: api"],
            None,
            None,
            "must be a mapping, found a list",
            At::LineCol(SERVICE_LINE, SERVICE_COLUMN),
        ),
        // --- wrong types: name, connections ---
        svc(
            "name is a number",
            &["name: 42"],
            Some("name"),
            None,
            "must be a string, found a number",
            At::LineCol(SERVICE_LINE, SERVICE_NAME_COLUMN),
        ),
        svc(
            "name is a list",
            &["name: [api]"],
            Some("name"),
            None,
            "must be a string, found a list",
            At::LineCol(SERVICE_LINE, SERVICE_NAME_COLUMN),
        ),
        svc(
            "name is a boolean",
            &["name: true"],
            Some("name"),
            None,
            "must be a string, found a boolean",
            At::LineCol(SERVICE_LINE, SERVICE_NAME_COLUMN),
        ),
        svc(
            "connections is a mapping",
            &[
                "name: api",
                "connections:",
                "  type: awsRole",
                "  role: my-role",
            ],
            Some("connections"),
            Some("api"),
            "must be a list, found a mapping",
            At::LineCol(SERVICE_LINE + 2, 7),
        ),
        svc(
            "connections is a string",
            &["name: api", "connections: awsRole"],
            Some("connections"),
            Some("api"),
            "must be a list, found a string",
            At::LineCol(SERVICE_LINE + 1, 18),
        ),
        // --- wrong types: a connection and its fields ---
        conn(
            "a connection is a string",
            &["awsRole"],
            None,
            "must be a mapping, found a string",
        ),
        conn(
            "a connection is null",
            &["~"],
            None,
            "must be a mapping, found an empty value",
        ),
        conn(
            "role is a list",
            &["type: awsRole", "role: [a, b]"],
            Some("role"),
            "must be a string, found a list",
        ),
        conn(
            "role is a number",
            &["type: awsRole", "role: 42"],
            Some("role"),
            "must be a string, found a number",
        ),
        conn(
            "identityName is a bool",
            &[
                "type: azureManagedIdentity",
                "identityName: true",
                "resourceGroup: my-rg",
            ],
            Some("identityName"),
            "must be a string, found a boolean",
        ),
        conn(
            "type is a number",
            &["type: 7"],
            Some("type"),
            "must be a string, found a number",
        ),
        conn("type is empty", &["type: \"\""], Some("type"), "is empty"),
        conn("type has no value", &["type:"], Some("type"), "is empty"),
        // --- missing fields ---
        file(
            "no services key",
            "version: v2\nname: shop\nbuild:\n  method: docker\n",
            "services",
            "is missing",
            At::Nowhere,
        ),
        svc(
            "no name",
            &["run: npm start", "port: 8080"],
            Some("name"),
            None,
            "is missing or empty",
            At::LineCol(SERVICE_LINE, SERVICE_COLUMN),
        ),
        svc(
            "name has no value",
            &["name:", "run: npm start"],
            Some("name"),
            None,
            "is missing or empty",
            At::Line(SERVICE_LINE),
        ),
        conn("no type", &["role: my-role"], Some("type"), "is missing"),
        conn(
            "awsRole without role",
            &["type: awsRole"],
            Some("role"),
            "is missing; `awsRole` needs it",
        ),
        conn(
            "awsRole with a null role",
            &["type: awsRole", "role:"],
            Some("role"),
            "is empty; `awsRole` needs it",
        ),
        conn(
            "awsRole with an empty role",
            &["type: awsRole", "role: \"\""],
            Some("role"),
            "\"\": the role name is empty",
        ),
        conn(
            "azure without resourceGroup",
            &[
                "type: azureManagedIdentity",
                "identityName: my-app-identity",
            ],
            Some("resourceGroup"),
            "is missing; `azureManagedIdentity` needs it",
        ),
        conn(
            "azure without identityName",
            &["type: azureManagedIdentity", "resourceGroup: my-rg"],
            Some("identityName"),
            "is missing; `azureManagedIdentity` needs it",
        ),
        conn(
            "gcp without email",
            &["type: gcpServiceAccount"],
            Some("serviceAccountEmail"),
            "is missing; `gcpServiceAccount` needs it",
        ),
        // --- bad ARNs ---
        conn(
            "ARN with a bad partition",
            &[
                "type: awsRole",
                "role: arn:aws-iso:iam::123456789012:role/api",
            ],
            Some("role"),
            "has partition \"aws-iso\"; only aws, aws-cn and aws-us-gov are supported",
        ),
        conn(
            "ARN with an 11-digit account",
            &["type: awsRole", "role: arn:aws:iam::12345678901:role/api"],
            Some("role"),
            "has account \"12345678901\"; an AWS account ID is exactly 12 digits",
        ),
        conn(
            "ARN of another service",
            &["type: awsRole", "role: arn:aws:s3::123456789012:role/api"],
            Some("role"),
            "is an ARN of service \"s3\", not an IAM role",
        ),
        conn(
            "ARN of a user",
            &[
                "type: awsRole",
                "role: arn:aws:iam::123456789012:user/deploy",
            ],
            Some("role"),
            "has resource \"user/deploy\", which is not a role",
        ),
        conn(
            "ARN with a region",
            &[
                "type: awsRole",
                "role: arn:aws:iam:us-east-1:123456789012:role/api",
            ],
            Some("role"),
            "has region \"us-east-1\"; IAM ARNs have an empty region",
        ),
        conn(
            "ARN with an empty role name",
            &["type: awsRole", "role: arn:aws:iam::123456789012:role/"],
            Some("role"),
            "the role name is empty",
        ),
        conn(
            "ARN with too few parts",
            &["type: awsRole", "role: arn:aws:iam::123456789012"],
            Some("role"),
            "is not an ARN: it needs six ':'-separated parts",
        ),
        conn(
            "role name with a space",
            &["type: awsRole", "role: my role"],
            Some("role"),
            "the role name contains ' '",
        ),
        conn(
            "role name of 65 characters",
            &["type: awsRole", &long_role],
            Some("role"),
            "the role name is 65 characters; IAM allows at most 64",
        ),
        // --- bad service-account emails ---
        conn(
            "email without @",
            &[
                "type: gcpServiceAccount",
                "serviceAccountEmail: my-app.my-project.iam.gserviceaccount.com",
            ],
            Some("serviceAccountEmail"),
            "is not an email (no '@')",
        ),
        conn(
            "email in upper case",
            &[
                "type: gcpServiceAccount",
                "serviceAccountEmail: My-App@my-project.iam.gserviceaccount.com",
            ],
            Some("serviceAccountEmail"),
            "has upper-case letters",
        ),
        conn(
            "default compute service account",
            &[
                "type: gcpServiceAccount",
                "serviceAccountEmail: 123456789012-compute@developer.gserviceaccount.com",
            ],
            Some("serviceAccountEmail"),
            "is a default service account",
        ),
        conn(
            "gmail address",
            &[
                "type: gcpServiceAccount",
                "serviceAccountEmail: my-app@gmail.com",
            ],
            Some("serviceAccountEmail"),
            "is not a user-managed service account",
        ),
        conn(
            "short account id",
            &[
                "type: gcpServiceAccount",
                "serviceAccountEmail: app@my-project.iam.gserviceaccount.com",
            ],
            Some("serviceAccountEmail"),
            "has an account id of 3 characters; GCP allows 6 to 30",
        ),
        conn(
            "short project id",
            &[
                "type: gcpServiceAccount",
                "serviceAccountEmail: my-app@short.iam.gserviceaccount.com",
            ],
            Some("serviceAccountEmail"),
            "project id of 5 characters; GCP allows 6 to 30",
        ),
        // --- bad Azure names ---
        conn(
            "identity name too short",
            &[
                "type: azureManagedIdentity",
                "identityName: ab",
                "resourceGroup: my-rg",
            ],
            Some("identityName"),
            "\"ab\" is 2 characters; Azure allows 3 to 128",
        ),
        conn(
            "resource group with a bad character",
            &[
                "type: azureManagedIdentity",
                "identityName: my-app-identity",
                "resourceGroup: my/rg",
            ],
            Some("resourceGroup"),
            "\"my/rg\" contains '/'",
        ),
        conn(
            "resource group ending in a dot",
            &[
                "type: azureManagedIdentity",
                "identityName: my-app-identity",
                "resourceGroup: my-rg.",
            ],
            Some("resourceGroup"),
            "must not end with '.'",
        ),
        // --- bad service names: at the name's value ---
        svc(
            "service name in upper case",
            &["name: API"],
            Some("name"),
            None,
            "\"API\" contains upper-case 'A'",
            At::LineCol(SERVICE_LINE, SERVICE_NAME_COLUMN),
        ),
        svc(
            "service name below other keys",
            &["run: npm start", "port: 8080", "name: API"],
            Some("name"),
            None,
            "\"API\" contains upper-case 'A'",
            At::LineCol(SERVICE_LINE + 2, SERVICE_NAME_COLUMN),
        ),
        svc(
            "service name with an underscore",
            &["name: my_api"],
            Some("name"),
            None,
            "\"my_api\" contains '_'",
            At::LineCol(SERVICE_LINE, SERVICE_NAME_COLUMN),
        ),
        svc(
            "service name of 64 characters",
            &[&long_name],
            Some("name"),
            None,
            "is 64 characters; at most 63 are allowed",
            At::LineCol(SERVICE_LINE, SERVICE_NAME_COLUMN),
        ),
        svc(
            "service name empty",
            &["name: \"\""],
            Some("name"),
            None,
            "\"\" is empty",
            At::LineCol(SERVICE_LINE, SERVICE_NAME_COLUMN),
        ),
        // --- the value's own place, however the file is written ---
        first_conn(
            "bad role in flow style",
            "services: [{name: api, connections: [{type: awsRole, role: bad role}]}]\n",
            "role",
            "\"bad role\": the role name contains ' '",
            At::LineCol(1, 60),
        ),
        first_conn(
            "bad role through an alias",
            "x-role: &role bad role\nservices:\n  - name: api\n    connections:\n      - type: awsRole\n        role: *role\n",
            "role",
            "\"bad role\": the role name contains ' '",
            At::LineCol(6, 15),
        ),
        first_conn(
            "bad role in a folded block scalar",
            "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: >-\n          bad\n          role\n",
            "role",
            "\"bad role\": the role name contains ' '",
            At::LineCol(6, 11),
        ),
        first_conn(
            "bad role with CRLF line ends",
            "services:\r\n  - name: api\r\n    connections:\r\n      - type: awsRole\r\n        role: bad role\r\n",
            "role",
            "\"bad role\": the role name contains ' '",
            At::LineCol(5, 15),
        ),
        first_conn(
            "bad role after a byte-order mark",
            "\u{feff}services: [{name: api, connections: [{type: awsRole, role: bad role}]}]\n",
            "role",
            "\"bad role\": the role name contains ' '",
            At::LineCol(1, 60),
        ),
        first_conn(
            "bad role after multibyte text (columns count characters)",
            "services: [{name: api, x: \"ééé😀\", connections: [{type: awsRole, role: bad role}]}]\n",
            "role",
            "\"bad role\": the role name contains ' '",
            At::LineCol(1, 71),
        ),
        first_conn(
            "bad role before a later shape error",
            "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: bad role\n  - name: web\n    connections: oops\n",
            "role",
            "\"bad role\": the role name contains ' '",
            At::LineCol(5, 15),
        ),
        // --- not YAML, or not the expected shape ---
        file("empty file", "", "", "the file is empty", At::Nowhere),
        file(
            "comments only",
            "# porter.yaml\n\n   # nothing yet\n",
            "",
            "the file is empty",
            At::Nowhere,
        ),
        file(
            "blank lines only",
            "\n   \n\t\n",
            "",
            "the file is empty",
            At::Nowhere,
        ),
        file(
            "byte-order mark only",
            "\u{feff}",
            "",
            "the file is empty",
            At::Nowhere,
        ),
        file(
            "unclosed flow mappings",
            "{{{",
            "",
            "is not valid YAML: unclosed bracket '{'",
            At::Line(1),
        ),
        file(
            "tab-indented mess",
            "services:\n\t- name: api\n\t\tconnections:\n\t\t\t- type: awsRole\n",
            "",
            "is not valid YAML: tabs disallowed",
            At::Line(2),
        ),
        file(
            "binary garbage",
            "\u{0}\u{1}PNG\r\n\u{1a}\n\u{0}\u{0}\u{0}\rIHDR\u{7f}\u{fffd}",
            "",
            NOT_YAML,
            At::Line(1),
        ),
        file(
            "top-level list",
            "- name: api\n  connections: []\n",
            "",
            "the top level must be a mapping, found a list",
            At::LineCol(1, 1),
        ),
        file(
            "top-level scalar",
            "just some words\n",
            "",
            "the top level must be a mapping, found a string",
            At::LineCol(1, 1),
        ),
        file(
            "multi-document file",
            "services:\n  - name: api\n---\nservices:\n  - name: web\n",
            "",
            "has more than one YAML document (`---`); porter.yaml is one document",
            At::LineCol(3, 1),
        ),
        file(
            "duplicate services key",
            "services: []\nservices:\n  - name: api\n",
            "",
            "is not valid YAML: duplicate mapping key: services",
            At::LineCol(2, 1),
        ),
        file(
            "duplicate key in a connection",
            with_connection(&["type: awsRole", "role: a", "role: b"]),
            "",
            "is not valid YAML: duplicate mapping key: role",
            At::LineCol(CONN_LINE + 2, CONN_COLUMN),
        ),
        file(
            "a list as a mapping key",
            "? [a, b]\n: 1\nservices: []\n",
            "",
            "has a mapping key that is a list or a mapping",
            At::Line(1),
        ),
        // --- hostile inputs: bounded, no panic, no stack overflow ---
        file(
            "10,000 nested [",
            "[".repeat(10_000),
            "",
            "nests deeper than 32 levels",
            At::Known,
        ),
        file(
            "10,000 nested { in a connection",
            with_connection(&["type: disk", &format!("config: {}", "{a: ".repeat(10_000))]),
            "",
            "nests deeper than 32 levels",
            At::Line(CONN_LINE + 1),
        ),
        file(
            "nesting deeper than the limit",
            with_connection(&[
                "type: disk",
                &format!("config: {}1{}", "[".repeat(40), "]".repeat(40)),
            ]),
            "",
            "nests deeper than 32 levels",
            At::Line(CONN_LINE + 1),
        ),
        file(
            "valid YAML nested 300 deep",
            format!("x: {}1{}\nservices: []\n", "[".repeat(300), "]".repeat(300)),
            "",
            "nests deeper than 32 levels",
            At::Line(1),
        ),
        file(
            "YAML bomb",
            yaml_bomb(),
            "",
            "expands to too many values (anchors and aliases that multiply, a \"YAML bomb\"?)",
            At::Known,
        ),
    ];

    // --- duplicates: the row is about the second occurrence ---
    let mut dup_type = with_connection(&["type: awsRole", "role: first-role"]);
    push_item(
        &mut dup_type,
        "      ",
        &["type: awsRole", "role: second-role"],
    );
    rows.push(Row {
        name: "two awsRole connections",
        yaml: dup_type,
        path: "services[1].connections[2].type".into(),
        service: Some("api"),
        connection_index: Some(2),
        field: Some("type"),
        problem: "is a second `awsRole` connection (the first is connections[1]); a service has at most one of each type",
        // the second connection's `type` value
        at: At::LineCol(CONN_LINE + 2, CONN_COLUMN + "type: ".len() as u64),
        max_time: DEFAULT_MAX_TIME,
    });
    rows.push(Row {
        name: "two services named api",
        yaml: "version: v2\nservices:\n  - name: api\n  - name: web\n  - name: api\n    run: node worker.js\n".into(),
        path: "services[2].name".into(),
        service: Some("api"),
        connection_index: None,
        field: Some("name"),
        problem: "repeats the name of services[0]",
        at: At::LineCol(5, SERVICE_NAME_COLUMN),
        max_time: DEFAULT_MAX_TIME,
    });

    // --- 50 MB: refused on its length alone, without being parsed ---
    let huge = file(
        "50 MB input",
        "a".repeat(50 * 1024 * 1024),
        "",
        "is larger than 4194304 bytes (4 MiB); a porter.yaml is a few kilobytes",
        At::Nowhere,
    );
    // Its error (the size, not a YAML error) says it was refused on its length; the row's
    // time bound, like every row's, only catches a hang.
    rows.push(huge);
    rows
}

/// Checks one row; returns what does not match.
fn check(row: &Row) -> Vec<String> {
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| AppManifest::from_yaml_str(&row.yaml)));
    let took = started.elapsed();
    let mut out = Vec::new();
    if took > row.max_time {
        out.push(format!("took {took:?} (bound {:?})", row.max_time));
    }
    let err = match result {
        Err(_) => return vec!["panicked".into()],
        Ok(Ok(m)) => return vec![format!("parsed without error: {m:?}")],
        Ok(Err(e)) => e,
    };
    if err.kind() != ErrorKind::InvalidInput {
        out.push(format!("kind {:?}", err.kind()));
    }
    let Some(m) = err.manifest() else {
        return vec![format!("not a manifest error: {err:?}")];
    };
    if m.path != row.path {
        out.push(format!("path {:?}, want {:?}", m.path, row.path));
    }
    if m.service.as_deref() != row.service {
        out.push(format!("service {:?}, want {:?}", m.service, row.service));
    }
    if m.connection_index != row.connection_index {
        out.push(format!(
            "connection_index {:?}, want {:?}",
            m.connection_index, row.connection_index
        ));
    }
    if m.field.as_deref() != row.field {
        out.push(format!("field {:?}, want {:?}", m.field, row.field));
    }
    if !m.problem.contains(row.problem) {
        out.push(format!("problem {:?} lacks {:?}", m.problem, row.problem));
    }
    // The location is `m.location`, shown once by Display; the problem does not repeat it.
    if m.problem.contains("line ") && m.problem.contains("column ") {
        out.push(format!("problem {:?} repeats the location", m.problem));
    }
    if m.fix.is_empty() {
        out.push("no fix".into());
    }
    if m.file.is_some() {
        out.push(format!("file {:?} from a string", m.file));
    }
    match (row.at, m.location) {
        (At::LineCol(line, column), Some(l)) if l.line == line && l.column == column => {}
        (At::Line(want), Some(l)) if l.line == want && l.column >= 1 => {}
        (At::Known, Some(l)) if l.line >= 1 && l.column >= 1 => {}
        (At::Nowhere, None) => {}
        (want, got) => out.push(format!("location {got:?}, want {want:?}")),
    }
    // The message stays one line and short, whatever the input's size.
    let shown = err.to_string();
    if shown.contains('\n') || shown.len() > 1000 {
        out.push(format!(
            "Display is {} bytes / multi-line: {shown:.300}",
            shown.len()
        ));
    }
    out
}

#[test]
fn malformed_manifests_give_specific_errors() {
    let rows = rows();
    assert!(rows.len() >= 35, "only {} rows", rows.len());
    let mut names = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for row in &rows {
        assert!(names.insert(row.name), "duplicate row name {}", row.name);
        let problems = check(row);
        if !problems.is_empty() {
            failures.push(format!("{}:\n    {}", row.name, problems.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Display
// ---------------------------------------------------------------------------------------------

fn manifest_err(yaml: &str) -> Error {
    match AppManifest::from_yaml_str(yaml) {
        Ok(m) => panic!("expected an error, parsed {m:?}"),
        Err(e) => e,
    }
}

#[test]
fn display_is_one_sentence_naming_service_field_and_fix() {
    let e = manifest_err(&with_connection(&[
        "type: awsRole",
        "role: arn:aws:s3::123456789012:role/api",
    ]));
    assert_eq!(
        e.to_string(),
        "invalid porter.yaml: services[1].connections[1].role (service `api`): \
         \"arn:aws:s3::123456789012:role/api\" is an ARN of service \"s3\", not an IAM role \
         (at line 13, column 15). Fix: write the role ARN as \
         arn:<aws|aws-cn|aws-us-gov>:iam::<12-digit account>:role/<optional/path/>name, \
         as IAM shows it on the role's page"
    );

    let e = manifest_err(&with_connection(&[
        "type: azureManagedIdentity",
        "identityName: my-app-identity",
    ]));
    let shown = e.to_string();
    for part in [
        "services[1].connections[1].resourceGroup",
        "(service `api`)",
        "is missing; `azureManagedIdentity` needs it",
        // a missing field: at the connection's `- ` item
        "(at line 12, column 9)",
        ". Fix: add `resourceGroup: my-resource-group`",
    ] {
        assert!(shown.contains(part), "{part:?} not in {shown}");
    }
    assert!(!shown.contains('\n'));

    // Display of the ManifestError alone is the same sentence without the prefix.
    let m: &ManifestError = e.manifest().expect("a manifest error");
    assert_eq!(format!("invalid porter.yaml: {m}"), shown);
    assert_eq!(e.fix(), Some("add `resourceGroup: my-resource-group`"));

    let e = manifest_err(&with_service(&["name: api"]).replace("name: web", "name: api"));
    assert_eq!(
        e.to_string(),
        "invalid porter.yaml: services[1].name (service `api`): repeats the name of services[0] \
         (at line 4, column 11). Fix: give each service a unique name"
    );
}

#[test]
fn parser_errors_give_their_location_once() {
    // The parser's sentence without its own "at line 1, column 3": Display adds the location.
    let e = manifest_err(
        "services: [{name: api}
",
    );
    let m = e.manifest().expect("a manifest error");
    assert!(m.problem.starts_with(NOT_YAML), "{e}");
    let at = m.location.expect("the parser knows where");
    let place = format!("line {}, column {}", at.line, at.column);
    assert_eq!(e.to_string().matches(&place).count(), 1, "{e}");
    assert!(!m.problem.contains("line "), "{e}");
    assert_eq!(
        m.fix,
        "correct the YAML at that place (indentation, quotes, brackets)"
    );
}

#[test]
fn budget_errors_are_sentences_with_a_fitting_fix() {
    // Over a budget, the YAML is valid: the message says which budget, never "not valid YAML"
    // nor the parser's debug form, and the fix is not about indentation.
    let mut wrong = Vec::new();
    for (yaml, problem) in [
        (
            "services: []\n---\nservices: []\n".to_owned(),
            "has more than one YAML document (`---`); porter.yaml is one document",
        ),
        (
            format!("x: {}1{}\nservices: []\n", "[".repeat(40), "]".repeat(40)),
            "nests deeper than 32 levels",
        ),
        (
            format!("x: {}1{}\nservices: []\n", "[".repeat(300), "]".repeat(300)),
            "nests deeper than 32 levels",
        ),
        (
            yaml_bomb(),
            "expands to too many values (anchors and aliases that multiply, a \"YAML bomb\"?)",
        ),
    ] {
        let e = manifest_err(&yaml);
        let m = e.manifest().expect("a manifest error");
        if m.problem != problem || m.fix.contains("indentation") || m.location.is_none() {
            wrong.push(format!("want {problem:?}, got: {e}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_long_value_is_cut_in_the_message() {
    let role = format!("arn:aws:iam::123456789012:role/{}", "x".repeat(100_000));
    let e = manifest_err(&with_connection(&[
        "type: awsRole",
        &format!("role: {role}"),
    ]));
    let shown = e.to_string();
    assert!(shown.len() < 1000, "{} bytes", shown.len());
    assert!(shown.contains("characters)"), "{shown}");
}

// ---------------------------------------------------------------------------------------------
// What is not an error
// ---------------------------------------------------------------------------------------------

#[test]
fn other_connection_types_are_kept_and_ignored() {
    let m = AppManifest::from_yaml_str(
        "services:
  - name: api
    connections:
      - type: cloudSql
        config:
          cloudSqlConnectionName: my-project:us-central1:main
          cloudSqlDatabasePort: 5432
          cloudSqlServiceAccount: sql-proxy
      - type: awsRole
        role: my-app-api-role
      - type: disk
        config:
          mountPath: /data
          sizeGb: 20
          options: {readOnly: false, tags: [a, b]}
      - type: someFutureType
",
    )
    .expect("other connection types are not an error");
    let api = m.service("api").expect("service api");
    assert_eq!(api.connections().len(), 4);
    assert_eq!(api.identity_connections().count(), 1);
    let others: Vec<&str> = api.other_connections().map(Connection::type_name).collect();
    assert_eq!(others, ["cloudSql", "disk", "someFutureType"]);
    let Connection::Other { kind, raw, .. } = &api.connections()[2] else {
        panic!("disk is {:?}", api.connections()[2]);
    };
    assert_eq!(kind, "disk");
    assert_eq!(raw["config"]["mountPath"], "/data");
    assert_eq!(raw["config"]["sizeGb"], 20);
    assert_eq!(raw["config"]["options"]["tags"][1], "b");
    assert!(!raw.contains_key("type"));
    assert_eq!(
        api.connection(Cloud::Aws).map(Connection::type_name),
        Some("awsRole")
    );
    // the ignored ones never become bindings
    let bindings = m.bindings("shop", "default").expect("bindings");
    assert_eq!(bindings.len(), 1);
    assert_eq!(
        bindings[0].to_string(),
        "default/shop-api -> awsRole my-app-api-role"
    );
}

#[test]
fn unknown_keys_are_ignored() {
    let m = AppManifest::from_yaml_str(
        "version: v2
name: shop
build:
  method: pack
  context: ./
  builder: heroku/buildpacks:20
  buildpacks: [heroku/nodejs]
env:
  NODE_ENV: production
  RATIO: 0.5
  ENABLED: true
envGroups: [shared]
predeploy:
  run: npm run migrate
autoRollback:
  enabled: true
services:
  - name: api
    type: web
    run: node index.js
    port: 8080
    cpuCores: 0.5
    ramMegabytes: 512
    instances: 2
    autoscaling: {enabled: true, minInstances: 1, maxInstances: 10}
    domains: [{name: api.example.com}]
    healthCheck: {enabled: true, httpPath: /healthz}
    private: false
    connections:
      - type: awsRole
        role: arn:aws-us-gov:iam::123456789012:role/teams/shop/api
        extra: ignored too
",
    )
    .expect("unknown keys are not an error");
    assert_eq!(m.services().len(), 1);
    let Connection::AwsRole { role, .. } = &m.services()[0].connections()[0] else {
        panic!("{:?}", m.services()[0].connections());
    };
    assert_eq!(role.name(), "api");
    assert_eq!(role.path(), Some("/teams/shop/"));
}

#[test]
fn services_without_connections_are_fine() {
    let m = AppManifest::from_yaml_str(
        "services:
  - name: web
  - name: worker
    connections: []
  - name: cron
    connections:
",
    )
    .expect("valid");
    let names: Vec<&str> = m.services().iter().map(|s| s.name()).collect();
    assert_eq!(names, ["web", "worker", "cron"]);
    assert!(m.services().iter().all(|s| s.connections().is_empty()));
    assert!(m.bindings("shop", "default").expect("bindings").is_empty());

    let empty = AppManifest::from_yaml_str("services: []\n").expect("an empty list is valid");
    assert!(empty.services().is_empty());
    // A bare `services:` is YAML's null: the same app with no services, not an error.
    for bare in [
        "services:\n",
        "name: shop\nservices:\n",
        "services: ~\n",
        "services: null\n",
    ] {
        let m = AppManifest::from_yaml_str(bare).unwrap_or_else(|e| panic!("{bare:?}: {e}"));
        assert!(m.services().is_empty(), "{bare:?}");
        assert!(m.bindings("shop", "default").expect("bindings").is_empty());
    }
}

#[test]
fn anchors_aliases_and_flow_style_within_limits_are_read() {
    let m = AppManifest::from_yaml_str(
        "x-role: &role arn:aws:iam::123456789012:role/shared
services: [{name: api, connections: [{type: awsRole, role: *role}]}, {name: web}]
",
    )
    .expect("valid");
    assert_eq!(m.services().len(), 2);
    assert_eq!(
        m.services()[0]
            .connection(Cloud::Aws)
            .map(Connection::describe)
            .as_deref(),
        Some("awsRole arn:aws:iam::123456789012:role/shared")
    );
    // Nesting well under MAX_MANIFEST_DEPTH inside an ignored connection is fine.
    let nested = format!("config: {}1{}", "[".repeat(20), "]".repeat(20));
    assert!(AppManifest::from_yaml_str(&with_connection(&["type: disk", &nested])).is_ok());
}

#[test]
fn a_file_of_exactly_the_limit_is_read() {
    let head = "services:\n  - name: api\n# ";
    let yaml = format!("{head}{}", "x".repeat(MAX_MANIFEST_BYTES - head.len()));
    assert_eq!(yaml.len(), MAX_MANIFEST_BYTES);
    let m = AppManifest::from_yaml_str(&yaml).expect("exactly MAX_MANIFEST_BYTES is accepted");
    assert_eq!(m.services().len(), 1);
    let over = format!("{yaml}x");
    let e = AppManifest::from_yaml_str(&over).expect_err("one byte more is refused");
    assert!(e.to_string().contains("larger than 4194304 bytes"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// from_path
// ---------------------------------------------------------------------------------------------

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "porter-identity-manifest-errors-{tag}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path_err(path: &std::path::Path) -> Box<ManifestError> {
    match AppManifest::from_path(path) {
        Ok(m) => panic!("expected an error, read {m:?}"),
        Err(Error::Manifest(m)) => m,
        Err(other) => panic!("not a manifest error: {other:?}"),
    }
}

#[test]
fn from_path_reads_a_file() {
    let dir = TempDir::new("ok");
    let path = dir.write(
        "porter.yaml",
        with_connection(&["type: awsRole", "role: my-role"]),
    );
    let m = AppManifest::from_path(&path).expect("valid file");
    assert_eq!(m.services().len(), 2);
}

#[test]
fn from_path_on_a_missing_file_names_it() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("no-such-porter.yaml");
    let m = path_err(&path);
    assert_eq!(m.file.as_deref(), Some(path.display().to_string().as_str()));
    assert!(m.problem.starts_with("cannot be read: "), "{}", m.problem);
    assert_eq!(m.location, None);
    let shown = Error::Manifest(m).to_string();
    assert!(
        shown.contains("no-such-porter.yaml: cannot be read"),
        "{shown}"
    );
    assert!(shown.contains("Fix: check the path"), "{shown}");
}

#[test]
fn from_path_refuses_a_file_over_the_limit() {
    let dir = TempDir::new("big");
    let path = dir.write(
        "porter.yaml",
        format!("services: []\n# {}", "a".repeat(6 * 1024 * 1024)),
    );
    let started = Instant::now();
    let m = path_err(&path);
    // A ceiling that only catches a hang; that the size refused it, the problem says.
    assert!(
        started.elapsed() < DEFAULT_MAX_TIME,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(m.file.as_deref(), Some(path.display().to_string().as_str()));
    assert!(
        m.problem.contains("larger than 4194304 bytes"),
        "{}",
        m.problem
    );
}

#[test]
fn from_path_names_the_file_in_yaml_errors() {
    let dir = TempDir::new("bad");
    let path = dir.write(
        "porter.yaml",
        with_connection(&["type: awsRole", "role: arn:aws:iam::123:role/x"]),
    );
    let m = path_err(&path);
    assert_eq!(m.file.as_deref(), Some(path.display().to_string().as_str()));
    assert_eq!(m.path, "services[1].connections[1].role");
    // at the role's value, on the line after `- type: awsRole`
    assert_eq!(
        m.location.map(|l| (l.line, l.column)),
        Some((CONN_LINE + 1, 15))
    );
    let shown = Error::Manifest(m).to_string();
    assert!(
        shown.starts_with(&format!(
            "invalid porter.yaml: {}: services[1]",
            path.display()
        )),
        "{shown}"
    );
}

#[test]
fn from_path_refuses_text_that_is_not_utf8() {
    let dir = TempDir::new("latin1");
    let path = dir.write("porter.yaml", b"services:\n  - name: caf\xe9\n");
    let m = path_err(&path);
    assert_eq!(m.problem, "is not UTF-8 text");
    assert!(m.file.is_some());
}

// ---------------------------------------------------------------------------------------------
// The one-pass reader: each error has its own place; reading limits come first
// ---------------------------------------------------------------------------------------------

#[test]
fn field_errors_point_at_the_field_line() {
    let at = |lines: &[&str]| {
        let e = manifest_err(&with_connection(lines));
        let m = e.manifest().expect("manifest error");
        (m.path.clone(), m.location.map(|l| (l.line, l.column)))
    };
    let conn = |f: &str| format!("services[1].connections[1].{f}");
    // the value of the field at fault, not the connection's `- type:` line
    assert_eq!(
        at(&["type: awsRole", "role: [a, b]"]),
        (conn("role"), Some((CONN_LINE + 1, 15)))
    );
    assert_eq!(
        at(&[
            "type: azureManagedIdentity",
            "identityName: my-app-identity",
            "resourceGroup: my/rg",
        ]),
        (conn("resourceGroup"), Some((CONN_LINE + 2, 24)))
    );
    assert_eq!(
        at(&[
            "type: gcpServiceAccount",
            "serviceAccountEmail: my-app@gmail.com",
        ]),
        (conn("serviceAccountEmail"), Some((CONN_LINE + 1, 30)))
    );
    // a field written after others keeps its own line
    assert_eq!(
        at(&[
            "type: awsRole",
            "note: first",
            "extra: {a: 1}",
            "role: bad role"
        ]),
        (conn("role"), Some((CONN_LINE + 3, 15)))
    );
    // a missing field: at the connection's `- ` item
    assert_eq!(
        at(&["type: awsRole", "note: no role"]),
        (conn("role"), Some((CONN_LINE, CONN_COLUMN)))
    );
}

#[test]
fn each_error_has_its_own_location_whatever_else_is_wrong() {
    // services[0].connections[0].role is bad (line 5); services[1].connections is a string
    // (line 7). The first error in file order is reported, at its own place.
    let yaml = "services:
  - name: api
    connections:
      - type: awsRole
        role: bad role
  - name: web
    connections: oops
";
    let e = manifest_err(yaml);
    let m = e.manifest().expect("manifest error");
    assert_eq!(m.path, "services[0].connections[0].role");
    assert_eq!(m.location.map(|l| (l.line, l.column)), Some((5, 15)), "{e}");
    // once the role is fixed, the later error is reported at its own place
    let e = manifest_err(&yaml.replace("bad role", "good-role"));
    let m = e.manifest().expect("manifest error");
    assert_eq!(m.path, "services[1].connections");
    assert_eq!(m.service.as_deref(), Some("web"));
    assert_eq!(m.problem, "must be a list, found a string");
    assert_eq!(m.location.map(|l| (l.line, l.column)), Some((7, 18)), "{e}");
}

#[test]
fn from_path_checks_the_size_before_the_encoding() {
    let dir = TempDir::new("utf8cut");
    // 14 ASCII bytes then 2-byte characters: byte MAX_MANIFEST_BYTES + 1 falls inside one.
    let path = dir.write(
        "porter.yaml",
        format!("services: []\n#{}", "é".repeat(3_000_000)),
    );
    let m = path_err(&path);
    assert_eq!(
        m.problem,
        "is larger than 4194304 bytes (4 MiB); a porter.yaml is a few kilobytes"
    );
    assert_eq!(m.file.as_deref(), Some(path.display().to_string().as_str()));
    assert_eq!(m.location, None);
    // the same for bytes that are not UTF-8 at all
    let path = dir.write("latin1.yaml", vec![0xe9_u8; MAX_MANIFEST_BYTES + 1]);
    assert!(
        path_err(&path)
            .problem
            .starts_with("is larger than 4194304 bytes"),
        "a too-large non-UTF-8 file"
    );
    // and exactly MAX_MANIFEST_BYTES of multibyte text is read (then refused as not a porter.yaml)
    let head = "services: []\n#";
    let fill = (MAX_MANIFEST_BYTES - head.len()) / 2;
    let tail = "x".repeat(MAX_MANIFEST_BYTES - head.len() - 2 * fill);
    let exact = format!("{head}{}{tail}", "é".repeat(fill));
    assert_eq!(exact.len(), MAX_MANIFEST_BYTES);
    let path = dir.write("exact.yaml", exact);
    let m = AppManifest::from_path(&path).expect("exactly MAX_MANIFEST_BYTES is read");
    assert!(m.services().is_empty());
}

#[test]
fn non_finite_floats_in_ignored_keys_are_kept_as_text() {
    for yaml in [
        "env: {RATIO: .nan}\nservices: []\n",
        "services:\n  - name: api\n    cpuCores: .inf\n",
    ] {
        assert!(AppManifest::from_yaml_str(yaml).is_ok(), "{yaml}");
    }
    let m = AppManifest::from_yaml_str(
        "services:\n  - name: api\n    connections:\n      - type: disk\n        sizeGb: .inf\n        ratio: -.inf\n        x: .nan\n",
    )
    .expect("non-finite floats in an ignored connection are kept");
    let Connection::Other { raw, .. } = &m.services()[0].connections()[0] else {
        panic!("{:?}", m.services()[0].connections());
    };
    assert_eq!(raw["sizeGb"], ".inf");
    assert_eq!(raw["ratio"], "-.inf");
    assert_eq!(raw["x"], ".nan");
}

#[test]
fn yaml_1_1_words_are_strings() {
    // YAML 1.2 reads `on`, `y`, `yes`, `no` as words: valid service and role names.
    let m = AppManifest::from_yaml_str(
        "services:
  - name: on
  - name: y
    connections:
      - type: awsRole
        role: yes
  - name: no
",
    )
    .expect("YAML 1.1 booleans are plain words");
    let names: Vec<&str> = m.services().iter().map(|s| s.name()).collect();
    assert_eq!(names, ["on", "y", "no"]);
    assert_eq!(
        m.services()[1]
            .connection(Cloud::Aws)
            .map(Connection::describe)
            .as_deref(),
        Some("awsRole yes")
    );
    // `true` stays a boolean, and is refused as a name at its own place
    let e = manifest_err("services:\n  - name: true\n");
    let m = e.manifest().expect("manifest error");
    assert_eq!(m.problem, "must be a string, found a boolean");
    assert_eq!(m.location.map(|l| (l.line, l.column)), Some((2, 11)));
}

#[test]
fn a_byte_order_mark_is_not_content() {
    let m = AppManifest::from_yaml_str("\u{feff}services:\n  - name: api\n")
        .expect("a BOM before the YAML is allowed");
    assert_eq!(m.services()[0].name(), "api");
}

#[test]
fn aws_role_extension_keys_read_from_yaml_and_point_at_their_line() {
    let m = AppManifest::from_yaml_str(&with_connection(&[
        "type: awsRole",
        "role: shop-api",
        "targetRole: arn:aws:iam::444455556666:role/shop-data",
        "sessionPolicy:",
        "  Version: '2012-10-17'",
        "  Statement:",
        "    - {Effect: Allow, Action: 's3:GetObject', Resource: 'arn:aws:s3:::shop/*'}",
    ]))
    .expect("valid");
    let Connection::AwsRole { role, options, .. } = &m.services()[1].connections()[1] else {
        panic!("{:?}", m.services()[1].connections());
    };
    assert_eq!(role.name(), "shop-api");
    assert_eq!(
        options.target_role.as_ref().map(|r| r.account()),
        Some(Some("444455556666"))
    );
    assert!(options.session_tags_disabled());
    assert!(
        options
            .session_policy
            .as_deref()
            .is_some_and(|p| p.contains(r#""Action":"s3:GetObject""#)),
        "{options:?}"
    );

    let at = |lines: &[&str]| {
        let e = manifest_err(&with_connection(lines));
        let m = e.manifest().expect("manifest error").clone();
        (m.path, m.location.map(|l| l.line), m.fix)
    };
    let (path, line, fix) = at(&["type: awsRole", "role: r", "targetRole: shop-data"]);
    assert_eq!(path, "services[1].connections[1].targetRole");
    assert_eq!(line, Some(CONN_LINE + 2));
    assert!(fix.contains("arn:aws:iam::"), "{fix}");
    let (path, line, _) = at(&["type: awsRole", "role: r", "mode: fargate"]);
    assert_eq!(path, "services[1].connections[1].mode");
    assert_eq!(line, Some(CONN_LINE + 2));
}
