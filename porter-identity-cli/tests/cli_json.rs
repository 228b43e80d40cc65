//! The JSON of every command, on the built-in fakes, against a snapshot in `tests/snapshots/`:
//! an accidental change of a field's name, place or type fails here. What differs from run to
//! run (association ids, times, the ids Kubernetes gives pods) is replaced by a placeholder
//! first; nothing else is.
//!
//! A deliberate change of the shape: run with `PORTER_IDENTITY_UPDATE_SNAPSHOTS=1`, read the
//! diff of `tests/snapshots/`, and say the change in the CHANGELOG and the CLI README.
#![cfg(all(
    feature = "aws",
    feature = "azure",
    feature = "gcp",
    feature = "kube",
    feature = "fake"
))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use porter_identity_testkit::unique;

/// What varies between runs, and what it becomes.
const VOLATILE: &[(&str, &str)] = &[
    // EKS association ids.
    (r"\ba-[0-9a-z]{17}\b", "a-<association-id>"),
    // RFC 3339 times, to the second or finer.
    (
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "<time>",
    ),
    // Pod names: <workload>-<template hash>-<suffix>.
    (
        r"-[0-9a-f]{10}-[0-9a-z]{5}\b",
        "-<pod-template-hash>-<pod-suffix>",
    ),
];

fn normalise(text: &str) -> String {
    let mut out = text.to_owned();
    for (pattern, placeholder) in VOLATILE {
        out = regex_lite::Regex::new(pattern)
            .unwrap()
            .replace_all(&out, *placeholder)
            .into_owned();
    }
    out
}

fn snapshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

/// Compares `json` (normalised) with the snapshot `name`, or, when asked to, writes it.
fn check(name: &str, json: &str) -> Result<(), String> {
    if std::env::var_os("PORTER_IDENTITY_UPDATE_SNAPSHOTS").is_some() {
        serde_json::from_str::<serde_json::Value>(json)
            .map_err(|e| format!("{name}: not JSON ({e}):\n{json}"))?;
        std::fs::create_dir_all(snapshots()).unwrap();
        let path = snapshots().join(format!("{name}.json"));
        std::fs::write(path, normalise(json.trim_end()) + "\n").unwrap();
        return Ok(());
    }
    compare(name, json)
}

/// Compares `json` (normalised) with the snapshot `name`.
fn compare(name: &str, json: &str) -> Result<(), String> {
    serde_json::from_str::<serde_json::Value>(json)
        .map_err(|e| format!("{name}: not JSON ({e}):\n{json}"))?;
    let actual = normalise(json.trim_end()) + "\n";
    let path = snapshots().join(format!("{name}.json"));
    let expected = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{name}: no snapshot at {} ({e}); write it with PORTER_IDENTITY_UPDATE_SNAPSHOTS=1",
            path.display()
        )
    })?;
    if expected == actual {
        return Ok(());
    }
    let first = expected
        .lines()
        .zip(actual.lines())
        .position(|(e, a)| e != a)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    Err(format!(
        "{name}: the JSON differs from {} from line {}:\n  expected: {}\n  actual:   {}\n\
         (a deliberate change: PORTER_IDENTITY_UPDATE_SNAPSHOTS=1, then say it in the CHANGELOG)\n\
         whole output:\n{actual}",
        path.display(),
        first + 1,
        expected.lines().nth(first).unwrap_or("<end>"),
        actual.lines().nth(first).unwrap_or("<end>"),
    ))
}

/// Runs one command on the fakes kept in `state`, with JSON output; returns its exit status
/// and stdout.
fn run(state: &Path, args: &[&str]) -> (i32, String) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/porter.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_porter-identity"))
        .env_clear()
        .args(args)
        .args([
            "-f",
            example.to_str().unwrap(),
            "--app",
            "demo",
            "-o",
            "json",
        ])
        .args(["--fake", "--fake-state", state.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code().is_some(),
        "{args:?} was killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), stdout)
}

/// A person's pause between two commands: the links' and pods' times are in whole seconds.
fn pause() {
    std::thread::sleep(std::time::Duration::from_millis(1_100));
}

#[test]
fn every_commands_json_matches_its_snapshot() {
    let dir = std::env::temp_dir().join(unique("porter-identity-cli-json"));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    // In the order a user meets them; each with the exit status it must have.
    let steps: &[(&str, &[&str], i32)] = &[
        ("plan", &["plan"], 0),
        ("apply", &["apply"], 0),
        // The clouds are linked; the fake cluster's ServiceAccounts and pods are not yet.
        ("verify-cluster-not-ready", &["verify"], 1),
        // Their pods predate the links: what a restart would do.
        ("restart-dry-run", &["restart", "--dry-run"], 0),
        ("apply-kube-restart", &["apply", "--kube", "--restart"], 0),
        ("verify", &["verify"], 0),
        ("manifests", &["manifests"], 0),
        ("bind", &["bind"], 0),
        ("migrate-irsa-dry-run", &["migrate-irsa", "--dry-run"], 0),
        (
            "gke-enable-workload-identity-dry-run",
            &[
                "gke-enable-workload-identity",
                "--pool",
                "default-pool",
                "--dry-run",
            ],
            0,
        ),
        ("unbind", &["unbind"], 0),
        ("verify-unbound", &["verify"], 1),
    ];
    let mut failures = Vec::new();
    for (name, args, status) in steps {
        if *name == "apply-kube-restart" || *name == "verify" {
            pause();
        }
        let (code, stdout) = run(&state, args);
        if code != *status {
            failures.push(format!(
                "{name}: exit status {code}, not {status}:\n{stdout}"
            ));
            continue;
        }
        if let Err(e) = check(name, &stdout) {
            failures.push(e);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_normalisation_hides_only_what_varies() {
    let text = r#"{"id": "a-pf1p1cx34zpoka84y", "at": "2026-12-07T06:07:29Z", "pod": "reports-ded46c4be3-8f740", "role": "demo-api-role", "n": 25}"#;
    assert_eq!(
        normalise(text),
        r#"{"id": "a-<association-id>", "at": "<time>", "pod": "reports-<pod-template-hash>-<pod-suffix>", "role": "demo-api-role", "n": 25}"#
    );
}

#[test]
fn a_changed_field_fails_the_comparison() {
    // The snapshot of `restart --dry-run` with a field renamed, as an accidental change would.
    let snapshot = std::fs::read_to_string(snapshots().join("restart-dry-run.json")).unwrap();
    let renamed = snapshot.replace("\"restarted\"", "\"restarts\"");
    assert_ne!(snapshot, renamed, "the snapshot has the field");
    let e = compare("restart-dry-run", &renamed).unwrap_err();
    assert!(e.contains("differs"), "{e}");
}
