//! TLS with rustls on aws-lc-rs: TLS 1.3 and 1.2 only, certificates from PEM files, reloaded
//! when the files change (certificate renewal).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::TlsFiles;

fn read_pem(
    files: &TlsFiles,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let cert_pem = std::fs::read(&files.cert)
        .with_context(|| format!("PORTCULLIS_TLS_CERT: cannot read {}", files.cert.display()))?;
    let key_pem = std::fs::read(&files.key)
        .with_context(|| format!("PORTCULLIS_TLS_KEY: cannot read {}", files.key.display()))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .context("PORTCULLIS_TLS_CERT: not a PEM certificate chain")?;
    if certs.is_empty() {
        anyhow::bail!(
            "PORTCULLIS_TLS_CERT: no certificate found in {}",
            files.cert.display()
        );
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .context("PORTCULLIS_TLS_KEY: not a PEM private key")?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "PORTCULLIS_TLS_KEY: no private key found in {}",
                files.key.display()
            )
        })?;
    Ok((certs, key))
}

/// A rustls server configuration from the files.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let (certs, key) = read_pem(files)?;
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("PORTCULLIS_TLS_CERT and PORTCULLIS_TLS_KEY do not form a valid pair")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Reloads the certificate when the files change (checked every 30 s) or at once on SIGHUP.
pub fn spawn_reloader(files: TlsFiles, handle: axum_server::tls_rustls::RustlsConfig) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut last = (modified(&files.cert), modified(&files.key));
        loop {
            #[cfg(unix)]
            let forced = match hup.as_mut() {
                Some(h) => tokio::select! {
                    _ = h.recv() => true,
                    _ = tokio::time::sleep(Duration::from_secs(30)) => false,
                },
                None => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    false
                }
            };
            #[cfg(not(unix))]
            let forced = {
                tokio::time::sleep(Duration::from_secs(30)).await;
                false
            };
            let now = (modified(&files.cert), modified(&files.key));
            if forced || now != last {
                match server_config(&files) {
                    Ok(cfg) => {
                        handle.reload_from_config(cfg);
                        tracing::info!("TLS certificate reloaded");
                        last = now;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "TLS certificate changed but could not be loaded; keeping the old one")
                    }
                }
            }
        }
    });
}
