//! SigV4 through AWS's own signer (`aws-sigv4`): the presigned URL behind the EKS token and
//! header signatures for STS `AssumeRole` and EKS `DescribeCluster`. The signer takes the URL
//! already percent-encoded and hands back the signing parameters raw; they are encoded here
//! with SigV4's rule (everything but `A-Z a-z 0-9 - _ . ~`), as the verifier decodes them.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningParams, SigningSettings, sign,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::ExposeSecret as _;

use super::Credentials;

/// SigV4's unreserved characters stay; everything else is encoded.
const SIGV4: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// One value encoded for a SigV4 query string or form body.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, SIGV4).to_string()
}

/// What to sign.
pub struct Request<'a> {
    pub method: &'a str,
    /// The full URL, its query already encoded with [`encode`].
    pub url: &'a str,
    /// Headers to sign besides `host` (which the signer takes from the URL).
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub region: &'a str,
    pub service: &'a str,
    pub time: SystemTime,
}

fn identity(credentials: &Credentials) -> aws_smithy_runtime_api::client::identity::Identity {
    aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret.expose_secret().to_owned(),
        credentials.session_token.as_ref().map(|t| t.expose_secret().to_owned()),
        None,
        "kubeship",
    )
    .into()
}

fn signed(
    request: &Request<'_>,
    credentials: &Credentials,
    settings: SigningSettings,
) -> Result<aws_sigv4::http_request::SigningInstructions, String> {
    let identity = identity(credentials);
    let params: SigningParams<'_> = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(request.region)
        .name(request.service)
        .time(request.time)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) =
        sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    Ok(instructions)
}

/// The URL with the signature in its query (`X-Amz-*`), valid for `expires`.
///
/// # Errors
/// The signer's reason (a malformed URL).
pub fn presign(
    request: &Request<'_>,
    credentials: &Credentials,
    expires: Duration,
) -> Result<String, String> {
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let instructions = signed(request, credentials, settings)?;
    let mut url = request.url.to_owned();
    let mut separator = if url.contains('?') { '&' } else { '?' };
    for (name, value) in instructions.params() {
        url.push(separator);
        url.push_str(name);
        url.push('=');
        url.push_str(&encode(value));
        separator = '&';
    }
    Ok(url)
}

/// The headers to add (`authorization`, `x-amz-date`, `x-amz-security-token`).
///
/// # Errors
/// The signer's reason (a malformed URL).
pub fn headers(
    request: &Request<'_>,
    credentials: &Credentials,
) -> Result<Vec<(String, String)>, String> {
    let instructions = signed(request, credentials, SigningSettings::default())?;
    Ok(instructions.headers().map(|(n, v)| (n.to_owned(), v.to_owned())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeship_testkit::cloud::sigv4_vectors::{VECTORS, Vector};
    use secrecy::SecretString;

    fn credentials(v: &Vector) -> Credentials {
        Credentials {
            access_key_id: v.access_key_id.into(),
            secret: SecretString::from(v.secret_access_key),
            session_token: v.session_token.map(SecretString::from),
            expires: None,
        }
    }

    fn time(v: &Vector) -> SystemTime {
        let t: jiff::Timestamp = v.timestamp.parse().unwrap();
        SystemTime::UNIX_EPOCH + Duration::from_secs(t.as_second().try_into().unwrap())
    }

    /// The vector's request, sent to `url`.
    fn request_of<'a>(v: &'a Vector, url: &'a str) -> Request<'a> {
        Request {
            method: v.method,
            url,
            headers: v.headers,
            body: v.body.as_bytes(),
            region: v.region,
            service: v.service,
            time: time(v),
        }
    }

    /// AWS's published vectors, presigned: the signer, as kubeship drives it, computes AWS's
    /// query signatures (session token included in the signature, as STS wants it).
    #[test]
    fn presigned_vectors() {
        for v in VECTORS.iter().filter(|v| v.query_signature.is_some()) {
            let url = format!("https://{}{}", v.host, v.path_and_query);
            let request = request_of(v, &url);
            let url = presign(&request, &credentials(v), Duration::from_secs(v.expires)).unwrap();
            let signature = url.split("X-Amz-Signature=").nth(1).unwrap().split('&').next();
            assert_eq!(signature, v.query_signature, "{}", v.name);
        }
    }

    /// The same vectors signed in headers (but those that sign the body's hash in a header,
    /// which is S3's way, not STS's or EKS's).
    #[test]
    fn header_vectors() {
        for v in VECTORS.iter().filter(|v| !v.sign_body) {
            let url = format!("https://{}{}", v.host, v.path_and_query);
            let request = request_of(v, &url);
            let headers = headers(&request, &credentials(v)).unwrap();
            let authorization = &headers.iter().find(|(n, _)| n == "authorization").unwrap().1;
            let signature = authorization.rsplit("Signature=").next().unwrap();
            assert_eq!(signature, v.header_signature, "{}", v.name);
        }
    }
}
