//! `AppManifest`: the `services[].connections[]` of a porter.yaml, read safely.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::connection::value_kind;
use crate::error::{ManifestError, SourceLocation};
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
    services: Vec<Service>,
}

/// The shape read first, with the location of every service and connection.
#[derive(Deserialize)]
struct SpannedManifest {
    services: Option<Spanned<Vec<Spanned<SpannedService>>>>,
}

#[derive(Deserialize)]
struct SpannedService {
    name: Option<Value>,
    connections: Option<Vec<Spanned<Value>>>,
}

/// The shape read when the first one does not fit, to say precisely what is wrong.
#[derive(Deserialize)]
struct LooseManifest {
    services: Option<Value>,
}

/// A service as read, before validation: its fields, where it starts, and where each of
/// its connections starts (empty when not known).
struct RawService {
    fields: Value,
    at: Option<SourceLocation>,
    connection_at: Vec<Option<SourceLocation>>,
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

fn location(l: &serde_saphyr::Location) -> Option<SourceLocation> {
    (l.line() > 0).then(|| SourceLocation {
        line: l.line(),
        column: l.column(),
    })
}

impl AppManifest {
    /// Reads a porter.yaml from a string.
    ///
    /// Inputs over [`MAX_MANIFEST_BYTES`], nested deeper than [`MAX_MANIFEST_DEPTH`], or
    /// using aliases to expand (a "YAML bomb") are refused with an error, never a panic.
    pub fn from_yaml_str(yaml: &str) -> Result<Self> {
        if yaml.len() > MAX_MANIFEST_BYTES {
            return Err(too_large(yaml.len()));
        }
        if yaml
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Err(ErrorAt::default().error(
                "the file is empty",
                "add a `services:` list, each service with a `name` and its `connections`",
            ));
        }
        let options = serde_saphyr::options! {
            budget: serde_saphyr::budget! {
                max_depth: MAX_MANIFEST_DEPTH,
                max_documents: 1,
                max_aliases: 64,
                max_anchors: 64,
                max_nodes: 200_000,
                max_events: 400_000,
                max_total_scalar_bytes: MAX_MANIFEST_BYTES,
            },
        };
        match serde_saphyr::from_str_with_options::<SpannedManifest>(yaml, options.clone()) {
            Ok(raw) => {
                let Some(services) = raw.services else {
                    return Err(missing_services());
                };
                let raw = services
                    .value
                    .into_iter()
                    .map(|s| {
                        let mut fields = serde_json::Map::new();
                        if let Some(name) = s.value.name {
                            fields.insert("name".into(), name);
                        }
                        let mut connection_at = Vec::new();
                        if let Some(list) = s.value.connections {
                            let (values, locations) = list
                                .into_iter()
                                .map(|c| (c.value, location(&c.referenced)))
                                .unzip();
                            fields.insert("connections".into(), Value::Array(values));
                            connection_at = locations;
                        }
                        RawService {
                            fields: Value::Object(fields),
                            at: location(&s.referenced),
                            connection_at,
                        }
                    })
                    .collect();
                build(raw)
            }
            Err(first) => {
                // The file does not have the expected shape. Read it again loosely so the
                // error can say which service, connection and field is wrong; the first
                // error still gives the line and column.
                let at = first.location().as_ref().and_then(location);
                let parse_error = || {
                    let text = first.to_string();
                    let first_line = text.lines().next().unwrap_or("").to_owned();
                    ErrorAt {
                        location: at,
                        ..ErrorAt::default()
                    }
                    .error(
                        format!("is not a porter.yaml this SDK can read: {first_line}"),
                        "make the file valid YAML: a top-level mapping holding a `services:` list",
                    )
                };
                let Ok(loose) = serde_saphyr::from_str_with_options::<LooseManifest>(yaml, options)
                else {
                    return Err(parse_error());
                };
                let Some(services) = loose.services else {
                    return Err(missing_services());
                };
                let Value::Array(items) = services else {
                    return Err(ErrorAt {
                        path: "services".into(),
                        location: at,
                        ..ErrorAt::default()
                    }
                    .error(
                        format!("must be a list, found {}", value_kind(&services)),
                        "write `services:` as a list of `- name: ...` entries",
                    ));
                };
                let raw = items
                    .into_iter()
                    .map(|fields| RawService {
                        fields,
                        at,
                        connection_at: Vec::new(),
                    })
                    .collect();
                // If the loose reading finds nothing wrong, the first error stands.
                build(raw).and_then(|_| Err(parse_error()))
            }
        }
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
        let mut text = String::new();
        // Read one byte past the limit so an oversized file is detected without reading it all.
        file.take(MAX_MANIFEST_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(io_err)?;
        let named = |e: Error| match e {
            Error::Manifest(mut m) => {
                m.file = Some(shown.clone());
                Error::Manifest(m)
            }
            other => other,
        };
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(named(too_large(text.len())));
        }
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

fn too_large(len: usize) -> Error {
    ErrorAt::default().error(
        format!(
            "the input is larger than {} bytes{}; a porter.yaml is a few kilobytes",
            MAX_MANIFEST_BYTES,
            if len > MAX_MANIFEST_BYTES {
                format!(" ({len} bytes read)")
            } else {
                String::new()
            }
        ),
        "pass the app's porter.yaml, not a generated or concatenated file",
    )
}

fn missing_services() -> Error {
    ErrorAt {
        path: "services".into(),
        ..ErrorAt::default()
    }
    .error(
        "is missing",
        "add a `services:` list, each service with a `name` and its `connections`",
    )
}

/// Validates every service and connection, in file order; the first problem is returned.
fn build(raw: Vec<RawService>) -> Result<AppManifest> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut services = Vec::with_capacity(raw.len());
    for (i, item) in raw.into_iter().enumerate() {
        let at = item.at;
        let service = parse_service(i, item)?;
        if let Some(first) = seen.insert(service.name().to_owned(), i) {
            return Err(ErrorAt {
                path: format!("services[{i}].name"),
                service: Some(service.name().to_owned()),
                field: Some("name".into()),
                location: at,
                ..ErrorAt::default()
            }
            .error(
                format!("repeats the name of services[{first}]"),
                "give each service a unique name",
            ));
        }
        services.push(service);
    }
    Ok(AppManifest { services })
}

fn parse_service(i: usize, raw: RawService) -> Result<Service> {
    let RawService {
        fields: item,
        at,
        connection_at,
    } = raw;
    let path = format!("services[{i}]");
    let Value::Object(mut fields) = item else {
        return Err(ErrorAt {
            path,
            location: at,
            ..ErrorAt::default()
        }
        .error(
            format!("must be a mapping, found {}", value_kind(&item)),
            "write each service as `- name: <service>` with its `connections:`",
        ));
    };
    let name = match fields.remove("name") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => {
            return Err(ErrorAt {
                path: format!("{path}.name"),
                field: Some("name".into()),
                location: at,
                ..ErrorAt::default()
            }
            .error("is missing", "give the service a `name:`"));
        }
        Some(other) => {
            return Err(ErrorAt {
                path: format!("{path}.name"),
                field: Some("name".into()),
                location: at,
                ..ErrorAt::default()
            }
            .error(
                format!("must be a string, found {}", value_kind(&other)),
                "write the service name as a string",
            ));
        }
    };
    let name = KubernetesName::parse("name", &name).map_err(|e| {
        let (problem, fix) = match &e {
            Error::InvalidInput { problem, fix, .. } => (problem.clone(), fix.clone()),
            other => (other.to_string(), String::new()),
        };
        ErrorAt {
            path: format!("{path}.name"),
            field: Some("name".into()),
            location: at,
            ..ErrorAt::default()
        }
        .error(problem, fix)
    })?;
    let connections = match fields.remove("connections") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(ErrorAt {
                path: format!("{path}.connections"),
                service: Some(name.to_string()),
                field: Some("connections".into()),
                location: at,
                ..ErrorAt::default()
            }
            .error(
                format!("must be a list, found {}", value_kind(&other)),
                "write `connections:` as a list of `- type: ...` entries",
            ));
        }
    };
    let mut parsed: Vec<Connection> = Vec::with_capacity(connections.len());
    for (j, c) in connections.into_iter().enumerate() {
        let at = |field: Option<&str>| ErrorAt {
            path: match field {
                Some(f) => format!("{path}.connections[{j}].{f}"),
                None => format!("{path}.connections[{j}]"),
            },
            service: Some(name.to_string()),
            connection_index: Some(j),
            field: field.map(str::to_owned),
            location: connection_at.get(j).copied().flatten().or(at),
        };
        let Value::Object(map) = &c else {
            return Err(at(None).error(
                format!("must be a mapping, found {}", value_kind(&c)),
                "write each connection as `- type: <type>` followed by its fields",
            ));
        };
        let conn =
            Connection::from_fields(map).map_err(|p| at(Some(&p.field)).error(p.problem, p.fix))?;
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
