//! The binary's own surface, which needs no cloud: `--version` names what the build holds, and
//! `completions` prints each shell's script for exactly the subcommands and flags built in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_porter-identity"))
        .args(args)
        .env_clear()
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn version_names_the_release_and_what_the_build_holds() {
    let out = run(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    let version = stdout(&out);
    assert!(
        version.starts_with(&format!("porter-identity {} (", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // The default build holds everything; scripts/test checks the AWS-only build says `(aws)`.
    if cfg!(all(
        feature = "aws",
        feature = "azure",
        feature = "gcp",
        feature = "kube",
        feature = "fake"
    )) {
        assert!(
            version.ends_with(" (aws, azure, gcp, kube, fake)\n"),
            "{version}"
        );
    }
}

#[test]
fn completions_for_bash_zsh_and_fish_name_every_subcommand_built_in() {
    let mut subcommands = vec!["plan", "apply", "bind", "unbind", "verify", "completions"];
    if cfg!(feature = "kube") {
        subcommands.extend(["manifests", "restart"]);
    }
    if cfg!(all(feature = "aws", feature = "kube")) {
        subcommands.push("migrate-irsa");
    }
    if cfg!(all(feature = "gcp", feature = "kube")) {
        subcommands.push("gke-enable-workload-identity");
    }
    for (shell, marker) in [
        ("bash", "complete -F _porter__identity"),
        ("zsh", "#compdef porter-identity"),
        ("fish", "complete -c porter-identity"),
    ] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = stdout(&out);
        assert!(
            script.contains(marker),
            "{shell}: no {marker:?} in\n{script}"
        );
        for sub in &subcommands {
            assert!(script.contains(sub), "{shell}: no subcommand {sub}");
        }
        // Flags of a feature left out are not offered.
        assert_eq!(
            script.contains("fake-state"),
            cfg!(feature = "fake"),
            "{shell}: --fake-state offered iff built with the fakes"
        );
        assert_eq!(
            script.contains("eks-cluster"),
            cfg!(feature = "aws"),
            "{shell}"
        );
    }
}

/// bash itself loads the script and registers the completion.
#[test]
fn bash_loads_the_completion_script() {
    use std::io::Write as _;
    let script = stdout(&run(&["completions", "bash"]));
    let mut bash = Command::new("bash")
        .args([
            "--norc",
            "--noprofile",
            "-c",
            "source /dev/stdin && complete -p porter-identity",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bash runs");
    bash.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = bash.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("_porter__identity"), "{out:?}");
}

#[test]
fn an_unknown_shell_is_refused_with_the_ones_there_are() {
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("tcsh") && stderr.contains("bash"),
        "{stderr}"
    );
}
