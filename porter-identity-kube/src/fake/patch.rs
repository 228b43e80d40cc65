//! JSON Patch (RFC 6902) as the API server applies it (`application/json-patch+json`): the
//! operations `add` (`/-` appends to an array), `remove`, `replace`, `move`, `copy` and
//! `test`, on JSON pointers (RFC 6901: `~1` is `/`, `~0` is `~`). One difference from the RFC,
//! the API server's: a `test` of a path that is not there compares it as `null` (kube-runtime's
//! finalizer helper tests `/metadata/finalizers` against `null` before adding the first one).

use serde_json::Value;

/// Where one operation wrote, for field ownership: the object path of the field, cut at the
/// first array (arrays are atomic fields); whether the operation set or removed that field
/// whole (`false`: it changed an element of the array); whether it removed it.
#[derive(Debug)]
pub(super) struct Touched {
    pub(super) path: Vec<String>,
    pub(super) whole: bool,
    pub(super) removed: bool,
}

/// Applies `ops` (a JSON array of operations) to `doc` in order. On an error (a failed test, a
/// path that is not there, a malformed operation) `doc` may be half patched: the caller
/// patches a copy and drops it.
pub(super) fn apply(doc: &mut Value, ops: &Value) -> Result<Vec<Touched>, String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch is an array of operations")?;
    let mut touched = Vec::new();
    for op in ops {
        let name = op["op"].as_str().ok_or("an operation without \"op\"")?;
        let raw = op["path"].as_str().ok_or("an operation without \"path\"")?;
        let path = pointer(raw)?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("{name} {raw}: no \"value\""))
        };
        let from = || -> Result<Vec<String>, String> {
            pointer(
                op["from"]
                    .as_str()
                    .ok_or_else(|| format!("{name} {raw}: no \"from\""))?,
            )
        };
        match name {
            "test" => {
                let have = get(doc, &path).unwrap_or(&Value::Null);
                let want = op.get("value").unwrap_or(&Value::Null);
                if have != want {
                    return Err(format!("test of {raw} failed: it is {have}, not {want}"));
                }
            }
            "add" => touched.push(add(doc, &path, value()?, raw)?),
            "remove" => touched.push(take(doc, &path, raw)?.1),
            "replace" => {
                let slot = get_mut(doc, &path)
                    .filter(|_| !path.is_empty())
                    .ok_or_else(|| missing(raw))?;
                *slot = value()?;
                touched.push(touched_at(doc, &path, false));
            }
            "move" => {
                let from = from()?;
                let (moved, gone) = take(doc, &from, raw)?;
                touched.push(gone);
                touched.push(add(doc, &path, moved, raw)?);
            }
            "copy" => {
                let copied = get(doc, &from()?).cloned().ok_or_else(|| missing(raw))?;
                touched.push(add(doc, &path, copied, raw)?);
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(touched)
}

fn missing(raw: &str) -> String {
    format!("{raw}: no such path in the object")
}

/// A JSON pointer's reference tokens, decoded.
fn pointer(raw: &str) -> Result<Vec<String>, String> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let rest = raw
        .strip_prefix('/')
        .ok_or_else(|| format!("{raw:?} is not a JSON pointer"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// An array index token: digits, within `len` (`len` itself when `end` allows it, as `add`
/// does).
fn index(token: &str, len: usize, end: bool) -> Option<usize> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: usize = token.parse().ok()?;
    (i < len || (end && i == len)).then_some(i)
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, t| match v {
        Value::Object(map) => map.get(t),
        Value::Array(items) => items.get(index(t, items.len(), false)?),
        _ => None,
    })
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |v, t| match v {
        Value::Object(map) => map.get_mut(t),
        Value::Array(items) => {
            let i = index(t, items.len(), false)?;
            items.get_mut(i)
        }
        _ => None,
    })
}

/// What an operation at `path` of `doc` touches (see [`Touched`]).
fn touched_at(doc: &Value, path: &[String], removed: bool) -> Touched {
    let mut cur = Some(doc);
    for (i, token) in path.iter().enumerate() {
        match cur {
            Some(Value::Array(_)) => {
                return Touched {
                    path: path[..i].to_vec(),
                    whole: false,
                    removed: false,
                };
            }
            Some(v) => cur = v.get(token),
            None => break,
        }
    }
    Touched {
        path: path.to_vec(),
        whole: true,
        removed,
    }
}

/// `add`: sets a member of an object, or inserts into an array (`-`: at its end).
fn add(doc: &mut Value, path: &[String], value: Value, raw: &str) -> Result<Touched, String> {
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| format!("add {raw}: the whole object cannot be replaced"))?;
    match get_mut(doc, parents).ok_or_else(|| missing(raw))? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        Value::Array(items) => {
            let i = if last == "-" {
                items.len()
            } else {
                index(last, items.len(), true).ok_or_else(|| missing(raw))?
            };
            items.insert(i, value);
        }
        _ => return Err(missing(raw)),
    }
    Ok(touched_at(doc, path, false))
}

/// `remove` (and the first half of `move`): the value that was at `path`.
fn take(doc: &mut Value, path: &[String], raw: &str) -> Result<(Value, Touched), String> {
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| format!("remove {raw}: the whole object cannot be removed"))?;
    let touched = touched_at(doc, path, true);
    let value = match get_mut(doc, parents).ok_or_else(|| missing(raw))? {
        Value::Object(map) => map.remove(last),
        Value::Array(items) => index(last, items.len(), false).map(|i| items.remove(i)),
        _ => None,
    };
    Ok((value.ok_or_else(|| missing(raw))?, touched))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn add_append_remove_replace_and_escaped_pointers() {
        let mut doc = json!({"metadata": {"annotations": {"a/b": "1"}}, "spec": {"list": [1, 2]}});
        let touched = apply(
            &mut doc,
            &json!([
                {"op": "add", "path": "/spec/list/-", "value": 3},
                {"op": "add", "path": "/spec/list/0", "value": 0},
                {"op": "replace", "path": "/metadata/annotations/a~1b", "value": "2"},
                {"op": "add", "path": "/metadata/annotations/c~0d", "value": "3"},
                {"op": "remove", "path": "/spec/list/1"},
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"annotations": {"a/b": "2", "c~d": "3"}}, "spec": {"list": [0, 2, 3]}})
        );
        assert_eq!(touched[0].path, ["spec", "list"], "arrays are atomic");
        assert!(!touched[0].whole);
        assert_eq!(touched[2].path, ["metadata", "annotations", "a/b"]);
        assert!(touched[2].whole);
    }

    #[test]
    fn a_missing_path_tests_as_null_and_a_failed_test_or_bad_path_is_an_error() {
        let mut doc = json!({"metadata": {}});
        apply(
            &mut doc,
            &json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
                {"op": "test", "path": "/metadata/finalizers/0", "value": "x"},
            ]),
        )
        .unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["x"]));
        for bad in [
            json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]),
            json!([{"op": "remove", "path": "/metadata/labels"}]),
            json!([{"op": "replace", "path": "/spec/x", "value": 1}]),
            json!([{"op": "add", "path": "/spec/x", "value": 1}]),
            json!([{"op": "add", "path": "/metadata/finalizers/5", "value": "y"}]),
            json!([{"op": "frobnicate", "path": "/metadata"}]),
            json!({"op": "add"}),
        ] {
            assert!(apply(&mut doc.clone(), &bad).is_err(), "{bad}");
        }
    }
}
