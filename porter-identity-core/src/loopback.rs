//! Whether an endpoint is this machine: the one rule every provider applies before it sends a
//! credential over plain http (an emulator on loopback), kept in one place.

use std::net::IpAddr;

/// Whether `host` — as a URL gives it (`127.0.0.1`, `[::1]`, `localhost`) — is a loopback
/// address.
///
/// ```
/// use porter_identity_core::provider::is_loopback_host;
/// assert!(is_loopback_host("127.0.0.1") && is_loopback_host("[::1]") && is_loopback_host("LOCALHOST"));
/// assert!(!is_loopback_host("10.0.0.1") && !is_loopback_host("iam.googleapis.com"));
/// assert!(!is_loopback_host("localhost.example.com"));
/// ```
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}
