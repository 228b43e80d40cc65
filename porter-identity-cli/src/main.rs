//! `porter-identity`: the command-line tool over the SDK — plan, apply, bind, unbind, verify
//! and the ServiceAccount manifests of a porter app, on AWS, Azure and GCP at once, for people
//! at a terminal and for CI.
//!
//! ```text
//! porter-identity apply --fake -f examples/porter.yaml --app demo
//! porter-identity plan -f porter.yaml --app shop -n prod \
//!     --eks-cluster prod --aks-cluster prod-rg/prod-aks --gke-cluster my-project/us-central1/prod
//! porter-identity --help
//! ```
//!
//! Each cloud, the Kubernetes side and the fakes are cargo features (all on by default): a
//! build without one has neither its subcommands nor its flags, and `--version` names what it
//! holds.
//!
//! Credentials and endpoints come from each cloud's environment, exactly as the providers'
//! `from_env` reads them (emulator variables included); no flag takes a secret. Exit status:
//! 0 ok, 1 verify found errors, 2 bad input (porter.yaml, flags), 3 a cloud call (or, with the
//! Kubernetes side, a cluster call) failed.

mod cli;
mod clouds;
#[cfg(feature = "fake")]
mod fake_state;
#[cfg(feature = "kube")]
mod kube_side;
#[cfg(feature = "kube")]
mod manifests;
mod output;

#[cfg(feature = "kube")]
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::LazyLock;

use clap::{CommandFactory, Parser};
use porter_identity::{AppManifest, Binding, Cloud, ErrorKind, Reconciler};
#[cfg(feature = "kube")]
use porter_identity::{ServiceAccountPatch, Workload};

#[cfg(all(feature = "gcp", feature = "kube"))]
use crate::cli::GkeEnable;
#[cfg(all(feature = "aws", feature = "kube"))]
use crate::cli::MigrateIrsa;
#[cfg(feature = "kube")]
use crate::cli::Restart;
use crate::cli::{Cli, Command, Common, Deploy, Output};
use crate::clouds::Clouds;
#[cfg(feature = "fake")]
use crate::fake_state::{FakeState, Run};
#[cfg(feature = "kube")]
use crate::kube_side::KubeSide;

/// What this build holds, for `--version`: the version, then the clouds, the Kubernetes side
/// and the fakes compiled in (each a cargo feature).
pub(crate) fn version() -> &'static str {
    static VERSION: LazyLock<String> = LazyLock::new(|| {
        let parts: Vec<&str> = [
            (cfg!(feature = "aws"), "aws"),
            (cfg!(feature = "azure"), "azure"),
            (cfg!(feature = "gcp"), "gcp"),
            (cfg!(feature = "kube"), "kube"),
            (cfg!(feature = "fake"), "fake"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        let parts = if parts.is_empty() {
            "no cloud".to_owned()
        } else {
            parts.join(", ")
        };
        format!("{} ({parts})", env!("CARGO_PKG_VERSION"))
    });
    VERSION.as_str()
}

/// Exit statuses.
const EXIT_VERIFY_ERRORS: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_CLOUD: u8 = 3;

/// Why a run stopped before it could report.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad input: the porter.yaml, a flag, the fake state (exit 2).
    Input(String),
    /// A porter-identity error: bad input by its kind, otherwise a cloud call (exit 3).
    Sdk(porter_identity::Error),
}

impl From<porter_identity::Error> for Failure {
    fn from(e: porter_identity::Error) -> Self {
        Failure::Sdk(e)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions(c) = &cli.command {
        clap_complete::generate(
            c.shell,
            &mut Cli::command(),
            "porter-identity",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    // Logs go to stderr, at the level RUST_LOG asks (none by default); no secret is in them.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(&cli.command).await {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Input(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(Failure::Sdk(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.kind() == ErrorKind::InvalidInput {
                EXIT_BAD_INPUT
            } else {
                EXIT_CLOUD
            })
        }
    }
}

fn read_manifest(path: &Path, what: &str) -> Result<(AppManifest, String), Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::Input(format!(
            "{what} {}: cannot read it ({e}); pass the app's porter.yaml with -f",
            path.display()
        ))
    })?;
    let manifest = AppManifest::from_yaml_str(&text)?;
    Ok((manifest, text))
}

async fn run(command: &Command) -> Result<u8, Failure> {
    let Some(common) = command.common() else {
        return Ok(0); // `completions`, answered in main
    };
    let mut common = common.clone();
    let (manifest, text) = read_manifest(&common.file, "-f")?;
    if common.app.is_none() {
        common.app = Some(manifest.name().map(str::to_owned).ok_or_else(|| {
            Failure::Input(format!(
                "{} has no top-level `name`: pass the app with --app NAME",
                common.file.display()
            ))
        })?);
    }
    let common = &common;
    let previous = common
        .previous
        .as_deref()
        .map(|p| read_manifest(p, "--previous"))
        .transpose()?;
    // Names are checked before anything else is done.
    manifest.bindings(common.app(), &common.namespace)?;

    #[cfg(feature = "fake")]
    let state = match &common.fake_state {
        Some(path) => Some(FakeState::load(path)?),
        None => None,
    };
    #[cfg(feature = "fake")]
    let on_fakes = if common.fake {
        Some(
            fake_clouds(
                common,
                state.as_ref(),
                &manifest,
                previous.as_ref().map(|p| &p.0),
            )
            .await?,
        )
    } else {
        None
    };
    #[cfg(not(feature = "fake"))]
    let on_fakes: Option<Clouds> = None;
    let clouds = match on_fakes {
        Some(clouds) => clouds,
        None => {
            let mut in_play = vec![&manifest];
            if let Some((p, _)) = &previous {
                in_play.push(p);
            }
            #[allow(unused_mut)] // GKE's subcommand adds GCP
            let mut needed = clouds::clouds_of(&in_play);
            #[cfg(all(feature = "gcp", feature = "kube"))]
            if matches!(command, Command::GkeEnableWorkloadIdentity(_)) {
                needed.insert(Cloud::Gcp);
            }
            clouds::from_env(common, &needed).await?
        }
    };
    #[cfg(feature = "kube")]
    let mut kube: Option<KubeSide> = None;
    #[cfg(feature = "kube")]
    let connect = |optional: bool| {
        #[cfg(feature = "fake")]
        let saved = state.as_ref().and_then(FakeState::kube);
        #[cfg(not(feature = "fake"))]
        let saved = None;
        kube_side::connect(common, &manifest, saved, optional)
    };

    let code = match command {
        Command::Plan(deploy) | Command::Apply(deploy) => {
            let dry = matches!(command, Command::Plan(_));
            #[cfg(feature = "kube")]
            if deploy.kube {
                kube = connect(false).await?;
            }
            reconcile(
                common,
                deploy,
                &clouds,
                #[cfg(feature = "kube")]
                kube.as_ref(),
                &manifest,
                previous.as_ref().map(|p| &p.0),
                dry,
            )
            .await?
        }
        Command::Bind(_) | Command::Unbind(_) => {
            let bind = matches!(command, Command::Bind(_));
            bind_or_unbind(common, &clouds, &manifest, bind).await?
        }
        Command::Verify(_) => {
            #[cfg(feature = "kube")]
            {
                kube = connect(true).await?;
            }
            verify(
                common,
                &clouds,
                #[cfg(feature = "kube")]
                kube.as_ref(),
                &manifest,
            )
            .await?
        }
        #[cfg(feature = "kube")]
        Command::Manifests(_) => print_manifests(common, &clouds, &manifest).await?,
        #[cfg(feature = "kube")]
        Command::Restart(r) => {
            kube = connect(false).await?;
            restart(common, r, &clouds, kube.as_ref(), &manifest).await?
        }
        #[cfg(all(feature = "aws", feature = "kube"))]
        Command::MigrateIrsa(m) => {
            kube = connect(false).await?;
            migrate_irsa(common, m, &clouds, kube.as_ref(), &manifest).await?
        }
        #[cfg(all(feature = "gcp", feature = "kube"))]
        Command::GkeEnableWorkloadIdentity(g) => {
            kube = connect(false).await?;
            gke_enable(g, &clouds, kube.as_ref()).await?
        }
        Command::Completions(_) => 0,
    };

    #[cfg(feature = "fake")]
    if let (Some(state), Some(path)) = (state, &common.fake_state) {
        let run = command.writes().then(|| Run {
            command: command.name().to_owned(),
            app: common.app().to_owned(),
            namespace: common.namespace.clone(),
            manifest: text,
            previous: previous.map(|(_, t)| t),
        });
        #[cfg(feature = "kube")]
        let cluster = kube.as_ref().and_then(KubeSide::snapshot);
        #[cfg(not(feature = "kube"))]
        let cluster = None;
        if run.is_some() || cluster.is_some() {
            state.record(run, &clouds, cluster, path)?;
        }
    }
    #[cfg(not(feature = "fake"))]
    let _ = text; // kept only by --fake-state
    #[cfg(feature = "kube")]
    if let Some(kube) = kube {
        kube.shutdown().await;
    }
    Ok(code)
}

/// The built-in fake clouds (`--fake`), seeded with everything the porter.yaml, the previous
/// one and the state file's runs name, and with those runs replayed.
#[cfg(feature = "fake")]
async fn fake_clouds(
    common: &Common,
    state: Option<&FakeState>,
    manifest: &AppManifest,
    previous: Option<&AppManifest>,
) -> Result<Clouds, Failure> {
    let mut seeds: Vec<AppManifest> = match (state, &common.fake_state) {
        (Some(s), Some(path)) => s.manifests(path)?,
        _ => Vec::new(),
    };
    seeds.push(manifest.clone());
    seeds.extend(previous.cloned());
    let clouds = clouds::fakes(&seeds.iter().collect::<Vec<_>>(), common).await?;
    if let (Some(s), Some(path)) = (state, &common.fake_state) {
        s.replay(&clouds, path).await?;
    }
    Ok(clouds)
}

#[cfg(feature = "kube")]
/// The Kubernetes side of a run, which the command needs.
fn cluster(kube: Option<&KubeSide>) -> Result<&porter_identity::kube::Cluster, Failure> {
    kube.map(|k| &k.cluster).ok_or_else(|| {
        Failure::Input("no Kubernetes cluster: set KUBECONFIG, or pass --fake".into())
    })
}

#[cfg(feature = "kube")]
/// A dry run of the deploy: what each service account needs, read only.
async fn needs(
    common: &Common,
    clouds: &Clouds,
    manifest: &AppManifest,
) -> Result<porter_identity::ReconcileReport, Failure> {
    let mut reconciler = Reconciler::new(common.app(), &common.namespace).desired(manifest);
    for p in clouds.providers() {
        reconciler = reconciler.provider(p);
    }
    Ok(reconciler.dry_run().await?)
}

#[cfg(feature = "kube")]
async fn restart(
    common: &Common,
    args: &Restart,
    clouds: &Clouds,
    kube: Option<&KubeSide>,
    manifest: &AppManifest,
) -> Result<u8, Failure> {
    let cluster = cluster(kube)?;
    let report = needs(common, clouds, manifest).await?;
    let restarts = cluster.restart_step(&report, args.dry_run).await?;
    match common.output {
        Output::Text => print!("{}", output::restarts_text(&restarts, args.dry_run)),
        Output::Json => println!("{}", output::restarts_json(&restarts, args.dry_run)?),
    }
    Ok(0)
}

#[cfg(all(feature = "aws", feature = "kube"))]
async fn migrate_irsa(
    common: &Common,
    args: &MigrateIrsa,
    clouds: &Clouds,
    kube: Option<&KubeSide>,
    manifest: &AppManifest,
) -> Result<u8, Failure> {
    let cluster = cluster(kube)?;
    let bindings = manifest.bindings_for(Cloud::Aws, common.app(), &common.namespace)?;
    if bindings.is_empty() {
        return Err(Failure::Input(format!(
            "{} has no awsRole connection: nothing to migrate to EKS Pod Identity",
            common.file.display()
        )));
    }
    let options = porter_identity::kube::migrate::MigrateOptions::default()
        .dry_run(args.dry_run)
        .remove_annotation(args.remove_annotation);
    let done = porter_identity::kube::migrate::migrate_irsa(
        cluster,
        provider(clouds, Cloud::Aws)?,
        &bindings,
        options,
    )
    .await?;
    match common.output {
        Output::Text => print!("{}", output::migrations_text(&done, args.dry_run)),
        Output::Json => println!("{}", output::migrations_json(&done, args.dry_run)?),
    }
    Ok(if done.iter().any(|m| !m.trust.is_empty()) {
        EXIT_VERIFY_ERRORS
    } else {
        0
    })
}

#[cfg(all(feature = "gcp", feature = "kube"))]
async fn gke_enable(
    args: &GkeEnable,
    clouds: &Clouds,
    kube: Option<&KubeSide>,
) -> Result<u8, Failure> {
    let cluster = cluster(kube)?;
    let gcp = clouds.gcp().ok_or_else(|| {
        Failure::Input("pass --gke-cluster PROJECT/LOCATION/NAME (or --fake)".into())
    })?;
    let preflight = porter_identity::kube::preflight::gke_preflight(cluster, &args.pool).await?;
    let nodes = preflight.nodes;
    let names: Vec<String> = preflight
        .pods_at_risk
        .iter()
        .map(ToString::to_string)
        .collect();
    // The preflight is said before the change is tried (a refusal names the same pods).
    if args.common.output == Output::Text {
        print!("{}", output::gke_preflight_text(&args.pool, nodes, &names));
    }
    let change = if args.dry_run {
        None
    } else {
        Some(
            gcp.enable_workload_identity(&args.pool, &preflight.pods_at_risk, args.force)
                .await?,
        )
    };
    match args.common.output {
        Output::Text => print!("{}", output::gke_change_text(change.as_ref())),
        Output::Json => println!(
            "{}",
            output::gke_json(&args.pool, nodes, &preflight.pods_at_risk, change.as_ref())?
        ),
    }
    Ok(0)
}

/// A spinner or bar on stderr, only when stderr is a terminal (never in CI logs or pipes).
fn progress(len: Option<u64>, message: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_message(message.to_owned());
    if let Some(style) = len.and_then(|_| {
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}").ok()
    }) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

/// `plan` and `apply`; `common` is the resolved one (the app defaulted).
async fn reconcile(
    common: &Common,
    deploy: &Deploy,
    clouds: &Clouds,
    #[cfg(feature = "kube")] kube: Option<&KubeSide>,
    manifest: &AppManifest,
    previous: Option<&AppManifest>,
    dry_run: bool,
) -> Result<u8, Failure> {
    let mut reconciler = Reconciler::new(common.app(), &common.namespace).desired(manifest);
    for p in clouds.providers() {
        reconciler = reconciler.provider(p);
    }
    if let Some(previous) = previous {
        reconciler = reconciler.previous(previous);
    }
    #[cfg(not(feature = "kube"))]
    let _ = deploy; // its flags are the cluster side's
    // The cluster side runs in the same call, after the clouds'.
    #[cfg(feature = "kube")]
    let step = kube.map(|kube| {
        kube.cluster.step(
            porter_identity::kube::step::StepOptions::default()
                .force_conflicts(deploy.force_conflicts)
                .restart(deploy.restart)
                .create_service_accounts(deploy.create_service_accounts),
        )
    });
    #[cfg(feature = "kube")]
    if let Some(step) = &step {
        reconciler = reconciler.kubernetes(step);
    }
    let bar = progress(
        None,
        if dry_run {
            "planning the deploy"
        } else {
            "deploying"
        },
    );
    let report = if dry_run {
        reconciler.dry_run().await?
    } else {
        reconciler.run().await?
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match common.output {
        Output::Text => println!("{report}"),
        Output::Json => println!("{}", output::to_json(&report)?),
    }
    Ok(if report.is_ok() { 0 } else { EXIT_CLOUD })
}

/// The porter.yaml's bindings, by cloud, in porter.yaml order within each.
fn by_cloud(
    common: &Common,
    manifest: &AppManifest,
) -> Result<Vec<(Cloud, Vec<Binding>)>, Failure> {
    let mut out = Vec::new();
    for cloud in [Cloud::Aws, Cloud::Azure, Cloud::Gcp] {
        let bindings = manifest.bindings_for(cloud, common.app(), &common.namespace)?;
        if !bindings.is_empty() {
            out.push((cloud, bindings));
        }
    }
    Ok(out)
}

fn provider(
    clouds: &Clouds,
    cloud: Cloud,
) -> Result<&dyn porter_identity::WorkloadIdentityProvider, Failure> {
    clouds.provider(cloud).ok_or_else(|| {
        Failure::Input(format!(
            "no provider for {cloud}: pass its cluster flag or --fake"
        ))
    })
}

async fn bind_or_unbind(
    common: &Common,
    clouds: &Clouds,
    manifest: &AppManifest,
    bind: bool,
) -> Result<u8, Failure> {
    let groups = by_cloud(common, manifest)?;
    let total: usize = groups.iter().map(|(_, b)| b.len()).sum();
    let bar = progress(
        Some(total as u64),
        if bind { "binding" } else { "unbinding" },
    );
    let mut rows = Vec::new();
    for (cloud, bindings) in &groups {
        let p = provider(clouds, *cloud)?;
        let results: Vec<Result<output::Outcome, porter_identity::Error>> = if bind {
            p.bind_all(&porter_identity::RunContext::apply(), bindings)
                .await
                .into_iter()
                .map(|r| r.map(output::Outcome::Bind))
                .collect()
        } else {
            p.unbind_all(&porter_identity::RunContext::apply(), bindings)
                .await
                .into_iter()
                .map(|r| r.map(output::Outcome::Unbind))
                .collect()
        };
        if let Some(bar) = &bar {
            bar.inc(bindings.len() as u64);
        }
        rows.extend(bindings.iter().cloned().zip(results));
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let failed = rows.iter().any(|(_, r)| r.is_err());
    match common.output {
        Output::Text => print!("{}", output::outcome_table(&rows)),
        Output::Json => println!("{}", output::outcomes_json(bind, common, &rows)?),
    }
    Ok(if failed { EXIT_CLOUD } else { 0 })
}

/// `verify`: one verify of the app, on its clouds and (when a cluster is configured) in its
/// cluster.
async fn verify(
    common: &Common,
    clouds: &Clouds,
    #[cfg(feature = "kube")] kube: Option<&KubeSide>,
    manifest: &AppManifest,
) -> Result<u8, Failure> {
    let mut reconciler = Reconciler::new(common.app(), &common.namespace).desired(manifest);
    for p in clouds.providers() {
        reconciler = reconciler.provider(p);
    }
    // Verify only diagnoses the cluster: the step's options play no part.
    #[cfg(feature = "kube")]
    let step = kube.map(|kube| {
        kube.cluster
            .step(porter_identity::kube::step::StepOptions::default())
    });
    #[cfg(feature = "kube")]
    if let Some(step) = &step {
        reconciler = reconciler.kubernetes(step);
    }
    let bar = progress(None, "verifying");
    let report = reconciler.verify().await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match common.output {
        Output::Text => println!("{report}"),
        Output::Json => println!("{}", output::to_json(&report)?),
    }
    Ok(if !report.is_ok() {
        EXIT_CLOUD
    } else if !report.is_healthy() {
        EXIT_VERIFY_ERRORS
    } else {
        0
    })
}

#[cfg(feature = "kube")]
async fn print_manifests(
    common: &Common,
    clouds: &Clouds,
    manifest: &AppManifest,
) -> Result<u8, Failure> {
    let mut needs: BTreeMap<String, (Workload, ServiceAccountPatch)> = BTreeMap::new();
    let mut failed = false;
    for (cloud, bindings) in by_cloud(common, manifest)? {
        let p = provider(clouds, cloud)?;
        for (b, plan) in bindings.iter().zip(
            p.plan_all(&porter_identity::RunContext::plan(), &bindings)
                .await,
        ) {
            match plan {
                Ok(plan) => {
                    needs
                        .entry(b.workload.service_account().to_string())
                        .or_insert_with(|| (b.workload.clone(), ServiceAccountPatch::default()))
                        .1
                        .merge(plan.service_account_patch);
                }
                Err(e) => {
                    failed = true;
                    eprintln!("error: {b}: {e}");
                }
            }
        }
    }
    let accounts: Vec<(Workload, ServiceAccountPatch)> = needs.into_values().collect();
    match common.output {
        Output::Text => print!("{}", manifests::yaml(&accounts).map_err(Failure::Input)?),
        Output::Json => println!("{}", output::to_json(&manifests::list(&accounts))?),
    }
    Ok(if failed { EXIT_CLOUD } else { 0 })
}
