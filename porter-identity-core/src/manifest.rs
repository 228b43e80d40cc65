//! `AppManifest`: the `services[].connections[]` of a porter.yaml, read safely.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::error::{ManifestError, SourceLocation};
use crate::yaml::{self, Located, Node};
use crate::{Binding, Cloud, Connection, Error, KubernetesName, Result, Workload};

/// The largest porter.yaml read. Real files are a few kilobytes; the bound keeps a runaway
/// or hostile input from using the deploy tool's memory.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// The deepest nesting of YAML collections read.
pub const MAX_MANIFEST_DEPTH: usize = 32;

/// One service of a porter.yaml.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    name: KubernetesName,
    connections: Vec<Connection>,
}

impl Service {
    /// The service's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// All its connections, in file order (identity and other types).
    pub fn connections(&self) -> &[Connection] {
        &self.connections
    }

    /// The connections porter-identity acts on (`awsRole`, `azureManagedIdentity`, `gcpServiceAccount`).
    pub fn identity_connections(&self) -> impl Iterator<Item = &Connection> {
        self.connections.iter().filter(|c| c.is_identity())
    }

    /// The connections porter-identity ignores (`cloudSql`, `disk`, …).
    pub fn other_connections(&self) -> impl Iterator<Item = &Connection> {
        self.connections.iter().filter(|c| !c.is_identity())
    }

    /// The connection of `cloud`, if the service has one (there is at most one per type).
    pub fn connection(&self, cloud: Cloud) -> Option<&Connection> {
        self.connections.iter().find(|c| c.cloud() == Some(cloud))
    }
}

/// A parsed porter.yaml: its services and their connections. Every other key is ignored.
///
/// ```
/// use porter_identity_core::{AppManifest, Cloud};
///
/// let manifest = AppManifest::from_yaml_str(r#"
/// services:
///   - name: api
///     connections:
///       - type: awsRole
///         role: my-app-api-role
///       - type: cloudSql
///         instance: main
/// "#)?;
/// let api = &manifest.services()[0];
/// assert_eq!(api.name(), "api");
/// assert!(api.connection(Cloud::Aws).is_some());
/// assert_eq!(api.other_connections().count(), 1);
///
/// // one Binding per identity connection, ready for a provider
/// let bindings = manifest.bindings("shop", "default")?;
/// assert_eq!(bindings[0].workload.service_account().as_str(), "shop-api");
/// # Ok::<(), porter_identity_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AppManifest {
    /// Porter's top-level `name`: the app's name, when the file gives one as a string.
    name: Option<String>,
    services: Vec<Service>,
}

#[derive(Default)]
struct ErrorAt {
    path: String,
    service: Option<String>,
    connection_index: Option<usize>,
    field: Option<String>,
    location: Option<SourceLocation>,
}

impl ErrorAt {
    fn error(self, problem: impl Into<String>, fix: impl Into<String>) -> Error {
        ManifestError {
            file: None,
            path: self.path,
            service: self.service,
            connection_index: self.connection_index,
            field: self.field,
            problem: problem.into(),
            fix: fix.into(),
            location: self.location,
        }
        .into()
    }
}

impl AppManifest {
    /// Reads a porter.yaml from a string.
    ///
    /// Inputs over [`MAX_MANIFEST_BYTES`], nested deeper than [`MAX_MANIFEST_DEPTH`], or
    /// using aliases to expand (a "YAML bomb") are refused with an error, never a panic.
    pub fn from_yaml_str(yaml: &str) -> Result<Self> {
        if yaml.len() > MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
        let blank = yaml.trim_start_matches('\u{feff}').lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#')
        });
        if blank {
            return Err(ErrorAt::default().error(
                "the file is empty",
                "add a `services:` list, each service with a `name` and its `connections`",
            ));
        }
        let limits = yaml::Limits {
            max_depth: MAX_MANIFEST_DEPTH,
            max_bytes: MAX_MANIFEST_BYTES,
        };
        let root = yaml::parse(yaml, &limits).map_err(|p| {
            ErrorAt {
                location: p.at,
                ..ErrorAt::default()
            }
            .error(p.problem, p.fix)
        })?;
        if !matches!(root.node, Node::Map(_)) {
            return Err(ErrorAt {
                location: root.at,
                ..ErrorAt::default()
            }
            .error(
                format!(
                    "the top level must be a mapping, found {}",
                    root.node.kind()
                ),
                "start the file with `services:` (a porter.yaml is a mapping of keys)",
            ));
        }
        let Some(services) = root.get("services") else {
            return Err(ErrorAt {
                path: "services".into(),
                ..ErrorAt::default()
            }
            .error(
                "is missing",
                "add a `services:` list, each service with a `name` and its `connections`",
            ));
        };
        // A bare `services:` is YAML's null: an app with no services (a teardown), as `[]` is.
        let no_services = Vec::new();
        let items = match &services.node {
            Node::Seq(items) => items,
            Node::Null => &no_services,
            _ => {
                return Err(ErrorAt {
                    path: "services".into(),
                    location: services.at,
                    ..ErrorAt::default()
                }
                .error(
                    format!("must be a list, found {}", services.node.kind()),
                    "write `services:` as a list of `- name: ...` entries",
                ));
            }
        };
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let service = parse_service(i, item)?;
            let name = service.name().to_owned();
            out.push(service);
            if let Some(first) = seen.insert(name.clone(), i) {
                return Err(ErrorAt {
                    path: format!("services[{i}].name"),
                    service: Some(name),
                    field: Some("name".into()),
                    location: item.get("name").and_then(|n| n.at).or(item.at),
                    ..ErrorAt::default()
                }
                .error(
                    format!("repeats the name of services[{first}]"),
                    "give each service a unique name",
                ));
            }
        }
        // Porter's `name` is the app's; other tools' files may have none, or another kind of
        // value, which is not ours to refuse.
        let name = match root.get("name").map(|n| &n.node) {
            Some(Node::String(n)) if !n.trim().is_empty() => Some(n.trim().to_owned()),
            _ => None,
        };
        Ok(AppManifest {
            name,
            services: out,
        })
    }

    /// The app's name as the porter.yaml's top-level `name` gives it (Porter's v2 format), if
    /// it does. Not validated here: it is checked as a Kubernetes name where it is used.
    ///
    /// ```
    /// use porter_identity_core::AppManifest;
    /// let m = AppManifest::from_yaml_str("name: shop\nservices: []\n")?;
    /// assert_eq!(m.name(), Some("shop"));
    /// assert_eq!(AppManifest::from_yaml_str("services: []\n")?.name(), None);
    /// # Ok::<(), porter_identity_core::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Reads a porter.yaml file. Errors name the file; files over [`MAX_MANIFEST_BYTES`]
    /// are refused before being read.
    pub fn from_path(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let io_err = |e: std::io::Error| -> Error {
            let mut m = ManifestError {
                file: Some(shown.clone()),
                path: String::new(),
                service: None,
                connection_index: None,
                field: None,
                problem: format!("cannot be read: {e}"),
                fix: "check the path and its permissions".into(),
                location: None,
            };
            if e.kind() == std::io::ErrorKind::InvalidData {
                m.problem = "is not UTF-8 text".into();
                m.fix = "save porter.yaml as UTF-8".into();
            }
            m.into()
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        let named = |e: Error| match e {
            Error::Manifest(mut m) => {
                m.file = Some(shown.clone());
                Error::Manifest(m)
            }
            other => other,
        };
        let mut bytes = Vec::new();
        // Read one byte past the limit so an oversized file is refused without reading it all.
        file.take(MAX_MANIFEST_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(named(too_large()));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            io_err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not UTF-8",
            ))
        })?;
        Self::from_yaml_str(&text).map_err(named)
    }

    /// The services, in file order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name() == name)
    }

    /// One [`Binding`] per identity connection of every service, for app `app` in `namespace`.
    /// Each service runs as ServiceAccount [`ServiceAccountName::for_service`](crate::ServiceAccountName::for_service)`(app, service)`.
    pub fn bindings(&self, app: &str, namespace: &str) -> Result<Vec<Binding>> {
        let mut out = Vec::new();
        for service in &self.services {
            let workload = Workload::for_service(namespace, app, service.name())?;
            for connection in service.identity_connections() {
                out.push(Binding::new(workload.clone(), connection.clone()));
            }
        }
        Ok(out)
    }

    /// Like [`AppManifest::bindings`], only those of `cloud`.
    pub fn bindings_for(&self, cloud: Cloud, app: &str, namespace: &str) -> Result<Vec<Binding>> {
        let mut all = self.bindings(app, namespace)?;
        all.retain(|b| b.connection.cloud() == Some(cloud));
        Ok(all)
    }
}

fn too_large() -> Error {
    ErrorAt::default().error(
        format!(
            "is larger than {MAX_MANIFEST_BYTES} bytes (4 MiB); a porter.yaml is a few kilobytes"
        ),
        "pass the app's porter.yaml, not a generated or concatenated file",
    )
}

fn parse_service(i: usize, item: &Located) -> Result<Service> {
    let path = format!("services[{i}]");
    let Node::Map(_) = &item.node else {
        return Err(ErrorAt {
            path,
            location: item.at,
            ..ErrorAt::default()
        }
        .error(
            format!("must be a mapping, found {}", item.node.kind()),
            "write each service as `- name: <service>` with its `connections:`",
        ));
    };
    let name_at = |at: Option<SourceLocation>| ErrorAt {
        path: format!("{path}.name"),
        field: Some("name".into()),
        location: at.or(item.at),
        ..ErrorAt::default()
    };
    let name = match item.get("name") {
        Some(Located {
            node: Node::String(s),
            at,
        }) => KubernetesName::parse("name", s).map_err(|e| {
            let (problem, fix) = e.into_problem_and_fix();
            name_at(*at).error(problem, fix)
        })?,
        None
        | Some(Located {
            node: Node::Null, ..
        }) => {
            return Err(name_at(item.get("name").and_then(|n| n.at))
                .error("is missing or empty", "give the service a `name:`"));
        }
        Some(other) => {
            return Err(name_at(other.at).error(
                format!("must be a string, found {}", other.node.kind()),
                "write the service name as a string",
            ));
        }
    };
    let connections: &[Located] = match item.get("connections") {
        None
        | Some(Located {
            node: Node::Null, ..
        }) => &[],
        Some(Located {
            node: Node::Seq(list),
            ..
        }) => list,
        Some(other) => {
            return Err(ErrorAt {
                path: format!("{path}.connections"),
                service: Some(name.to_string()),
                field: Some("connections".into()),
                location: other.at,
                ..ErrorAt::default()
            }
            .error(
                format!("must be a list, found {}", other.node.kind()),
                "write `connections:` as a list of `- type: ...` entries",
            ));
        }
    };
    let mut parsed: Vec<Connection> = Vec::with_capacity(connections.len());
    for (j, c) in connections.iter().enumerate() {
        let at = |field: Option<&str>| ErrorAt {
            path: match field {
                Some(f) => format!("{path}.connections[{j}].{f}"),
                None => format!("{path}.connections[{j}]"),
            },
            service: Some(name.to_string()),
            connection_index: Some(j),
            field: field.map(str::to_owned),
            // The field's own line where it is present; the connection's where it is missing.
            location: field.and_then(|f| c.get(f)).and_then(|v| v.at).or(c.at),
        };
        let Node::Map(entries) = &c.node else {
            return Err(at(None).error(
                format!("must be a mapping, found {}", c.node.kind()),
                "write each connection as `- type: <type>` followed by its fields",
            ));
        };
        let fields: serde_json::Map<String, serde_json::Value> = entries
            .iter()
            .map(|(k, v)| (k.clone(), v.node.to_json()))
            .collect();
        let conn = Connection::from_fields(&fields)
            .map_err(|p| at(Some(&p.field)).error(p.problem, p.fix))?;
        if let Some(k) = parsed
            .iter()
            .position(|prev| prev.type_name() == conn.type_name())
        {
            return Err(at(Some("type")).error(
                format!(
                    "is a second `{}` connection (the first is connections[{k}]); a service has at most one of each type",
                    conn.type_name()
                ),
                "keep one connection of this type and remove the other",
            ));
        }
        parsed.push(conn);
    }
    Ok(Service {
        name,
        connections: parsed,
    })
}
