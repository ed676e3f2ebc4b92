//! TLS for the demo: rustls on aws-lc-rs, TLS 1.2 and 1.3 only, with the certificate from
//! `DEMO_TLS_CERT`/`DEMO_TLS_KEY`, or a generated self-signed development certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

use crate::config::ConfigError;

/// Reads a PEM certificate chain and private key.
pub fn from_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ConfigError> {
    let cert_pem = std::fs::read(cert).map_err(|e| {
        ConfigError(format!(
            "DEMO_TLS_CERT: cannot read {}: {e}",
            cert.display()
        ))
    })?;
    let key_pem = std::fs::read(key)
        .map_err(|e| ConfigError(format!("DEMO_TLS_KEY: cannot read {}: {e}", key.display())))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ConfigError("DEMO_TLS_CERT: not a PEM certificate chain".into()))?;
    if certs.is_empty() {
        return Err(ConfigError(
            "DEMO_TLS_CERT: no certificate in the file".into(),
        ));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| ConfigError("DEMO_TLS_KEY: no PEM private key in the file".into()))?;
    server_config(certs, key)
}

/// A self-signed certificate for `host`, `localhost` and `127.0.0.1`, made in memory (never
/// written to disk) and new at every start. Browsers warn about it, and Portcullis will not
/// deliver back-channel logout to it (it trusts only real CAs and `PORTCULLIS_OUTBOUND_CA_FILE`):
/// for local use only.
pub fn self_signed(host: &str) -> Result<Arc<ServerConfig>, ConfigError> {
    let mut names = vec![host.to_owned()];
    for n in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_owned());
        }
    }
    let key = rcgen::KeyPair::generate()
        .map_err(|_| ConfigError("could not generate a development key".into()))?;
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|_| ConfigError("DEMO_URL's host cannot be put in a certificate".into()))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Portcullis demo (development only)",
    );
    let cert = params
        .self_signed(&key)
        .map_err(|_| ConfigError("could not generate a development certificate".into()))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    server_config(vec![cert.der().clone()], der)
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|_| ConfigError("TLS protocol versions".into()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|_| ConfigError("the TLS certificate and key do not form a valid pair".into()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
