//! TLS for a listener of our own (WebDAV's): a rustls acceptor that presents the current
//! certificate from the next handshake on, with no restart.

use super::Pem;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The one crypto provider used: the one the object-store client already brings.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A chain and key as rustls uses them; an error says what is wrong with the PEM.
pub fn certified_key(pem: &Pem) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.chain.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the chain file".into());
    }
    let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).map_err(|e| format!("the key is not PEM: {e}"))?;
    let signing = provider().key_provider.load_private_key(key).map_err(|e| format!("the key cannot be used: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| format!("the key does not match the certificate: {e}"))?;
    Ok(certified)
}

/// Hands rustls the current certificate, parsed once per certificate.
#[derive(Debug)]
struct Current {
    updates: watch::Receiver<Arc<Pem>>,
    parsed: Mutex<Option<(Arc<Pem>, Arc<CertifiedKey>)>>,
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let pem = self.updates.borrow().clone();
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, key)) = parsed.as_ref()
            && Arc::ptr_eq(seen, &pem)
        {
            return Some(key.clone());
        }
        match certified_key(&pem) {
            Ok(key) => {
                let key = Arc::new(key);
                *parsed = Some((pem, key.clone()));
                Some(key)
            }
            Err(e) => {
                log::error!("cannot present the TLS certificate: {e}");
                parsed.as_ref().map(|(_, key)| key.clone())
            }
        }
    }
}

/// An acceptor presenting whatever `updates` holds at each handshake (HTTP/1.1 only).
pub fn acceptor(updates: watch::Receiver<Arc<Pem>>) -> Result<tokio_rustls::TlsAcceptor, String> {
    let resolver = Current { updates, parsed: Mutex::new(None) };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
