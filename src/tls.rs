//! TLS trust for kubeship's HTTPS clients. The container image has no OS trust store, so the
//! public roots are compiled in (Mozilla's, from `webpki-root-certs`) and a user's extra CA is
//! added to them. One crypto provider (ring) is installed for the whole process.

use std::sync::{Arc, Once, OnceLock};

/// Installs ring as the process's rustls provider. Idempotent; every client constructor calls
/// it, so tests that use the library without `main` get the same TLS as the binary.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The public roots as one store, made once per process and shared by every client built
/// without an extra CA (the registry's, the cloud logins').
fn public_store() -> Arc<rustls::RootCertStore> {
    static STORE: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            Arc::new(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
        })
        .clone()
}

/// A rustls configuration trusting the public roots and `extra_ca` (DER). The public roots
/// are `webpki-roots` trust anchors, parsed at compile time and made into a store once: no
/// file is read and no certificate parsed at run time, where the OS store would cost
/// milliseconds on every run. (kube's client uses the same set, through kube's
/// `webpki-roots` feature, when a kubeconfig gives no CA.)
///
/// # Errors
/// A reason when an extra certificate cannot serve as a trust anchor.
pub fn client_config(extra_ca: &[Vec<u8>]) -> Result<rustls::ClientConfig, String> {
    install_crypto_provider();
    let roots = if extra_ca.is_empty() {
        public_store()
    } else {
        let mut roots = (*public_store()).clone();
        for der in extra_ca {
            roots
                .add(rustls::pki_types::CertificateDer::from(der.clone()))
                .map_err(|e| format!("the extra CA cannot be used: {e}"))?;
        }
        Arc::new(roots)
    };
    let mut config =
        rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The compiled-in public roots, DER-encoded (for clients that take certificates, not a
/// rustls configuration).
pub fn public_roots() -> impl Iterator<Item = &'static [u8]> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().map(|c| c.as_ref())
}

/// Parses PEM text into DER certificates.
///
/// # Errors
/// A reason for the message when the text holds no certificate or a malformed one.
pub fn parse_pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut reader = pem.as_bytes();
    let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut reader)
        .map(|c| c.map(|der| der.as_ref().to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    // rustls-pemfile skips what it does not understand; a certificate that fails to parse as
    // X.509 would only surface at the first handshake, so check it here.
    for der in &certs {
        let der = rustls::pki_types::CertificateDer::from(der.as_slice());
        webpki::anchor_from_trusted_cert(&der)
            .map_err(|e| format!("holds a certificate that is not valid X.509 ({e})"))?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in stores are the Mozilla set, not empty, in both forms.
    #[test]
    fn public_roots_are_built_in() {
        assert!(public_roots().count() > 100);
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100);
        assert!(client_config(&[]).is_ok());
    }

    /// Text without a certificate is refused with a reason.
    #[test]
    fn pem_without_certificates() {
        assert!(parse_pem_certificates("hello").unwrap_err().contains("no PEM certificate"));
        assert!(parse_pem_certificates("").is_err());
    }

    /// A PEM block whose base64 is broken is refused.
    #[test]
    fn pem_with_broken_base64() {
        let pem = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(parse_pem_certificates(pem).is_err());
    }
}
