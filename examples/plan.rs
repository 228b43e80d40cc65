//! Reads a porter.yaml and shows, per service, what porter-identity would link: the
//! ServiceAccount each service runs as, its identity connections, the connections it ignores,
//! and the ServiceAccount manifest skeleton. Read-only: no cloud is called.
//!
//! ```text
//! cargo run --example plan -- examples/porter.yaml --app demo --namespace default
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use porter_identity::{
    AppManifest, Connection, KubernetesName, Namespace, Service, ServiceAccountPatch, Workload,
};

const USAGE: &str = "\
Shows what porter-identity would link for each service of a porter.yaml (read-only).

Usage:
    cargo run --example plan -- <PORTER_YAML> --app <NAME> --namespace <NAMESPACE>

Arguments:
    <PORTER_YAML>            the app's porter.yaml
    --app <NAME>             the porter app (ServiceAccounts are named <app>-<service>)
    -n, --namespace <NAMESPACE>
                             the Kubernetes namespace the app is deployed to
    -h, --help               print this help

Exit status: 0 when the file is valid, 1 when it is not, 2 on a usage error.";

/// The command line, checked.
struct Args {
    file: PathBuf,
    app: String,
    namespace: String,
}

/// Why the command line was not accepted.
enum ArgsError {
    Help,
    Usage(String),
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, ArgsError> {
    let mut file = None;
    let mut app = None;
    let mut namespace = None;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "-h" | "--help" => return Err(ArgsError::Help),
            "--app" => &mut app,
            "--namespace" | "-n" => &mut namespace,
            "--" => continue,
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(ArgsError::Usage(format!("unknown option `{f}`")));
            }
            _ => {
                if file.is_some() {
                    return Err(ArgsError::Usage(format!(
                        "unexpected argument `{arg}`: give one porter.yaml"
                    )));
                }
                file = Some(PathBuf::from(arg));
                continue;
            }
        };
        // A following option is not a value: `--app --namespace x` lacks the app.
        let value = match inline.or_else(|| args.next()) {
            Some(v) if !v.is_empty() && !v.starts_with("--") => v,
            _ => return Err(ArgsError::Usage(format!("`{flag}` needs a value"))),
        };
        if slot.replace(value).is_some() {
            return Err(ArgsError::Usage(format!("`{flag}` is given twice")));
        }
    }
    let missing = |what: &str| ArgsError::Usage(format!("missing {what}"));
    Ok(Args {
        file: file.ok_or_else(|| missing("the porter.yaml path"))?,
        app: app.ok_or_else(|| missing("`--app <NAME>`"))?,
        namespace: namespace.ok_or_else(|| missing("`--namespace <NAMESPACE>`"))?,
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(ArgsError::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(ArgsError::Usage(problem)) => {
            eprintln!("error: {problem}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The app and namespace are checked before the file, so that a typo in them is a usage error.
    if let Err(e) =
        Namespace::parse(&args.namespace).and_then(|_| KubernetesName::parse("app", &args.app))
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let manifest = match AppManifest::from_path(&args.file) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match render(&args, &manifest) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The whole report, built before anything is printed so that an error prints nothing else.
fn render(args: &Args, manifest: &AppManifest) -> porter_identity::Result<String> {
    let services = manifest.services();
    let identities: usize = services
        .iter()
        .map(|s| s.identity_connections().count())
        .sum();
    let mut out = String::new();
    out.push_str(&format!("porter.yaml  {}\n", args.file.display()));
    out.push_str(&format!(
        "app          {}\nnamespace    {}\n",
        args.app, args.namespace
    ));
    out.push_str(&format!(
        "services     {} ({} identity connection{})\n",
        services.len(),
        identities,
        if identities == 1 { "" } else { "s" }
    ));
    // One width for the connection types of every service, so all sections line up.
    let type_width = services
        .iter()
        .flat_map(|s| s.connections())
        .map(|c| c.type_name().chars().count())
        .max()
        .unwrap_or(0);
    for service in services {
        out.push('\n');
        out.push_str(&render_service(args, service, type_width)?);
    }
    Ok(out)
}

fn render_service(
    args: &Args,
    service: &Service,
    type_width: usize,
) -> porter_identity::Result<String> {
    let workload = Workload::for_service(&args.namespace, &args.app, service.name())?;
    let mut out = String::new();
    let title = format!("── service {} ", service.name());
    out.push_str(&format!(
        "{title}{}\n",
        "─".repeat(72usize.saturating_sub(title.chars().count()))
    ));
    let row = |out: &mut String, label: &str, value: &str| {
        out.push_str(&format!("  {label:<17}{value}\n"));
    };
    row(
        &mut out,
        "service account",
        &format!(
            "{} (namespace {})",
            workload.service_account(),
            workload.namespace()
        ),
    );
    if service.connections().is_empty() {
        row(&mut out, "connections", "none: no cloud identity");
    } else {
        out.push_str("  connections\n");
    }
    // Identity connections first, then the ignored ones, each in file order.
    for c in service.identity_connections() {
        let cloud = c.cloud().map_or("", |cloud| cloud.as_str());
        out.push_str(&format!(
            "    {:<type_width$}  {cloud:<5}  {}\n",
            c.type_name(),
            identity_of(c)
        ));
    }
    for c in service.other_connections() {
        out.push_str(&format!(
            "    {:<type_width$}  {:<5}  ignored: not an identity connection\n",
            c.type_name(),
            "-"
        ));
    }
    out.push_str("\n  ServiceAccount skeleton (cloud annotations are added when bound):\n");
    let yaml = ServiceAccountPatch::default().to_service_account_yaml(&workload);
    for line in yaml.lines() {
        out.push_str(&format!("    {line}\n"));
    }
    Ok(out)
}

/// The identity a connection names, in words.
fn identity_of(c: &Connection) -> String {
    match c {
        Connection::AwsRole { role, options, .. } => {
            let mut s = if role.is_arn() {
                format!("role {role}")
            } else {
                format!("role {role} (a name: its ARN is looked up when bound)")
            };
            if let Some(target) = &options.target_role {
                s.push_str(&format!(", chained into {target}"));
            }
            if options.mode == Some(porter_identity::AwsRoleMode::Irsa) {
                s.push_str(", by IRSA (the eks.amazonaws.com/role-arn annotation)");
            }
            s
        }
        Connection::AzureManagedIdentity {
            identity_name,
            resource_group,
            ..
        } => format!("managed identity {identity_name} (resource group {resource_group})"),
        Connection::GcpServiceAccount {
            service_account_email,
            ..
        } => format!(
            "service account {service_account_email} (project {})",
            service_account_email.project_id()
        ),
        other => other.describe(),
    }
}
