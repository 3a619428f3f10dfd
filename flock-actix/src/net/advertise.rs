//! The address a node tells its peers to dial, as opposed to the one it
//! binds. Binding `0.0.0.0:4001` (every interface) is common; advertising it
//! is useless, since `0.0.0.0` means "this host" to whoever dials it.

use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

/// A documentation address (TEST-NET-1, RFC 5737): only used to ask the
/// kernel which local address would route towards the outside. Nothing is
/// ever sent to it.
const OUTSIDE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 9);

/// The address to advertise for a listener bound to `bound`:
///
/// - `advertise`, if the operator set one;
/// - `bound`, if it names an address (or is not an IP address at all, as on
///   the in-memory network);
/// - for an unspecified IP (`0.0.0.0`, `[::]`), the local address of the
///   interface that routes to the first reachable seed, or without seeds to
///   the default route, with the bound port.
///
/// # Errors
/// [`Error::InvalidConfig`] if the address is unspecified and no route tells
/// which local address peers would reach: set `advertise` then.
pub(crate) async fn advertised_addr(
    bound: &str,
    advertise: Option<&str>,
    seeds: &[String],
) -> Result<String> {
    if let Some(addr) = advertise {
        return Ok(addr.to_owned());
    }
    let Ok(bound_addr) = bound.parse::<SocketAddr>() else {
        return Ok(bound.to_owned());
    };
    if !bound_addr.ip().is_unspecified() {
        return Ok(bound.to_owned());
    }
    let mut targets = Vec::new();
    for seed in seeds {
        if let Ok(addrs) = tokio::net::lookup_host(seed.as_str()).await {
            targets.extend(addrs);
        }
    }
    targets.push(OUTSIDE);
    targets
        .into_iter()
        .find_map(|target| local_ip_towards(target, bound_addr))
        .map(|ip| SocketAddr::new(ip, bound_addr.port()).to_string())
        .ok_or_else(|| {
            Error::InvalidConfig(format!(
                "listening on {bound} (every interface), but no seed and no default route \
                 tells which address peers should dial: set it with advertise(\"host:port\")"
            ))
        })
}

/// The local IP the kernel would send from to reach `target` (a connected
/// UDP socket sends nothing; connecting only picks the route).
fn local_ip_towards(target: SocketAddr, bound: SocketAddr) -> Option<IpAddr> {
    if target.is_ipv4() != bound.is_ipv4() {
        return None;
    }
    let any = SocketAddr::new(bound.ip(), 0);
    let socket = UdpSocket::bind(any).ok()?;
    socket.connect(target).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn an_explicit_advertise_address_wins() {
        let got = run(advertised_addr(
            "0.0.0.0:4001",
            Some("node1.example:4001"),
            &[],
        ));
        assert_eq!(got.unwrap(), "node1.example:4001");
    }

    #[test]
    fn a_specific_bound_address_is_advertised_as_is() {
        assert_eq!(
            run(advertised_addr("10.1.2.3:4001", None, &[])).unwrap(),
            "10.1.2.3:4001"
        );
        assert_eq!(run(advertised_addr("mem:7", None, &[])).unwrap(), "mem:7");
    }

    #[test]
    fn every_interface_advertises_the_address_that_reaches_the_seeds() {
        let seeds = ["127.0.0.1:4002".to_owned()];
        assert_eq!(
            run(advertised_addr("0.0.0.0:4001", None, &seeds)).unwrap(),
            "127.0.0.1:4001"
        );
    }
}
