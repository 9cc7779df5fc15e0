//! Where notifications may go: not into the gateway's own network unless
//! the administrator says so (`notify_allow_private_targets`). Checked when
//! a channel is added and again at every connection, on the addresses the
//! name resolves to then (a name may resolve elsewhere later).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Whether an address is one anybody on the internet could be.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                // Shared address space (carrier-grade NAT), 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b))
                // "This network", 0.0.0.0/8, and reserved 240.0.0.0/4.
                || a == 0
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Why a target written as a non-public IP address is refused while
/// `notify_allow_private_targets` is off.
pub fn refused_literal(target: &str) -> Option<String> {
    let url = reqwest::Url::parse(target).ok()?;
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    (!is_public(ip)).then(|| {
        format!("{target} is in the gateway's own network and notify_allow_private_targets is off")
    })
}

/// Checks a channel's URL: http(s), a host, and (unless private targets
/// are allowed) only public addresses behind it.
pub async fn check(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!(
            "{url:?}: only http and https addresses are notified"
        ));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "{url:?}: no credentials in the address (an ntfy token goes in \"token\")"
        ));
    }
    if allow_private {
        return Ok(parsed);
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("{host} does not resolve: {e}"))?
            .collect(),
    };
    if let Some(private) = addresses.iter().find(|a| !is_public(a.ip())) {
        return Err(format!(
            "{host} is {}, a loopback, link-local or private address: refused \
             (notify_allow_private_targets in clawd.toml)",
            private.ip()
        ));
    }
    Ok(parsed)
}

/// Resolves names for the sender and refuses private addresses at
/// connection time, so a name that resolves elsewhere later is caught.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(
                    format!("{host}: no public address (notify_allow_private_targets)").into(),
                );
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// The sender's HTTP client: no redirects, short timeouts, guarded names.
pub fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(10))
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .user_agent(concat!("clawd/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked() {
        assert!(check("https://127.0.0.1/hook", false).await.is_err());
        assert!(check("http://[::1]:8080/x", false).await.is_err());
        assert!(check("https://localhost/x", false).await.is_err());
        assert!(check("ftp://example.org/x", false).await.is_err());
        assert!(
            check("https://user:pw@93.184.216.34/x", false)
                .await
                .is_err()
        );
        assert!(check("https://93.184.216.34/x", false).await.is_ok());
        assert!(check("https://127.0.0.1/hook", true).await.is_ok());
    }
}
