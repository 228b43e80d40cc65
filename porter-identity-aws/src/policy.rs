//! IAM policy documents (trust policies and permission policies), read into a small model
//! that the trust check and the least-privilege lint evaluate.
//!
//! IAM returns documents URL-encoded (RFC 3986); [`PolicyDocument::parse`] accepts that form
//! and plain JSON, so callers never decode themselves. Parsing is strict where a silent guess
//! would change the meaning of a policy (`Effect` is case-sensitive, `Action` and `NotAction`
//! are exclusive) and never panics, whatever the input.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use percent_encoding::percent_decode_str;
use porter_identity_core::provider::wildcard_match;
use serde_json::{Map, Value};

/// A parsed IAM policy document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PolicyDocument {
    /// The statements, in document order (a single `Statement` object becomes one entry).
    pub(crate) statements: Vec<Statement>,
}

/// One statement of a policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    /// `Sid`, when the statement has one.
    pub(crate) sid: Option<String>,
    /// `Effect`.
    pub(crate) effect: Effect,
    /// `Principal`, or the value of `NotPrincipal` when [`Statement::not_principal`] is set
    /// (one field for both, because a statement can only carry one of them). `None` in
    /// permission policies, which name no principal.
    pub(crate) principal: Option<Principal>,
    /// The statement uses `NotPrincipal`: it applies to every principal *except* those in
    /// [`Statement::principal`].
    pub(crate) not_principal: bool,
    /// `Action` or `NotAction`.
    pub(crate) action: ActionMatch,
    /// `Resource` values (`"*"` included); empty when the statement uses `NotResource` or
    /// names no resource (trust policies).
    pub(crate) resources: Vec<String>,
    /// The statement uses `NotResource`: it applies to every resource except those listed.
    pub(crate) not_resource: bool,
    /// The statement has a non-empty `Condition`, which cannot be evaluated offline.
    pub(crate) has_condition: bool,
    /// The `Condition` block, one entry per operator and key (values as written; an entry
    /// whose values are not strings is kept with none, so it still counts as a condition).
    pub(crate) conditions: Vec<Condition>,
}

/// One `"<operator>": {"<key>": <values>}` entry of a `Condition` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    /// `StringEquals`, `StringLike`, `ForAnyValue:StringEquals`, … as written.
    pub(crate) operator: String,
    /// The condition key as written (`sts:ExternalId`, `oidc.eks….amazonaws.com/id/…:sub`).
    pub(crate) key: String,
    /// The values.
    pub(crate) values: Vec<String>,
}

impl Statement {
    /// Whether the statement grants or denies `action` (IAM action semantics, ignoring
    /// principal, resource and condition).
    pub(crate) fn covers_action(&self, action: &str) -> bool {
        self.action.matches(action)
    }

    /// Whether the statement applies to a principal of type `kind` (for example `"Service"`)
    /// with value `value`, honouring `NotPrincipal` and the wildcard principal. A statement
    /// without `Principal`/`NotPrincipal` applies to nobody, because a trust policy needs one.
    pub(crate) fn applies_to_principal(&self, kind: &str, value: &str) -> bool {
        match &self.principal {
            None => false,
            Some(principal) => principal.matches(kind, value) != self.not_principal,
        }
    }

    /// `Resource: "*"` or `NotResource`: the statement reaches resources nobody listed.
    pub(crate) fn has_wildcard_resource(&self) -> bool {
        self.not_resource || self.resources.iter().any(|r| r.trim() == "*")
    }
}

/// `Effect` of a statement. IAM spells it exactly `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Effect {
    /// `"Allow"`.
    Allow,
    /// `"Deny"`: wins over any `Allow`.
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        })
    }
}

/// The action element of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ActionMatch {
    /// `Action`: the statement covers the actions matching any of these patterns.
    Action(Vec<String>),
    /// `NotAction`: the statement covers every action matching none of these patterns.
    NotAction(Vec<String>),
}

impl ActionMatch {
    /// Whether `action` is covered, with IAM wildcard and case rules (see [`action_matches`]).
    pub(crate) fn matches(&self, action: &str) -> bool {
        match self {
            ActionMatch::Action(patterns) => patterns.iter().any(|p| action_matches(p, action)),
            ActionMatch::NotAction(patterns) => !patterns.iter().any(|p| action_matches(p, action)),
        }
    }
}

/// `Principal` (or `NotPrincipal`) of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// `"Principal": "*"`: everyone.
    Any,
    /// `"Principal": {"Service": [...], "AWS": [...], ...}`: principal type (`Service`, `AWS`,
    /// `Federated`, `CanonicalUser`) to its values; a single string becomes a one-value list.
    Typed(BTreeMap<String, Vec<String>>),
}

impl Principal {
    /// The values listed for principal type `kind` (empty when absent or for [`Principal::Any`]).
    pub(crate) fn values(&self, kind: &str) -> &[String] {
        match self {
            Principal::Any => &[],
            Principal::Typed(map) => map.get(kind).map(Vec::as_slice).unwrap_or(&[]),
        }
    }

    /// Everyone: `"*"` or `{"AWS": "*"}`, which IAM treats the same way.
    pub(crate) fn is_wildcard(&self) -> bool {
        match self {
            Principal::Any => true,
            Principal::Typed(_) => self.values("AWS").iter().any(|v| v.trim() == "*"),
        }
    }

    /// Whether this principal element names `value` of type `kind`, or everyone. Principal
    /// values are compared exactly: IAM does not fold their case.
    pub(crate) fn matches(&self, kind: &str, value: &str) -> bool {
        self.is_wildcard() || self.values(kind).iter().any(|v| v.trim() == value)
    }
}

/// Why a policy document could not be read. The message says exactly what is wrong and where
/// (`Statement[N]` counts from 0, as in the JSON).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PolicyError {
    /// The input is empty or only whitespace.
    #[error("the policy document is empty")]
    Empty,
    /// The input looked URL-encoded but decoding it did not give UTF-8 text.
    #[error("the policy document is URL-encoded but does not decode to UTF-8 text")]
    BadEncoding,
    /// The (decoded) text is not JSON.
    #[error("the policy document is not JSON: {0}")]
    NotJson(String),
    /// The JSON is not an object.
    #[error("the policy document is a JSON {found}, not an object")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// The document has no `Statement`.
    #[error("the policy document has no Statement")]
    MissingStatement,
    /// `Statement` is neither an object nor a list.
    #[error(
        "the policy document's Statement is a JSON {found}; it must be an object or a list of objects"
    )]
    BadStatement {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// One statement is wrong.
    #[error("{}: {problem}", statement_label(*index, sid.as_deref()))]
    Statement {
        /// Position in the `Statement` list, from 0.
        index: usize,
        /// The statement's `Sid`, when it has a readable one.
        sid: Option<String>,
        /// What is wrong with it.
        problem: StatementProblem,
    },
}

/// What is wrong with one statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StatementProblem {
    /// The statement is not a JSON object.
    #[error("it is a JSON {found}, not an object")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// No `Effect`.
    #[error("it has no Effect")]
    MissingEffect,
    /// `Effect` is not exactly `Allow` or `Deny`.
    #[error("Effect is {0}; it must be \"Allow\" or \"Deny\" (case-sensitive)")]
    BadEffect(String),
    /// Neither `Action` nor `NotAction`.
    #[error("it has neither Action nor NotAction")]
    MissingAction,
    /// Two mutually exclusive elements are both present.
    #[error("it has both {0} and Not{0}; only one is allowed")]
    Conflicting(&'static str),
    /// An element has the wrong JSON type.
    #[error("{field} is a JSON {found}; it must be {expected}")]
    WrongType {
        /// The element, for example `Action` or `Principal.Service`.
        field: String,
        /// What IAM accepts there.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// `Principal` is a string other than `"*"`.
    #[error("{field} is {value}; as a string it can only be \"*\"")]
    BadPrincipal {
        /// `Principal` or `NotPrincipal`.
        field: &'static str,
        /// The value found, as JSON.
        value: String,
    },
}

/// How messages refer to a statement: its position (from 0, as in the JSON) and its `Sid`.
pub(crate) fn statement_label(index: usize, sid: Option<&str>) -> String {
    match sid {
        Some(sid) if !sid.is_empty() => format!("Statement[{index}] (Sid \"{sid}\")"),
        _ => format!("Statement[{index}]"),
    }
}

impl PolicyDocument {
    /// Reads a policy document, URL-encoded (as IAM returns it) or plain JSON.
    ///
    /// Text whose trimmed form does not start with `{` is percent-decoded first.
    ///
    /// # Errors
    /// [`PolicyError`] naming what is wrong: not decodable, not JSON, no `Statement`, or which
    /// statement has which problem.
    pub(crate) fn parse(raw: &str) -> Result<PolicyDocument, PolicyError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(PolicyError::Empty);
        }
        let encoded = !trimmed.starts_with('{')
            || trimmed
                .get(..3)
                .is_some_and(|p| p.eq_ignore_ascii_case("%7B"));
        if !encoded {
            return Self::from_json_text(trimmed);
        }
        let decoded = percent_decode(trimmed)?;
        let strict = Self::from_json_text(&decoded);
        // Some encoders (Java's URLEncoder, HTML forms) write spaces as `+`; RFC 3986 does
        // not, so that reading is only tried when the strict one fails, and the strict error
        // is the one reported.
        if matches!(strict, Err(PolicyError::NotJson(_))) && trimmed.contains('+') {
            let form = trimmed.replace('+', "%20");
            if let Ok(doc) = percent_decode(&form).and_then(|text| Self::from_json_text(&text)) {
                return Ok(doc);
            }
        }
        strict
    }

    /// Reads a policy document that is already JSON.
    ///
    /// # Errors
    /// As [`PolicyDocument::parse`], without the decoding errors.
    pub(crate) fn from_value(value: &Value) -> Result<PolicyDocument, PolicyError> {
        let object = value.as_object().ok_or(PolicyError::NotAnObject {
            found: json_type(value),
        })?;
        let statements = match object.get("Statement") {
            None | Some(Value::Null) => return Err(PolicyError::MissingStatement),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| parse_statement(index, item))
                .collect::<Result<Vec<_>, _>>()?,
            Some(item @ Value::Object(_)) => vec![parse_statement(0, item)?],
            Some(other) => {
                return Err(PolicyError::BadStatement {
                    found: json_type(other),
                });
            }
        };
        Ok(PolicyDocument { statements })
    }

    fn from_json_text(text: &str) -> Result<PolicyDocument, PolicyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PolicyError::Empty);
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| PolicyError::NotJson(e.to_string()))?;
        Self::from_value(&value)
    }
}

fn percent_decode(text: &str) -> Result<Cow<'_, str>, PolicyError> {
    percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| PolicyError::BadEncoding)
}

fn parse_statement(index: usize, value: &Value) -> Result<Statement, PolicyError> {
    let Some(object) = value.as_object() else {
        return Err(PolicyError::Statement {
            index,
            sid: None,
            problem: StatementProblem::NotAnObject {
                found: json_type(value),
            },
        });
    };
    let sid = object.get("Sid").and_then(Value::as_str).map(str::to_owned);
    let fail = |problem: StatementProblem| PolicyError::Statement {
        index,
        sid: sid.clone(),
        problem,
    };
    parse_statement_fields(object, sid.clone()).map_err(fail)
}

fn parse_statement_fields(
    object: &Map<String, Value>,
    sid: Option<String>,
) -> Result<Statement, StatementProblem> {
    if let Some(value) = present(object, "Sid")
        && !value.is_string()
    {
        return Err(wrong_type("Sid", "a string", value));
    }

    let effect = match object.get("Effect") {
        None | Some(Value::Null) => return Err(StatementProblem::MissingEffect),
        Some(Value::String(s)) if s == "Allow" => Effect::Allow,
        Some(Value::String(s)) if s == "Deny" => Effect::Deny,
        Some(other) => return Err(StatementProblem::BadEffect(other.to_string())),
    };

    let action = match (present(object, "Action"), present(object, "NotAction")) {
        (Some(_), Some(_)) => return Err(StatementProblem::Conflicting("Action")),
        (Some(v), None) => ActionMatch::Action(string_or_list("Action", v)?),
        (None, Some(v)) => ActionMatch::NotAction(string_or_list("NotAction", v)?),
        (None, None) => return Err(StatementProblem::MissingAction),
    };

    let (resources, not_resource) =
        match (present(object, "Resource"), present(object, "NotResource")) {
            (Some(_), Some(_)) => return Err(StatementProblem::Conflicting("Resource")),
            (Some(v), None) => (string_or_list("Resource", v)?, false),
            (None, Some(v)) => {
                // Validated even though unused, so a broken element is reported, not ignored.
                string_or_list("NotResource", v)?;
                (Vec::new(), true)
            }
            (None, None) => (Vec::new(), false),
        };

    let (principal, not_principal) = match (
        present(object, "Principal"),
        present(object, "NotPrincipal"),
    ) {
        (Some(_), Some(_)) => return Err(StatementProblem::Conflicting("Principal")),
        (Some(v), None) => (Some(parse_principal("Principal", v)?), false),
        (None, Some(v)) => (Some(parse_principal("NotPrincipal", v)?), true),
        (None, None) => (None, false),
    };

    let (has_condition, conditions) = match object.get("Condition") {
        None | Some(Value::Null) => (false, Vec::new()),
        Some(Value::Object(map)) => (!map.is_empty(), parse_conditions(map)),
        Some(other) => return Err(wrong_type("Condition", "an object", other)),
    };

    Ok(Statement {
        sid,
        effect,
        principal,
        not_principal,
        action,
        resources,
        not_resource,
        has_condition,
        conditions,
    })
}

/// The entries of a `Condition` block. Lenient: IAM validates the block when the policy is
/// saved, and an entry read wrong here must still count as a condition, never vanish.
fn parse_conditions(block: &Map<String, Value>) -> Vec<Condition> {
    let mut out = Vec::new();
    for (operator, keys) in block {
        let Value::Object(keys) = keys else {
            out.push(Condition {
                operator: operator.clone(),
                key: String::new(),
                values: Vec::new(),
            });
            continue;
        };
        for (key, values) in keys {
            let values = match values {
                Value::String(s) => vec![s.clone()],
                Value::Array(items) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            out.push(Condition {
                operator: operator.clone(),
                key: key.clone(),
                values,
            });
        }
    }
    out
}

/// A key that is present with a non-null value.
fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn parse_principal(field: &'static str, value: &Value) -> Result<Principal, StatementProblem> {
    match value {
        Value::String(s) if s.trim() == "*" => Ok(Principal::Any),
        Value::String(_) => Err(StatementProblem::BadPrincipal {
            field,
            value: value.to_string(),
        }),
        Value::Object(map) => {
            let mut typed = BTreeMap::new();
            for (kind, values) in map {
                let values = string_or_list(&format!("{field}.{kind}"), values)?;
                typed.insert(kind.clone(), values);
            }
            Ok(Principal::Typed(typed))
        }
        other => Err(wrong_type(field, "\"*\" or an object", other)),
    }
}

fn string_or_list(field: &str, value: &Value) -> Result<Vec<String>, StatementProblem> {
    const EXPECTED: &str = "a string or a list of strings";
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(wrong_type(&format!("{field}[{i}]"), "a string", other)),
            })
            .collect(),
        other => Err(wrong_type(field, EXPECTED, other)),
    }
}

fn wrong_type(field: &str, expected: &'static str, found: &Value) -> StatementProblem {
    StatementProblem::WrongType {
        field: field.to_owned(),
        expected,
        found: json_type(found),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// Whether IAM action `pattern` (from `Action`/`NotAction`) matches `action`.
///
/// IAM compares actions case-insensitively; `*` matches any run of characters (including
/// none, and across the `:`), `?` exactly one. So `sts:*`, `STS:assume*`, `sts:Assume?ole`
/// and `*` all match `sts:AssumeRole`.
pub(crate) fn action_matches(pattern: &str, action: &str) -> bool {
    wildcard_match(
        &pattern.trim().to_lowercase(),
        &action.trim().to_lowercase(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

    const TRUST: &str = r#"{
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "Pods",
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"]
        }]
    }"#;

    fn problem(raw: &str) -> StatementProblem {
        match PolicyDocument::parse(raw) {
            Err(PolicyError::Statement { problem, .. }) => problem,
            other => panic!("expected a statement error, got {other:?}"),
        }
    }

    #[test]
    fn parses_plain_json() {
        let doc = PolicyDocument::parse(TRUST).unwrap();
        assert_eq!(doc.statements.len(), 1);
        let s = &doc.statements[0];
        assert_eq!(s.sid.as_deref(), Some("Pods"));
        assert_eq!(s.effect, Effect::Allow);
        assert!(!s.not_principal);
        assert_eq!(
            s.principal.as_ref().unwrap().values("Service"),
            ["pods.eks.amazonaws.com".to_owned()]
        );
        assert_eq!(
            s.action,
            ActionMatch::Action(vec!["sts:AssumeRole".into(), "sts:TagSession".into()])
        );
        assert!(s.resources.is_empty());
        assert!(!s.has_condition);
    }

    #[test]
    fn parses_url_encoded_json_like_iam_returns() {
        let encoded = utf8_percent_encode(TRUST, NON_ALPHANUMERIC).to_string();
        assert!(encoded.starts_with("%7B"));
        assert_eq!(
            PolicyDocument::parse(&encoded).unwrap(),
            PolicyDocument::parse(TRUST).unwrap()
        );
    }

    #[test]
    fn parses_iam_style_encoding_with_lowercase_hex() {
        let raw = "%7b%22Statement%22%3A%7B%22Effect%22%3A%22Deny%22%2C%22Action%22%3A%22s3%3A*%22%2C%22Resource%22%3A%22*%22%7D%7D";
        let doc = PolicyDocument::parse(raw).unwrap();
        assert_eq!(doc.statements[0].effect, Effect::Deny);
        assert_eq!(doc.statements[0].resources, ["*"]);
    }

    #[test]
    fn accepts_form_encoded_spaces_when_strict_reading_fails() {
        let raw = "%7B+%22Statement%22%3A+%7B%22Effect%22%3A+%22Allow%22%2C+%22Action%22%3A+%22s3%3AGetObject%22%7D%7D";
        let doc = PolicyDocument::parse(raw).unwrap();
        assert_eq!(doc.statements.len(), 1);
    }

    #[test]
    fn single_statement_object_and_string_elements() {
        let doc = PolicyDocument::parse(
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}}"#,
        )
        .unwrap();
        let s = &doc.statements[0];
        assert_eq!(s.action, ActionMatch::Action(vec!["s3:GetObject".into()]));
        assert_eq!(s.resources, ["arn:aws:s3:::b/*"]);
        assert!(s.principal.is_none());
    }

    #[test]
    fn not_action_not_resource_not_principal_and_condition() {
        let doc = PolicyDocument::parse(
            r#"{"Statement": [{"Effect": "Deny", "NotPrincipal": {"AWS": ["arn:aws:iam::1:root"]},
                "NotAction": "iam:*", "NotResource": ["arn:aws:s3:::b"],
                "Condition": {"StringEquals": {"aws:RequestTag/team": "a"}}}]}"#,
        )
        .unwrap();
        let s = &doc.statements[0];
        assert!(s.not_principal);
        assert!(s.not_resource);
        assert!(s.resources.is_empty());
        assert!(s.has_condition);
        assert!(s.has_wildcard_resource());
        assert_eq!(s.action, ActionMatch::NotAction(vec!["iam:*".into()]));
        assert!(s.covers_action("s3:PutObject"));
        assert!(!s.covers_action("iam:CreateUser"));
    }

    #[test]
    fn empty_condition_is_no_condition() {
        let doc = PolicyDocument::parse(
            r#"{"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Condition": {}}]}"#,
        )
        .unwrap();
        assert!(!doc.statements[0].has_condition);
    }

    #[test]
    fn wildcard_principals() {
        let doc = PolicyDocument::parse(
            r#"{"Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"},
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"},
                {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::1:root"]}, "Action": "sts:AssumeRole"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(doc.statements[0].principal, Some(Principal::Any));
        assert!(doc.statements[0].principal.as_ref().unwrap().is_wildcard());
        assert!(doc.statements[1].principal.as_ref().unwrap().is_wildcard());
        assert!(!doc.statements[2].principal.as_ref().unwrap().is_wildcard());
        assert!(doc.statements[1].applies_to_principal("Service", "pods.eks.amazonaws.com"));
        assert!(!doc.statements[2].applies_to_principal("Service", "pods.eks.amazonaws.com"));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(PolicyDocument::parse("   "), Err(PolicyError::Empty));
        assert!(matches!(
            PolicyDocument::parse("{not json"),
            Err(PolicyError::NotJson(_))
        ));
        assert!(matches!(
            PolicyDocument::parse("hello"),
            Err(PolicyError::NotJson(_))
        ));
        assert_eq!(
            PolicyDocument::parse("%5B1%5D"),
            Err(PolicyError::NotAnObject { found: "list" })
        );
        assert_eq!(
            PolicyDocument::parse("%FF%FE"),
            Err(PolicyError::BadEncoding)
        );
        assert_eq!(
            PolicyDocument::parse(r#"{"Version": "2012-10-17"}"#),
            Err(PolicyError::MissingStatement)
        );
        assert_eq!(
            PolicyDocument::parse(r#"{"Statement": "Allow"}"#),
            Err(PolicyError::BadStatement { found: "string" })
        );

        let err = PolicyDocument::parse(
            r#"{"Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}, {"Sid": "X", "Action": "s3:GetObject"}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Statement[1] (Sid \"X\"): it has no Effect"
        );

        assert_eq!(
            problem(r#"{"Statement": [{"Effect": "allow", "Action": "s3:GetObject"}]}"#),
            StatementProblem::BadEffect("\"allow\"".into())
        );
        assert_eq!(
            problem(r#"{"Statement": [{"Effect": "Allow"}]}"#),
            StatementProblem::MissingAction
        );
        assert_eq!(
            problem(r#"{"Statement": [{"Effect": "Allow", "Action": "a:b", "NotAction": "c:d"}]}"#),
            StatementProblem::Conflicting("Action")
        );
        assert_eq!(
            problem(r#"{"Statement": [{"Effect": "Allow", "Action": 5}]}"#),
            StatementProblem::WrongType {
                field: "Action".into(),
                expected: "a string or a list of strings",
                found: "number"
            }
        );
        assert_eq!(
            problem(r#"{"Statement": [{"Effect": "Allow", "Action": ["a:b", true]}]}"#),
            StatementProblem::WrongType {
                field: "Action[1]".into(),
                expected: "a string",
                found: "boolean"
            }
        );
        assert_eq!(
            problem(
                r#"{"Statement": [{"Effect": "Allow", "Action": "a:b", "Principal": {"Service": {}}}]}"#
            ),
            StatementProblem::WrongType {
                field: "Principal.Service".into(),
                expected: "a string or a list of strings",
                found: "object"
            }
        );
        assert!(matches!(
            problem(r#"{"Statement": [{"Effect": "Allow", "Action": "a:b", "Principal": "ec2"}]}"#),
            StatementProblem::BadPrincipal {
                field: "Principal",
                ..
            }
        ));
        assert_eq!(
            problem(r#"{"Statement": [7]}"#),
            StatementProblem::NotAnObject { found: "number" }
        );
        let err = PolicyDocument::parse(r#"{"Statement": [{"Effect": "Allow", "Action": 1}]}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Statement[0]: Action is a JSON number; it must be a string or a list of strings"
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        let inputs = [
            "",
            "%",
            "%7",
            "%7B",
            "{",
            "}",
            "[]",
            "null",
            "\"x\"",
            "%ZZ",
            "{\"Statement\":[]}",
            "{\"Statement\":null}",
            "{\"Statement\":[null]}",
            "\u{0}",
            "%00",
            "+",
            "%7B+",
            "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":[],\"Principal\":{}}}",
        ];
        for input in inputs {
            let _ = PolicyDocument::parse(input);
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(PolicyDocument::parse(&deep).is_err());
    }

    #[test]
    fn action_matching_follows_iam() {
        assert!(action_matches("sts:AssumeRole", "sts:AssumeRole"));
        assert!(action_matches("STS:assumerole", "sts:AssumeRole"));
        assert!(action_matches("sts:*", "sts:TagSession"));
        assert!(action_matches("sts:Assume*", "sts:AssumeRole"));
        assert!(action_matches("*", "sts:AssumeRole"));
        assert!(action_matches("*:*", "sts:AssumeRole"));
        assert!(action_matches("sts:?agSession", "sts:TagSession"));
        assert!(action_matches("s*:*Role", "sts:AssumeRole"));
        assert!(!action_matches("sts:Assume*", "sts:TagSession"));
        assert!(!action_matches(
            "sts:AssumeRole",
            "sts:AssumeRoleWithWebIdentity"
        ));
        assert!(!action_matches("sts:AssumeRole?", "sts:AssumeRole"));
        assert!(!action_matches("s3:*", "sts:AssumeRole"));
        assert!(!action_matches("", "sts:AssumeRole"));
        assert!(action_matches(
            "a*a*a*a*a*a*b",
            &format!("{}b", "a".repeat(200))
        ));
        assert!(!action_matches("a*a*a*a*a*a*b", &"a".repeat(200)));
    }

    #[test]
    fn action_match_semantics() {
        let allow = ActionMatch::Action(vec!["sts:AssumeRole".into()]);
        assert!(allow.matches("sts:assumerole"));
        assert!(!allow.matches("sts:TagSession"));
        let not = ActionMatch::NotAction(vec!["iam:*".into()]);
        assert!(not.matches("sts:TagSession"));
        assert!(!not.matches("iam:PassRole"));
        assert!(matches!(&not, ActionMatch::NotAction(p) if p == &["iam:*"]));
    }

    #[test]
    fn statement_labels() {
        assert_eq!(statement_label(2, None), "Statement[2]");
        assert_eq!(statement_label(0, Some("")), "Statement[0]");
        assert_eq!(statement_label(0, Some("S3")), "Statement[0] (Sid \"S3\")");
    }
}
