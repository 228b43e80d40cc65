//! `--fake-state FILE`: the fake clouds' links kept between runs. The file records the
//! commands that wrote (apply, bind, unbind) with the porter.yaml texts they ran on; a run
//! seeds the fake clouds with everything those name and replays them, so the links are there
//! as the last run left them (tags, names and members included), then runs its own command.
//! What a real cloud keeps of *when* is kept too: each EKS association's `createdAt` and
//! `modifiedAt` are recorded after a run and put back after the replay, so a link keeps the
//! time it was really made, however long between commands (the replay itself happens now, and
//! would otherwise date every link to the latest command: its pods would always look older
//! than their link). The fake Kubernetes cluster is kept whole (objects, field owners, pods'
//! start times): a run that used it saves it, the next restores it.

use std::path::Path;
use std::time::SystemTime;

use porter_identity::{AppManifest, Cloud, Reconciler};
use serde::{Deserialize, Serialize};

use crate::Failure;
use crate::clouds::Clouds;

/// The file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct FakeState {
    /// The format of this file.
    version: u32,
    /// Every command that wrote, oldest first.
    runs: Vec<Run>,
    /// The fake Kubernetes cluster as the last run that used it left it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kube: Option<serde_json::Value>,
    /// When each link was made and last changed, as the last run left them (the clouds that
    /// keep it: EKS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    link_times: Vec<LinkTime>,
}

/// When one EKS association was made and last changed (its `createdAt` and `modifiedAt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LinkTime {
    namespace: String,
    service_account: String,
    created: SystemTime,
    modified: SystemTime,
}

/// One command that wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) command: String,
    pub(crate) app: String,
    pub(crate) namespace: String,
    /// The porter.yaml it ran on.
    pub(crate) manifest: String,
    /// The previous deploy's porter.yaml (apply).
    pub(crate) previous: Option<String>,
}

const VERSION: u32 = 1;

fn parse(text: &str, path: &Path) -> Result<AppManifest, Failure> {
    AppManifest::from_yaml_str(text).map_err(|e| {
        Failure::Input(format!(
            "the fake state {} holds a porter.yaml that no longer parses ({e}); delete the file to start afresh",
            path.display()
        ))
    })
}

impl FakeState {
    /// The file, or an empty state when it does not exist yet.
    pub(crate) fn load(path: &Path) -> Result<Self, Failure> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(Failure::Input(format!(
                    "--fake-state {}: cannot read it ({e})",
                    path.display()
                )));
            }
        };
        let state: FakeState = serde_json::from_str(&text).map_err(|e| {
            Failure::Input(format!(
                "--fake-state {} is not a porter-identity fake state ({e}); delete it to start afresh",
                path.display()
            ))
        })?;
        if state.version != VERSION {
            return Err(Failure::Input(format!(
                "--fake-state {} has format {}, this tool writes {VERSION}; delete it to start afresh",
                path.display(),
                state.version
            )));
        }
        Ok(state)
    }

    /// The fake cluster as the last run left it.
    #[cfg(feature = "kube")]
    pub(crate) fn kube(&self) -> Option<&serde_json::Value> {
        self.kube.as_ref()
    }

    /// Records a command that wrote links (if `run`), the links' times, and the fake cluster
    /// (if `kube`), and saves the file.
    pub(crate) fn record(
        mut self,
        run: Option<Run>,
        clouds: &Clouds,
        kube: Option<serde_json::Value>,
        path: &Path,
    ) -> Result<(), Failure> {
        self.version = VERSION;
        self.runs.extend(run);
        self.link_times = link_times(clouds);
        if kube.is_some() {
            self.kube = kube;
        }
        let text = serde_json::to_string_pretty(&self).map_err(|e| {
            Failure::Input(format!("the fake state cannot be written as JSON: {e}"))
        })?;
        std::fs::write(path, text).map_err(|e| {
            Failure::Input(format!(
                "--fake-state {}: cannot write it ({e})",
                path.display()
            ))
        })
    }

    /// Every porter.yaml the recorded runs name, to seed the fake clouds with.
    pub(crate) fn manifests(&self, path: &Path) -> Result<Vec<AppManifest>, Failure> {
        let mut out = Vec::new();
        for run in &self.runs {
            out.push(parse(&run.manifest, path)?);
            if let Some(previous) = &run.previous {
                out.push(parse(previous, path)?);
            }
        }
        Ok(out)
    }

    /// Replays the recorded runs on fresh fake clouds, then puts back when each link was made.
    pub(crate) async fn replay(&self, clouds: &Clouds, path: &Path) -> Result<(), Failure> {
        self.replay_runs(clouds, path).await?;
        self.restore_link_times(clouds);
        Ok(())
    }

    /// Each replayed link's times as the last run left them (a link the replay made that the
    /// file has no time for keeps the replay's).
    fn restore_link_times(&self, clouds: &Clouds) {
        #[cfg(feature = "aws")]
        if let Some((aws, cluster)) = clouds.fake_aws() {
            for t in &self.link_times {
                aws.set_association_times(
                    cluster,
                    &t.namespace,
                    &t.service_account,
                    t.created,
                    t.modified,
                );
            }
        }
        #[cfg(not(feature = "aws"))]
        let _ = clouds;
    }

    async fn replay_runs(&self, clouds: &Clouds, path: &Path) -> Result<(), Failure> {
        for run in &self.runs {
            let manifest = parse(&run.manifest, path)?;
            let (app, ns) = (run.app.as_str(), run.namespace.as_str());
            match run.command.as_str() {
                "apply" => {
                    let previous = run
                        .previous
                        .as_deref()
                        .map(|p| parse(p, path))
                        .transpose()?;
                    let mut reconciler = Reconciler::new(app, ns).desired(&manifest);
                    for p in clouds.providers() {
                        reconciler = reconciler.provider(p);
                    }
                    if let Some(previous) = &previous {
                        reconciler = reconciler.previous(previous);
                    }
                    reconciler.run().await?;
                }
                "bind" | "unbind" => {
                    for cloud in [Cloud::Aws, Cloud::Azure, Cloud::Gcp] {
                        let bindings = manifest.bindings_for(cloud, app, ns)?;
                        if let (Some(p), false) = (clouds.provider(cloud), bindings.is_empty()) {
                            if run.command == "bind" {
                                p.bind_all(&porter_identity::RunContext::apply(), &bindings)
                                    .await;
                            } else {
                                p.unbind_all(&porter_identity::RunContext::apply(), &bindings)
                                    .await;
                            }
                        }
                    }
                }
                other => {
                    return Err(Failure::Input(format!(
                        "--fake-state {} records an unknown command `{other}`; delete it to start afresh",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// When each link of the fake clouds was made and last changed (EKS's associations).
fn link_times(clouds: &Clouds) -> Vec<LinkTime> {
    #[cfg(feature = "aws")]
    if let Some((aws, cluster)) = clouds.fake_aws() {
        let mut times: Vec<LinkTime> = aws
            .associations(cluster)
            .into_iter()
            .filter_map(|a| {
                let (created, modified) =
                    aws.association_times(cluster, &a.namespace, &a.service_account)?;
                Some(LinkTime {
                    namespace: a.namespace,
                    service_account: a.service_account,
                    created,
                    modified,
                })
            })
            .collect();
        // In key order, so that the file changes only when a link does (creation order
        // follows the concurrent binds).
        times.sort_by(|a, b| {
            (&a.namespace, &a.service_account).cmp(&(&b.namespace, &b.service_account))
        });
        return times;
    }
    #[cfg(not(feature = "aws"))]
    let _ = clouds;
    Vec::new()
}
