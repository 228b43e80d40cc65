//! The files of `deploy/` agree with the code: `deploy/crd.yaml` is what
//! `porter-identity-controller crd` prints.

use std::path::Path;
use std::process::Command;

#[test]
fn the_committed_crds_are_the_ones_the_binary_prints() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crd.yaml");
    let committed = std::fs::read_to_string(&file).expect("deploy/crd.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_porter-identity-controller"))
        .arg("crd")
        .output()
        .expect("run the binary");
    assert!(out.status.success());
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "deploy/crd.yaml differs from the types: run `cargo run -p porter-identity-controller -- crd > deploy/crd.yaml`"
    );
    assert_eq!(committed, porter_identity_controller::crd::crd_yaml());
}

#[test]
fn a_wrong_command_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_porter-identity-controller"))
        .arg("run-everything")
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}
