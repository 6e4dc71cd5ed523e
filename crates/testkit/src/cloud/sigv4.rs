//! SigV4 as AWS documents it ("Create a signed AWS API request"), written for the test kit's
//! verifiers independently of the `aws-sigv4` crate kubeship signs with, and checked against
//! AWS's published vectors ([`super::sigv4_vectors`]): the canonical request, the string to
//! sign, the derived key and the signature, for header and presigned (query) requests.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What is signed.
#[derive(Debug, Clone)]
pub struct Canonical<'a> {
    pub method: &'a str,
    /// The path as sent (already encoded).
    pub path: &'a str,
    /// Decoded query pairs (for a presigned request: all but `X-Amz-Signature`).
    pub query: Vec<(String, String)>,
    /// The signed headers, as sent.
    pub headers: Vec<(String, String)>,
    /// Hex SHA-256 of the body.
    pub payload_hash: String,
}

/// SHA-256, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// SigV4's URI encoding: unreserved characters as they are, every other byte `%XX`.
pub fn uri_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Canonical<'_> {
    /// `name;name;...`, lowercased and sorted.
    pub fn signed_headers(&self) -> String {
        let mut names: Vec<String> =
            self.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
        names.sort();
        names.dedup();
        names.join(";")
    }

    /// The canonical request.
    pub fn request(&self) -> String {
        let mut query: Vec<(String, String)> =
            self.query.iter().map(|(k, v)| (uri_encode(k), uri_encode(v))).collect();
        query.sort();
        let query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let mut headers: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (name, value) in &self.headers {
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            headers.entry(name.to_ascii_lowercase()).or_default().push(value);
        }
        let headers: String =
            headers.iter().map(|(n, v)| format!("{n}:{}\n", v.join(","))).collect();
        format!(
            "{}\n{}\n{query}\n{headers}\n{}\n{}",
            self.method,
            self.path,
            self.signed_headers(),
            self.payload_hash
        )
    }
}

/// The string to sign for `canonical` at `date` (`YYYYMMDDTHHMMSSZ`) in `scope`
/// (`YYYYMMDD/region/service/aws4_request`).
pub fn string_to_sign(canonical: &Canonical<'_>, date: &str, scope: &str) -> String {
    format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{}", sha256_hex(canonical.request().as_bytes()))
}

/// The signature, hex.
pub fn signature(secret: &str, scope: &str, string_to_sign: &str) -> String {
    let mut parts = scope.split('/');
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in
        [parts.next(), parts.next(), parts.next(), Some("aws4_request")].into_iter().flatten()
    {
        key = hmac(&key, part.as_bytes());
    }
    hex(&hmac(&key, string_to_sign.as_bytes()))
}

/// Constant-time equality of two signatures.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::super::sigv4_vectors::VECTORS;
    use super::*;

    fn date(timestamp: &str) -> String {
        // 2015-08-30T12:36:00Z → 20150830T123600Z
        timestamp.replace(['-', ':'], "")
    }

    /// The reference computes every published signature, in headers and presigned.
    #[test]
    fn published_vectors() {
        for v in VECTORS {
            let (path, query) = v.path_and_query.split_once('?').unwrap_or((v.path_and_query, ""));
            let pairs: Vec<(String, String)> =
                form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            let date = date(v.timestamp);
            let scope = format!("{}/{}/{}/aws4_request", &date[..8], v.region, v.service);
            let payload_hash = sha256_hex(v.body.as_bytes());
            let mut headers: Vec<(String, String)> = vec![("host".into(), v.host.into())];
            headers.extend(v.headers.iter().map(|(n, val)| ((*n).to_owned(), (*val).to_owned())));
            // Header form: x-amz-date (and the token, and the body hash when signed) are headers.
            let mut signed = headers.clone();
            signed.push(("x-amz-date".into(), date.clone()));
            if let Some(token) = v.session_token {
                signed.push(("x-amz-security-token".into(), token.into()));
            }
            if v.sign_body {
                signed.push(("x-amz-content-sha256".into(), payload_hash.clone()));
            }
            let c = Canonical {
                method: v.method,
                path,
                query: pairs.clone(),
                headers: signed,
                payload_hash: payload_hash.clone(),
            };
            let got = signature(v.secret_access_key, &scope, &string_to_sign(&c, &date, &scope));
            assert_eq!(got, v.header_signature, "{} (headers)", v.name);

            let Some(expected) = v.query_signature else { continue };
            let mut query = pairs;
            let c0 = Canonical {
                method: v.method,
                path,
                query: vec![],
                headers: headers.clone(),
                payload_hash: String::new(),
            };
            query.extend([
                ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
                ("X-Amz-Credential".into(), format!("{}/{scope}", v.access_key_id)),
                ("X-Amz-Date".into(), date.clone()),
                ("X-Amz-Expires".into(), v.expires.to_string()),
                ("X-Amz-SignedHeaders".into(), c0.signed_headers()),
            ]);
            if let Some(token) = v.session_token {
                query.push(("X-Amz-Security-Token".into(), token.into()));
            }
            let c = Canonical { method: v.method, path, query, headers, payload_hash };
            let got = signature(v.secret_access_key, &scope, &string_to_sign(&c, &date, &scope));
            assert_eq!(got, expected, "{} (query)", v.name);
        }
    }
}
