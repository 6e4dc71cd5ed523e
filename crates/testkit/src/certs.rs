//! Test certificates from the openssl command line: a CA, a server certificate for
//! `localhost` and `127.0.0.1` signed by it, and a self-signed signing key for tokens.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;

/// Files of a CA and the server certificate it signed.
#[derive(Debug, Clone)]
pub struct ServerCerts {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

/// Writes a CA and a server certificate into `dir`.
pub fn server(dir: &Path) -> anyhow::Result<ServerCerts> {
    let p = |name: &str| dir.join(name);
    std::fs::write(
        p("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )?;
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=kubeship test CA",
        ])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt"))
        .arg("-addext")
        .arg("basicConstraints=critical,CA:TRUE")
        .arg("-addext")
        .arg("keyUsage=critical,keyCertSign,cRLSign"))?;
    run(Command::new("openssl")
        .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("server.ext"))
        .arg("-out")
        .arg(p("server.crt")))?;
    Ok(ServerCerts { ca_pem: p("ca.crt"), cert_pem: p("server.crt"), key_pem: p("server.key") })
}

/// A self-signed RSA key and certificate for signing registry tokens.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub key_pem: Vec<u8>,
    pub cert_pem: PathBuf,
    /// The certificate, DER, standard base64: the `x5c` header distribution checks.
    pub cert_der_base64: String,
}

/// Writes a token-signing key and certificate into `dir`.
pub fn signing(dir: &Path) -> anyhow::Result<SigningKey> {
    let key = dir.join("token.key");
    let cert = dir.join("token.crt");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=kubeship test token issuer",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert))?;
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .output()?
        .stdout;
    use base64::Engine as _;
    Ok(SigningKey {
        key_pem: std::fs::read(&key)?,
        cert_pem: cert,
        cert_der_base64: base64::engine::general_purpose::STANDARD.encode(der),
    })
}
