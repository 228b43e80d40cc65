//! `porter-identity-kube-fake --kubeconfig PATH [--listen 127.0.0.1:0]`: serves an empty
//! Kubernetes API fake over HTTPS until SIGTERM or Ctrl-C, and writes the kubeconfig that
//! reaches it (its certificate authority, its bearer token) to PATH once it listens. The test
//! script starts it for the wire tests (`scripts/kube-fake`).

use std::net::SocketAddr;
use std::process::ExitCode;

use porter_identity_kube::fake::FakeKube;

const USAGE: &str = "usage: porter-identity-kube-fake --kubeconfig PATH [--listen 127.0.0.1:0]";

fn main() -> ExitCode {
    let mut kubeconfig = None;
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--kubeconfig", Some(path)) => kubeconfig = Some(path),
            ("--listen", Some(addr)) => match addr.parse::<SocketAddr>() {
                Ok(addr) if addr.ip().is_loopback() => listen = addr,
                _ => {
                    eprintln!(
                        "--listen {addr}: give a loopback address and port, e.g. 127.0.0.1:0"
                    );
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(kubeconfig) = kubeconfig else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("porter-identity-kube-fake: no Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match FakeKube::new().serve(listen).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("porter-identity-kube-fake: cannot serve on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        // Written whole, then renamed: a reader never sees half a kubeconfig.
        let partial = format!("{kubeconfig}.partial");
        if let Err(e) = std::fs::write(&partial, server.kubeconfig())
            .and_then(|()| std::fs::rename(&partial, &kubeconfig))
        {
            eprintln!("porter-identity-kube-fake: cannot write {kubeconfig}: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!(
            "porter-identity-kube-fake: serving {} (kubeconfig {kubeconfig})",
            server.url()
        );
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("porter-identity-kube-fake: no SIGTERM handler: {e}");
                    return ExitCode::FAILURE;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}
