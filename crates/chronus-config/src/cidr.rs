use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network in CIDR notation (`192.168.1.0/24`, `::1/128`), used for the OSC
/// sender allowlist. Host bits are cleared on parsing, so `10.1.2.3/8` is `10.0.0.0/8`;
/// a bare address is the network of that single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// Why a string is not a [`Cidr`].
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("`{0}` is not an IP network in CIDR notation (e.g. 192.168.1.0/24 or ::1/128)")]
pub struct CidrParseError(String);

impl Cidr {
    /// The network of `addr` with a `prefix_len`-bit mask; `None` when the prefix is
    /// longer than the address (32 bits for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let network = match addr {
            IpAddr::V4(a) => {
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask::<u32>(prefix_len, 32)?))
            }
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(
                u128::from(a) & mask::<u128>(prefix_len, 128)?,
            )),
        };
        Some(Self {
            network,
            prefix_len,
        })
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` lies in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`, what a dual-stack socket reports for an IPv4 peer) is
    /// matched as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Self::new(ip.to_canonical(), self.prefix_len) == Some(*self)
    }
}

/// The top `prefix_len` bits of a `bits`-wide address set; `None` when too long.
fn mask<T>(prefix_len: u8, bits: u8) -> Option<T>
where
    T: From<u8> + std::ops::Not<Output = T> + std::ops::Shl<u32, Output = T>,
{
    match prefix_len {
        0 => Some(T::from(0)),
        // Shifting by the full width overflows, hence the special case above.
        len if len <= bits => Some(!T::from(0) << u32::from(bits - len)),
        _ => None,
    }
}

impl FromStr for Cidr {
    type Err = CidrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrParseError(s.to_owned());
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let len = match len {
            Some(len) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => {
                len.parse().map_err(|_| err())?
            }
            Some(_) => return Err(err()),
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Self::new(addr, len).ok_or_else(err)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_clears_host_bits() {
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "fe80::1234/10".parse::<Cidr>().unwrap().to_string(),
            "fe80::/10"
        );
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
    }

    #[test]
    fn bare_address_is_a_single_host() {
        let v4: Cidr = "192.168.1.5".parse().unwrap();
        assert_eq!(v4.to_string(), "192.168.1.5/32");
        assert!(v4.contains(ip("192.168.1.5")));
        assert!(!v4.contains(ip("192.168.1.6")));
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
    }

    #[test]
    fn rejects_malformed_networks() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "host/8",
            "10.0.0/8",
            "/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn contains_matches_prefix_only() {
        let net: Cidr = "192.168.0.0/16".parse().unwrap();
        assert!(net.contains(ip("192.168.255.1")));
        assert!(!net.contains(ip("192.169.0.1")));
        assert!(!net.contains(ip("::1")));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("8.8.8.8")));
    }

    #[test]
    fn ipv4_mapped_peer_matches_ipv4_network() {
        // A dual-stack OSC socket reports IPv4 peers as ::ffff:a.b.c.d.
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("::ffff:10.2.3.4")));
        assert!(!net.contains(ip("::ffff:11.2.3.4")));
    }
}
