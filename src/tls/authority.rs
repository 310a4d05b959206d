//! The server's own certificate authority (`tls.mode = "auto"`) and the certificates it
//! issues for the server.
//!
//! The authority is made once, on first start, in `<data_dir>/tls/`: an ECDSA P-256 key
//! (`ca-key.pem`, readable by the server's user only) and a certificate valid 10 years, named
//! `recorder local CA (<hostname>)`. It is **name-constrained** (X.509 Name Constraints, marked
//! critical) to the private address ranges, `localhost`, `.local`, the machine's hostname and
//! `tls.names`: a phone that trusts it trusts nothing else it could sign. It may not sign
//! another authority (path length 0).
//!
//! The server's certificate names every local address, `localhost`, the hostname,
//! `<hostname>.local` and `tls.names`, is valid at most 397 days, and is issued again when a
//! name is missing from it or fewer than 30 days remain ([`needs_reissue`]).
//!
//! All encoding and signing is rcgen's; reading certificates back is x509-parser's.

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, PKCS_ECDSA_P256_SHA256, SanType,
};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// The authority's certificate, in the TLS folder of the data directory.
pub const CA_CERT: &str = "ca.pem";
/// The authority's private key (mode 0600).
pub const CA_KEY: &str = "ca-key.pem";
/// The server's certificate chain and key, issued by the authority.
pub const SERVER_CERT: &str = "server.pem";
pub const SERVER_KEY: &str = "server-key.pem";
/// How long the authority is valid.
const CA_DAYS: i64 = 3650;
/// How long a server certificate is valid at most (what browsers accept for a leaf).
pub const LEAF_DAYS: i64 = 397;
/// A server certificate with fewer days left than this is issued again.
pub const RENEW_DAYS: i64 = 30;

/// The address ranges a local authority may name: IPv4 private, loopback and link-local; IPv6
/// unique-local, link-local and loopback.
const PRIVATE_RANGES: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
];

/// The local certificate authority, loaded or made.
pub struct Authority {
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its key.
pub struct Leaf {
    /// The certificate, then the authority's: what the server presents.
    pub chain_pem: String,
    pub key_pem: String,
    /// The server certificate alone, DER.
    pub cert_der: Vec<u8>,
}

/// What a server certificate must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Names {
    /// `localhost`, the hostname, `<hostname>.local`, every given address (loopback always),
    /// and `tls.names` (each a DNS name or an address), without repeats.
    pub fn wanted(hostname: &str, addresses: &[IpAddr], extra: &[String]) -> Names {
        let mut dns = vec!["localhost".to_string()];
        let mut ips: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)];
        let host = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
        if !host.is_empty() && host != "localhost" {
            let bare = host.strip_suffix(".local").unwrap_or(&host).to_string();
            dns.push(bare.clone());
            dns.push(format!("{bare}.local"));
        }
        ips.extend(addresses.iter().copied());
        for name in extra {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            match name.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) if !name.is_empty() => dns.push(name),
                Err(_) => {}
            }
        }
        dns.sort();
        dns.dedup();
        ips.sort();
        ips.dedup();
        Names { dns, ips }
    }
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

impl Authority {
    /// Loads the authority kept in `dir`, or makes one there on first start. `hostname` and
    /// `extra` (`tls.names`) join the private ranges in its name constraints; they are fixed
    /// when it is made.
    pub fn open(dir: &Path, hostname: &str, extra: &[String], now: OffsetDateTime) -> Result<Authority, String> {
        let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
        if cert_path.exists() || key_path.exists() {
            let cert_pem =
                fs::read_to_string(&cert_path).map_err(|e| tls_error(&cert_path.display().to_string(), e))?;
            let key_pem = fs::read_to_string(&key_path).map_err(|e| tls_error(&key_path.display().to_string(), e))?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| tls_error("the local CA's key", e))?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| tls_error("the local CA", e))?;
            let cert_der = pem_body(&cert_pem).ok_or("the local CA's certificate is not PEM")?;
            return Ok(Authority { cert_pem, cert_der, issuer });
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| tls_error("making a key", e))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, format!("recorder local CA ({})", display_host(hostname)));
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(CA_DAYS);
        params.name_constraints = Some(constraints(hostname, extra)?);
        let cert = params.self_signed(&key).map_err(|e| tls_error("making the local CA", e))?;
        let (cert_pem, cert_der) = (cert.pem(), cert.der().to_vec());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| tls_error(&dir.display().to_string(), e))?;
        // The key first: a certificate without its key is of no use, a key without its
        // certificate is made again.
        write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)
            .map_err(|e| tls_error(&key_path.display().to_string(), e))?;
        write_new(&cert_path, cert_pem.as_bytes(), 0o644)
            .map_err(|e| tls_error(&cert_path.display().to_string(), e))?;
        Ok(Authority { cert_pem, cert_der, issuer: Issuer::new(params, key) })
    }

    /// The authority's certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The authority's certificate, DER (what `/ca.crt` serves).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The SHA-256 fingerprint of the authority's certificate, as browsers show it
    /// (`AB:CD:…`).
    pub fn fingerprint(&self) -> String {
        Sha256::digest(&self.cert_der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
    }

    /// Issues a server certificate for `names`, valid from a day ago for [`LEAF_DAYS`].
    pub fn issue(&self, names: &Names, now: OffsetDateTime) -> Result<Leaf, String> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| tls_error("making a key", e))?;
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, names.dns.iter().find(|d| *d != "localhost").cloned().unwrap_or_default());
        params.distinguished_name = subject;
        let mut sans = Vec::new();
        for dns in &names.dns {
            let name = dns.clone().try_into().map_err(|e| tls_error(&format!("the name {dns:?}"), e))?;
            sans.push(SanType::DnsName(name));
        }
        sans.extend(names.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(LEAF_DAYS);
        let cert =
            params.signed_by(&key, &self.issuer).map_err(|e| tls_error("issuing the server's certificate", e))?;
        Ok(Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.cert_pem),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        })
    }
}

impl Authority {
    /// `names` without what this authority may not sign (a public address, or a name added to
    /// `tls.names` after it was made): a certificate naming one would be refused whole.
    pub fn permits(&self, names: &Names) -> Names {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&self.cert_der) else {
            return Names { dns: Vec::new(), ips: Vec::new() };
        };
        let (mut dns_ok, mut nets) = (Vec::new(), Vec::new());
        if let Ok(Some(nc)) = cert.name_constraints() {
            for subtree in nc.value.permitted_subtrees.iter().flatten() {
                match &subtree.base {
                    x509_parser::extensions::GeneralName::DNSName(d) => dns_ok.push(d.to_ascii_lowercase()),
                    x509_parser::extensions::GeneralName::IPAddress(bytes) => nets.push(bytes.to_vec()),
                    _ => {}
                }
            }
        }
        let dns = names
            .dns
            .iter()
            .filter(|name| dns_ok.iter().any(|c| *name == c || name.ends_with(&format!(".{c}"))))
            .cloned()
            .collect();
        let ips = names.ips.iter().filter(|ip| nets.iter().any(|net| in_net(ip, net))).copied().collect();
        Names { dns, ips }
    }

    /// The server's certificate kept in `dir`, issued again (and written, the key 0600) when
    /// it is missing or [`needs_reissue`] says so. `true` with a newly issued one.
    pub fn ensure_leaf(&self, dir: &Path, wanted: &Names, now: OffsetDateTime) -> Result<(Leaf, bool), String> {
        let names = self.permits(wanted);
        let (cert_path, key_path) = (dir.join(SERVER_CERT), dir.join(SERVER_KEY));
        if let (Ok(chain_pem), Ok(key_pem)) = (fs::read_to_string(&cert_path), fs::read_to_string(&key_path))
            && let Some(cert_der) = pem_body(&chain_pem)
            && !needs_reissue(&cert_der, &names, now)
        {
            return Ok((Leaf { chain_pem, key_pem, cert_der }, false));
        }
        let leaf = self.issue(&names, now)?;
        write_new(&key_path, leaf.key_pem.as_bytes(), 0o600)
            .map_err(|e| tls_error(&key_path.display().to_string(), e))?;
        write_new(&cert_path, leaf.chain_pem.as_bytes(), 0o644)
            .map_err(|e| tls_error(&cert_path.display().to_string(), e))?;
        Ok((leaf, true))
    }
}

/// Whether `ip` is in a name constraint's address and mask (4 + 4 or 16 + 16 bytes).
fn in_net(ip: &IpAddr, net: &[u8]) -> bool {
    let octets: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    net.len() == 2 * octets.len() && {
        let (base, mask) = net.split_at(octets.len());
        octets.iter().zip(base).zip(mask).all(|((o, b), m)| o & m == b & m)
    }
}

/// This machine's name, as the kernel has it (empty when unknown).
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// The addresses a phone may reach the server at: `bind` itself, or every interface's address
/// when it is unspecified.
pub fn local_addresses(bind: IpAddr) -> Vec<IpAddr> {
    if !bind.is_unspecified() {
        return vec![bind];
    }
    let mut addrs: Vec<IpAddr> =
        if_addrs::get_if_addrs().map(|ifs| ifs.into_iter().map(|i| i.ip()).collect()).unwrap_or_default();
    addrs.retain(|ip| bind.is_ipv6() || ip.is_ipv4());
    addrs
}

/// Whether a server certificate must be issued again: it cannot be read, a wanted name or
/// address is missing from it, or fewer than [`RENEW_DAYS`] days remain.
pub fn needs_reissue(cert_der: &[u8], wanted: &Names, now: OffsetDateTime) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else { return true };
    let left = cert.validity().not_after.timestamp() - now.unix_timestamp();
    if left < RENEW_DAYS * 86_400 {
        return true;
    }
    let Ok(Some(san)) = cert.subject_alternative_name() else { return true };
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    for name in &san.value.general_names {
        match name {
            x509_parser::extensions::GeneralName::DNSName(d) => dns.push(d.to_ascii_lowercase()),
            x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                    ips.push(IpAddr::from(v4));
                } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                    ips.push(IpAddr::from(v6));
                }
            }
            _ => {}
        }
    }
    wanted.dns.iter().any(|d| !dns.contains(d)) || wanted.ips.iter().any(|ip| !ips.contains(ip))
}

/// The authority's permitted names: the private ranges, `localhost`, `local` (and everything
/// under it), the hostname and `tls.names`.
fn constraints(hostname: &str, extra: &[String]) -> Result<NameConstraints, String> {
    let mut permitted = Vec::new();
    for range in PRIVATE_RANGES {
        let subnet: CidrSubnet = range.parse().map_err(|_| format!("bad built-in range {range}"))?;
        permitted.push(GeneralSubtree::IpAddress(subnet));
    }
    let mut dns = vec!["localhost".to_string(), "local".to_string()];
    let host = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
    if !host.is_empty() {
        dns.push(host);
    }
    for name in extra {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        match name.parse::<IpAddr>() {
            Ok(ip) => permitted
                .push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip, if ip.is_ipv4() { 32 } else { 128 }))),
            Err(_) if !name.is_empty() => dns.push(name),
            Err(_) => {}
        }
    }
    dns.sort();
    dns.dedup();
    permitted.extend(dns.into_iter().map(GeneralSubtree::DnsName));
    Ok(NameConstraints { permitted_subtrees: permitted, excluded_subtrees: Vec::new() })
}

fn display_host(hostname: &str) -> String {
    let host = hostname.trim();
    if host.is_empty() { "this server".to_string() } else { host.to_string() }
}

/// The DER of the first certificate in a PEM text (a chain's first is the server's own).
pub(super) fn pem_body(pem: &str) -> Option<Vec<u8>> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok().map(|(_, block)| block.contents)
}

/// Writes a new file durably with `mode` (never over an existing one): the temp file fsynced,
/// renamed into place, the folder fsynced.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    // The mode asked for, whatever the umask took away or added.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        crate::storage::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
    }

    fn authority(dir: &Path) -> Authority {
        Authority::open(dir, "pi", &["recorder.home.arpa".to_string(), "100.64.1.2".to_string()], now())
            .expect("authority")
    }

    #[test]
    fn the_authority_is_name_constrained_critically_to_private_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = authority(&dir.path().join("tls"));
        let (_, cert) = x509_parser::parse_x509_certificate(ca.cert_der()).expect("parse");
        assert!(cert.is_ca());
        assert!(cert.subject().to_string().contains("recorder local CA (pi)"), "{}", cert.subject());
        let ext = cert
            .extensions()
            .iter()
            .find(|e| matches!(e.parsed_extension(), ParsedExtension::NameConstraints(_)))
            .expect("a name constraints extension");
        assert!(ext.critical, "name constraints must be critical");
        let ParsedExtension::NameConstraints(nc) = ext.parsed_extension() else { unreachable!() };
        assert!(nc.excluded_subtrees.is_none());
        let permitted: Vec<String> = nc
            .permitted_subtrees
            .as_ref()
            .expect("permitted subtrees")
            .iter()
            .map(|s| match &s.base {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::IPAddress(b) => format!("{b:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        for dns in ["localhost", "local", "pi", "recorder.home.arpa"] {
            assert!(permitted.contains(&dns.to_string()), "{dns} in {permitted:?}");
        }
        // 192.168.0.0/16 as address and mask, and the one extra address as a /32.
        assert!(permitted.contains(&format!("{:?}", [192u8, 168, 0, 0, 255, 255, 0, 0])), "{permitted:?}");
        assert!(permitted.contains(&format!("{:?}", [100u8, 64, 1, 2, 255, 255, 255, 255])), "{permitted:?}");
        // No range with an empty mask (which would permit every address of its family).
        for subtree in nc.permitted_subtrees.as_ref().expect("permitted") {
            if let GeneralName::IPAddress(bytes) = &subtree.base {
                let mask = &bytes[bytes.len() / 2..];
                assert!(mask.iter().any(|b| *b != 0), "a catch-all range: {bytes:?}");
            }
        }
        let basic = cert.basic_constraints().expect("basic constraints").expect("present");
        assert_eq!(basic.value.path_len_constraint, Some(0));
    }

    #[test]
    fn the_key_is_the_servers_alone_and_a_restart_keeps_the_same_authority() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = dir.path().join("tls");
        let first = authority(&tls).fingerprint();
        let mode = fs::metadata(tls.join(CA_KEY)).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key file's mode");
        let dir_mode = fs::metadata(&tls).expect("dir").permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700, "the folder's mode");
        let again = Authority::open(&tls, "another-name", &[], now()).expect("reopened");
        assert_eq!(again.fingerprint(), first, "a restart loads the authority instead of making one");
        assert_eq!(first.len(), 32 * 3 - 1);
        assert!(!again.cert_pem().contains("PRIVATE KEY"), "the certificate carries no key");
    }

    #[test]
    fn the_server_certificate_names_every_address_and_chains_to_the_authority() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = authority(&dir.path().join("tls"));
        let lan: IpAddr = "192.168.1.20".parse().expect("ip");
        let names = Names::wanted("pi", &[lan], &["recorder.home.arpa".to_string()]);
        assert_eq!(names.dns, vec!["localhost", "pi", "pi.local", "recorder.home.arpa"]);
        let leaf = ca.issue(&names, now()).expect("leaf");
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf.cert_der).expect("parse");
        assert!(!cert.is_ca());
        assert_eq!(cert.issuer(), x509_parser::parse_x509_certificate(ca.cert_der()).expect("ca").1.subject());
        let san = cert.subject_alternative_name().expect("san").expect("present");
        let shown: Vec<String> = san.value.general_names.iter().map(|n| format!("{n:?}")).collect();
        assert!(shown.iter().any(|s| s.contains("pi.local")), "{shown:?}");
        assert!(shown.iter().any(|s| s.contains("[192, 168, 1, 20]")), "{shown:?}");
        assert!(!needs_reissue(&leaf.cert_der, &names, now()));
        let days = (cert.validity().not_after.timestamp() - now().unix_timestamp()) / 86_400;
        assert_eq!(days, LEAF_DAYS);
        assert!(leaf.chain_pem.ends_with(ca.cert_pem()), "the chain ends with the authority");
        assert!(leaf.key_pem.contains("PRIVATE KEY") && !leaf.chain_pem.contains("PRIVATE KEY"));
    }

    /// A client's verdict on a server certificate, as a phone that trusts only this authority
    /// would reach it (webpki: the chain, the validity and the name constraints).
    fn verify(ca: &Authority, leaf: &Leaf, at: OffsetDateTime) -> Result<(), webpki::Error> {
        use rustls_pki_types::{CertificateDer, UnixTime};
        let ca_der = CertificateDer::from(ca.cert_der().to_vec());
        let anchor = webpki::anchor_from_trusted_cert(&ca_der)?.to_owned();
        let leaf_der = CertificateDer::from(leaf.cert_der.clone());
        let cert = webpki::EndEntityCert::try_from(&leaf_der)?;
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.unix_timestamp().max(0) as u64));
        let usage = webpki::KeyUsage::server_auth();
        cert.verify_for_usage(webpki::ALL_VERIFICATION_ALGS, &[anchor], &[], time, usage, None, None).map(drop)
    }

    #[test]
    fn a_client_trusting_the_authority_accepts_its_server_and_nothing_outside_its_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = authority(&dir.path().join("tls"));
        let lan: IpAddr = "192.168.1.20".parse().expect("ip");
        let leaf = ca.issue(&Names::wanted("pi", &[lan], &[]), now()).expect("leaf");
        verify(&ca, &leaf, now()).expect("the server's own certificate verifies");
        // Were the key stolen, what it signs for a public name or address is refused.
        for outside in [
            Names { dns: vec!["bank.example".into()], ips: vec![] },
            Names { dns: vec![], ips: vec!["8.8.8.8".parse().expect("ip")] },
            Names { dns: vec!["pi.local".into()], ips: vec!["203.0.113.9".parse().expect("ip")] },
        ] {
            let forged = ca.issue(&outside, now()).expect("signed");
            assert_eq!(verify(&ca, &forged, now()), Err(webpki::Error::NameConstraintViolation), "{outside:?}");
        }
    }

    #[test]
    fn public_addresses_and_names_outside_the_authority_are_left_out_of_the_servers_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = authority(&dir.path().join("tls"));
        let addrs: Vec<IpAddr> = ["192.168.1.20", "203.0.113.9", "100.64.1.2", "fd00::5", "2001:db8::1"]
            .iter()
            .map(|a| a.parse().expect("ip"))
            .collect();
        let wanted = Names::wanted("pi", &addrs, &["later.example".to_string()]);
        let kept = ca.permits(&wanted);
        assert_eq!(kept.dns, vec!["localhost", "pi", "pi.local"], "{kept:?}");
        let shown: Vec<String> = kept.ips.iter().map(|ip| ip.to_string()).collect();
        assert_eq!(shown, vec!["100.64.1.2", "127.0.0.1", "192.168.1.20", "::1", "fd00::5"]);
        let leaf = ca.issue(&kept, now()).expect("leaf");
        verify(&ca, &leaf, now()).expect("what is kept verifies");
    }

    #[test]
    fn the_servers_certificate_is_kept_until_a_name_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = dir.path().join("tls");
        let ca = authority(&tls);
        let lan: IpAddr = "192.168.1.20".parse().expect("ip");
        let names = Names::wanted("pi", &[lan], &[]);
        let (first, issued) = ca.ensure_leaf(&tls, &names, now()).expect("first");
        assert!(issued);
        let mode = fs::metadata(tls.join(SERVER_KEY)).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, issued) = ca.ensure_leaf(&tls, &names, now() + Duration::days(1)).expect("again");
        assert!(!issued, "an unchanged certificate is kept");
        assert_eq!(again.cert_der, first.cert_der);
        let moved = Names::wanted("pi", &[lan, "10.1.2.3".parse().expect("ip")], &[]);
        let (third, issued) = ca.ensure_leaf(&tls, &moved, now() + Duration::days(2)).expect("third");
        assert!(issued, "a new address issues it again");
        assert_ne!(third.cert_der, first.cert_der);
        assert!(!needs_reissue(&third.cert_der, &moved, now() + Duration::days(2)));
    }

    #[test]
    fn a_new_address_or_a_near_expiry_issues_the_certificate_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = authority(&dir.path().join("tls"));
        let first: IpAddr = "192.168.1.20".parse().expect("ip");
        let names = Names::wanted("pi", &[first], &[]);
        let leaf = ca.issue(&names, now()).expect("leaf");
        let moved = Names::wanted("pi", &[first, "10.0.0.7".parse().expect("ip")], &[]);
        assert!(needs_reissue(&leaf.cert_der, &moved, now()), "an address was added");
        let renamed = Names::wanted("pi", &[first], &["nas.home.arpa".to_string()]);
        assert!(needs_reissue(&leaf.cert_der, &renamed, now()), "a name was added");
        let late = now() + Duration::days(LEAF_DAYS - RENEW_DAYS + 1);
        assert!(needs_reissue(&leaf.cert_der, &names, late), "fewer than 30 days left");
        assert!(!needs_reissue(&leaf.cert_der, &names, now() + Duration::days(300)));
        assert!(needs_reissue(b"not a certificate", &names, now()));
    }
}
