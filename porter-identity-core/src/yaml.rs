//! Reads YAML into a tree that remembers where each node was, within fixed budgets.
//!
//! porter.yaml is read in one pass into this tree whatever its shape, so that every error,
//! however wrong the shape, can name the path and the line and column of the very value at
//! fault; the typed model is then built from the tree.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{DuplicateKeyPolicy, NonFiniteFloatPolicy, Spanned};

use crate::error::SourceLocation;

/// A YAML value with the location of each of its nodes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Seq(Vec<Located>),
    /// Keys in file order; duplicates are refused by the parser.
    Map(Vec<(String, Located)>),
}

/// A node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Located {
    pub(crate) node: Node,
    pub(crate) at: Option<SourceLocation>,
}

impl Located {
    /// The value of `key`, when this is a mapping that has it.
    pub(crate) fn get(&self, key: &str) -> Option<&Located> {
        match &self.node {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl Node {
    /// What kind of value this is, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "an empty value",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }

    /// The same value as JSON (for connections kept as written).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(items.iter().map(|i| i.node.to_json()).collect()),
            Node::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.node.to_json()))
                    .collect(),
            ),
        }
    }
}

fn location(l: &serde_saphyr::Location) -> Option<SourceLocation> {
    (l.line() > 0).then(|| SourceLocation {
        line: l.line(),
        column: l.column(),
    })
}

impl<'de> Deserialize<'de> for Located {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Node>::deserialize(d)?;
        Ok(Located {
            at: location(&spanned.referenced),
            node: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        // JSON has no NaN or infinity: keep those as the text YAML wrote.
        Ok(serde_json::Number::from_f64(v)
            .map(Node::Number)
            .unwrap_or_else(|| Node::String(v.to_string())))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Located>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            entries.push((key.0, map.next_value::<Located>()?));
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key: YAML allows scalars of any type; they are compared as text.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'v> Visitor<'v> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<Key, E> {
                Ok(Key("null".to_owned()))
            }
            fn visit_seq<A: SeqAccess<'v>>(self, _: A) -> Result<Key, A::Error> {
                Err(de::Error::custom(
                    "a mapping key is a list; keys must be plain words",
                ))
            }
            fn visit_map<A: MapAccess<'v>>(self, _: A) -> Result<Key, A::Error> {
                Err(de::Error::custom(
                    "a mapping key is a mapping; keys must be plain words",
                ))
            }
        }
        // As text: a key `y` or `on` is a word, not a YAML 1.1 boolean.
        d.deserialize_string(KeyVisitor)
    }
}

/// The limits of what is read.
pub(crate) struct Limits {
    pub(crate) max_depth: usize,
    pub(crate) max_bytes: usize,
}

/// Why YAML could not be read, in words for the person who wrote it.
pub(crate) struct ParseProblem {
    pub(crate) problem: String,
    pub(crate) fix: String,
    pub(crate) at: Option<SourceLocation>,
}

/// Parses one YAML document into a located tree.
pub(crate) fn parse(yaml: &str, limits: &Limits) -> Result<Located, ParseProblem> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: limits.max_depth,
            max_documents: 1,
            max_aliases: 64,
            max_anchors: 64,
            max_nodes: 50_000,
            max_events: 100_000,
            max_total_scalar_bytes: limits.max_bytes,
        },
        duplicate_keys: DuplicateKeyPolicy::Error,
        // `role: yes` or `name: on` are words, as YAML 1.2 reads them.
        strict_booleans: true,
        non_finite_float_policy: NonFiniteFloatPolicy::AsString,
    };
    serde_saphyr::from_str_with_options::<Located>(yaml, options).map_err(|e| describe(&e, limits))
}

/// The error itself, without the wrappers that add a snippet or the alias it came through.
fn innermost(mut e: &serde_saphyr::Error) -> &serde_saphyr::Error {
    loop {
        match e {
            serde_saphyr::Error::WithSnippet { error, .. }
            | serde_saphyr::Error::AliasError { error, .. } => e = error,
            other => return other,
        }
    }
}

fn describe(e: &serde_saphyr::Error, limits: &Limits) -> ParseProblem {
    let at = e.location().as_ref().and_then(location);
    let inner = innermost(e);
    let (problem, fix) = match inner {
        serde_saphyr::Error::Budget { breach, .. } => budget_words(breach, limits),
        other => {
            let text = other.to_string();
            let message = parser_message(text.lines().next().unwrap_or_default());
            if message.contains("recursion limit") {
                // The parser's own guard fires before the depth budget on very deep input.
                budget_words(&BudgetBreach::Depth { depth: 0 }, limits)
            } else if message == "expected string scalar" {
                (
                    "has a mapping key that is a list or a mapping".to_owned(),
                    "write keys as plain words (`name:`, `type:`)".to_owned(),
                )
            } else {
                (
                    format!("is not valid YAML: {message}"),
                    "correct the YAML at that place (indentation, quotes, brackets)".to_owned(),
                )
            }
        }
    };
    ParseProblem { problem, fix, at }
}

/// The parser's own sentence, without the location it repeats and advice meant for programmers.
fn parser_message(text: &str) -> String {
    let mut msg = text.trim();
    msg = msg.strip_prefix("error: ").unwrap_or(msg);
    if let Some(rest) = msg.strip_prefix("line ") {
        // "line 1 column 3: unclosed bracket" -> "unclosed bracket"
        if let Some((_, after)) = rest.split_once(": ") {
            msg = after;
        }
    }
    let mut msg = msg.split(", set ").next().unwrap_or(msg);
    // "... at line 1, column 3": the location is reported separately.
    if let Some(i) = msg.rfind(" at line ") {
        msg = &msg[..i];
    }
    msg.trim_end_matches('.').to_owned()
}

fn budget_words(breach: &BudgetBreach, limits: &Limits) -> (String, String) {
    let (problem, fix): (String, &str) = match breach {
        BudgetBreach::Documents { .. } => (
            "has more than one YAML document (`---`); porter.yaml is one document".into(),
            "keep one document: remove the `---` separators and what follows",
        ),
        BudgetBreach::Depth { .. } => (
            format!("nests deeper than {} levels", limits.max_depth),
            "porter.yaml is shallow; remove the deep nesting",
        ),
        BudgetBreach::Aliases { .. }
        | BudgetBreach::Anchors { .. }
        | BudgetBreach::AliasAnchorRatio { .. }
        | BudgetBreach::Nodes { .. }
        | BudgetBreach::Events { .. } => (
            "expands to too many values (anchors and aliases that multiply, a \"YAML bomb\"?)"
                .into(),
            "write the values out; porter.yaml needs few anchors",
        ),
        BudgetBreach::ScalarBytes { .. } | BudgetBreach::InputBytes { .. } => (
            format!("holds more than {} bytes of text", limits.max_bytes),
            "pass the app's porter.yaml, not a generated or concatenated file",
        ),
        other => (
            format!("exceeds a reading limit ({other:?})"),
            "simplify the file",
        ),
    };
    (problem, fix.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_depth: 32,
        max_bytes: 1 << 20,
    };

    #[test]
    fn every_node_has_its_location() {
        let root = parse("a:\n  - x: 1\n    y: [true, null]\n", &LIMITS)
            .ok()
            .unwrap();
        let a = root.get("a").unwrap();
        let Node::Seq(items) = &a.node else { panic!() };
        let y = items[0].get("y").unwrap();
        assert_eq!(y.at.unwrap().line, 3);
        assert_eq!(items[0].get("x").unwrap().at.unwrap().line, 2);
        assert_eq!(
            root.node.to_json(),
            serde_json::json!({"a": [{"x": 1, "y": [true, null]}]})
        );
    }

    #[test]
    fn non_finite_floats_are_kept_as_text() {
        let root = parse("r: .nan\ni: .inf\n", &LIMITS).ok().unwrap();
        assert!(matches!(root.get("r").unwrap().node, Node::String(_)));
    }

    #[test]
    fn problems_are_sentences() {
        let p = parse("a: 1\n---\nb: 2\n", &LIMITS).err().unwrap();
        assert!(
            p.problem.contains("more than one YAML document"),
            "{}",
            p.problem
        );
        let p = parse("a: {b: 1\n", &LIMITS).err().unwrap();
        assert!(p.problem.starts_with("is not valid YAML"), "{}", p.problem);
        assert!(!p.problem.contains("line 1 column"), "{}", p.problem);
        let p = parse("a: 1\na: 2\n", &LIMITS).err().unwrap();
        assert!(!p.problem.contains("DuplicateKeyPolicy"), "{}", p.problem);
    }

    #[test]
    fn parser_message_strips_repeats() {
        assert_eq!(
            parser_message("error: line 1 column 3: unclosed bracket '{'"),
            "unclosed bracket '{'"
        );
        assert_eq!(
            parser_message(
                "duplicate mapping key: role, set DuplicateKeyPolicy in Options if acceptable"
            ),
            "duplicate mapping key: role"
        );
    }
}
