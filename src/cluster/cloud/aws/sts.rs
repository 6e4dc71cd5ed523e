//! AWS STS's Query API, the two calls kubeship makes: `AssumeRoleWithWebIdentity` (unsigned,
//! the web identity token is the credential) and `AssumeRole` (signed with the credentials in
//! hand). Both are form `POST`s to `/` answered in XML; the answer's fields are flat text
//! elements, so they are read with [`xml_text`] rather than a general XML parser.

use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use super::{Credentials, sign};
use crate::cluster::cloud::Error;
use crate::cluster::cloud::http::{Http, untrusted};

const VERSION: &str = "2011-06-15";

/// Where STS is, and the region its signatures name.
#[derive(Debug, Clone)]
pub struct Sts {
    pub url: reqwest::Url,
    pub region: String,
}

/// What an assume-role call gives: the credentials and the role session's ARN.
pub struct Assumed {
    pub credentials: Credentials,
    pub arn: String,
}

impl Sts {
    fn service(&self) -> String {
        format!("AWS STS ({})", self.url)
    }

    /// `AssumeRoleWithWebIdentity` with an OIDC token (a file's or GitHub's).
    ///
    /// # Errors
    /// [`Error::Refused`] with STS's code and message, or the transport's error.
    pub async fn assume_role_with_web_identity(
        &self,
        http: &Http,
        role_arn: &str,
        session_name: &str,
        token: &SecretString,
    ) -> Result<Assumed, Error> {
        use secrecy::ExposeSecret as _;
        let body = form(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", VERSION),
            ("RoleArn", role_arn),
            ("RoleSessionName", session_name),
            ("WebIdentityToken", token.expose_secret()),
        ]);
        let request = http
            .request(reqwest::Method::POST, self.url.clone())
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .body(body);
        let answer = http.send(&self.service(), request, &[token]).await?;
        self.read("AssumeRoleWithWebIdentity", role_arn, answer.status, &answer.body, &[token])
    }

    /// `AssumeRole`, signed with `credentials`.
    ///
    /// # Errors
    /// As [`Self::assume_role_with_web_identity`].
    pub async fn assume_role(
        &self,
        http: &Http,
        credentials: &Credentials,
        role_arn: &str,
        session_name: &str,
    ) -> Result<Assumed, Error> {
        let body = form(&[
            ("Action", "AssumeRole"),
            ("Version", VERSION),
            ("RoleArn", role_arn),
            ("RoleSessionName", session_name),
        ]);
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let signed = sign::headers(
            &sign::Request {
                method: "POST",
                url: self.url.as_str(),
                headers: &[("content-type", content_type)],
                body: body.as_bytes(),
                region: &self.region,
                service: "sts",
                time: SystemTime::now(),
            },
            credentials,
        )
        .map_err(|e| Error::Config(format!("the AssumeRole request cannot be signed: {e}")))?;
        let mut request = http
            .request(reqwest::Method::POST, self.url.clone())
            .header("content-type", content_type)
            .body(body);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let secrets = credentials.secrets();
        let answer = http.send(&self.service(), request, &secrets).await?;
        self.read("AssumeRole", role_arn, answer.status, &answer.body, &secrets)
    }

    fn read(
        &self,
        action: &str,
        role_arn: &str,
        status: u16,
        body: &[u8],
        secrets: &[&SecretString],
    ) -> Result<Assumed, Error> {
        let text = String::from_utf8_lossy(body);
        if !(200..300).contains(&status) {
            let code = xml_text(&text, "Code").unwrap_or_default();
            let message = xml_text(&text, "Message").unwrap_or_default();
            let detail = if code.is_empty() && message.is_empty() {
                format!("HTTP {status}: {}", untrusted(body, secrets))
            } else {
                untrusted(format!("{code}: {message}").as_bytes(), secrets)
            };
            return Err(Error::Refused {
                service: self.service(),
                detail: format!("{action} of {role_arn}: {detail}"),
                advice: advice(action, &code),
            });
        }
        let field = |name: &str| {
            xml_text(&text, name).ok_or_else(|| Error::Answer {
                service: self.service(),
                detail: format!("its {action} answer has no {name}"),
            })
        };
        let expires = field("Expiration")?
            .parse::<jiff::Timestamp>()
            .ok()
            .and_then(|t| u64::try_from(t.as_second()).ok())
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        Ok(Assumed {
            credentials: Credentials {
                access_key_id: field("AccessKeyId")?,
                secret: SecretString::from(field("SecretAccessKey")?),
                session_token: Some(SecretString::from(field("SessionToken")?)),
                expires,
            },
            arn: xml_text(&text, "Arn").unwrap_or_else(|| role_arn.to_owned()),
        })
    }
}

/// What to do about STS's refusal.
fn advice(action: &str, code: &str) -> String {
    match (action, code) {
        ("AssumeRoleWithWebIdentity", "AccessDenied" | "InvalidIdentityToken") => {
            " The role's trust policy must allow sts:AssumeRoleWithWebIdentity for this token's \
             issuer, audience (sts.amazonaws.com for GitHub) and subject (repo:OWNER/REPO:...)"
                .into()
        }
        ("AssumeRole", "AccessDenied") => " The role's trust policy must allow sts:AssumeRole \
                                           by the identity kubeship starts from"
            .into(),
        (_, "ExpiredToken" | "ExpiredTokenException") => {
            " The credentials in the environment have expired: refresh them in the login step"
                .into()
        }
        _ => String::new(),
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", sign::encode(k), sign::encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The text of the first `<tag>` element (no attributes, no nesting), with XML's predefined
/// entities and character references decoded.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(unescape(xml[start..end].trim()))
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let decoded = match &rest[1..end] {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            reference => reference
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| reference.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of AWS's documented answer and error forms.
    #[test]
    fn reads_sts_xml() {
        let answer = "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n\
            <AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/demo/s</Arn>\
            </AssumedRoleUser><Credentials><SessionToken>a+b/c==</SessionToken>\
            <SecretAccessKey>wJal&amp;r</SecretAccessKey><Expiration>2011-07-15T23:28:33.359Z</Expiration>\
            <AccessKeyId>ASIAEXAMPLE</AccessKeyId></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        assert_eq!(xml_text(answer, "SecretAccessKey").as_deref(), Some("wJal&r"));
        assert_eq!(xml_text(answer, "SessionToken").as_deref(), Some("a+b/c=="));
        assert_eq!(
            xml_text(answer, "Arn").as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/demo/s")
        );
        let error = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>\
            <Message>Not authorized to perform sts:AssumeRole &lt;x&gt; &#65;&#x42;</Message></Error></ErrorResponse>";
        assert_eq!(
            xml_text(error, "Message").as_deref(),
            Some("Not authorized to perform sts:AssumeRole <x> AB")
        );
        assert_eq!(xml_text(error, "Missing"), None);
        assert_eq!(unescape("a & b &bogus; &#xZZ;"), "a & b &bogus; &#xZZ;");
    }

    /// Form values are encoded as SigV4 wants them (a `+` in a token must not become a space).
    #[test]
    fn form_encoding() {
        assert_eq!(form(&[("A", "x y+/=")]), "A=x%20y%2B%2F%3D");
    }
}
