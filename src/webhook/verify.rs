//! Who sent a delivery and whether it is authentic, per forge (reference gitops.md §4): GitHub
//! `X-Hub-Signature-256` (`sha256=<hex HMAC>` of the raw body), Gitea `X-Gitea-Signature` and Forgejo
//! `X-Forgejo-Signature` (hex HMAC-SHA256, no prefix), GitLab `X-Gitlab-Token` (the secret itself), Bitbucket
//! `X-Hub-Signature` (`sha256=` or `sha1=`), and a generic `X-Signature: <sha1|sha256|sha512>=<hex>`. Every
//! comparison is constant-time. Pure: headers and bytes in, a verdict out.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use super::from_hex;

/// The kind of sender, from its headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forge {
    /// GitHub (and GitHub Enterprise).
    GitHub,
    /// Gitea.
    Gitea,
    /// Forgejo.
    Forgejo,
    /// GitLab.
    GitLab,
    /// Bitbucket Cloud or Server.
    Bitbucket,
    /// Any sender of `X-Signature: <algorithm>=<hex HMAC>`.
    Generic,
}

impl Forge {
    /// The sender's name for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::Gitea => "gitea",
            Forge::Forgejo => "forgejo",
            Forge::GitLab => "gitlab",
            Forge::Bitbucket => "bitbucket",
            Forge::Generic => "generic",
        }
    }
}

/// Why a delivery is refused. Messages name headers, never the secret or the expected signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No header this receiver knows carries a signature or token.
    #[error(
        "unable to verify the delivery: no X-Hub-Signature-256, X-Gitea-Signature, X-Forgejo-Signature, \
         X-Gitlab-Token, X-Hub-Signature or X-Signature header; set the webhook secret on the forge"
    )]
    Missing,
    /// The header is there but not in its forge's format.
    #[error("unable to verify the delivery: the {header} header is not in the form {form}")]
    Malformed {
        /// The header.
        header: &'static str,
        /// What it should look like.
        form: &'static str,
    },
    /// The signature or token does not match: a wrong secret, or a changed body.
    #[error("the {header} header does not match the body and the webhook secret; check the secret on the forge")]
    Mismatch {
        /// The header.
        header: &'static str,
    },
}

impl VerifyError {
    /// A stable name of the failure (the variant name).
    pub fn category(&self) -> &'static str {
        match self {
            VerifyError::Missing => "Missing",
            VerifyError::Malformed { .. } => "Malformed",
            VerifyError::Mismatch { .. } => "Mismatch",
        }
    }
}

/// Which HMAC.
#[derive(Clone, Copy, Debug)]
enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// Verifies a delivery of `body` with the webhook `secret`; returns the sender.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<Forge, VerifyError> {
    let header = |name: &str| headers.get(name).map(|value| value.as_bytes());
    if let Some(token) = header("x-gitlab-token") {
        return match bool::from(token.ct_eq(secret)) {
            true => Ok(Forge::GitLab),
            false => Err(VerifyError::Mismatch {
                header: "X-Gitlab-Token",
            }),
        };
    }
    if let Some(signature) = header("x-forgejo-signature") {
        return plain_hex("X-Forgejo-Signature", signature, body, secret).map(|()| Forge::Forgejo);
    }
    if let Some(signature) = header("x-gitea-signature") {
        return plain_hex("X-Gitea-Signature", signature, body, secret).map(|()| Forge::Gitea);
    }
    // Bitbucket names its events in X-Event-Key; GitHub in X-GitHub-Event.
    let bitbucket = headers.contains_key("x-event-key") && !headers.contains_key("x-github-event");
    if let Some(signature) = header("x-hub-signature-256") {
        let form = "sha256=<hex HMAC-SHA256 of the body>";
        let hex = signature.strip_prefix(b"sha256=").ok_or(VerifyError::Malformed {
            header: "X-Hub-Signature-256",
            form,
        })?;
        check("X-Hub-Signature-256", form, Algorithm::Sha256, hex, body, secret)?;
        return Ok(if bitbucket { Forge::Bitbucket } else { Forge::GitHub });
    }
    if let Some(signature) = header("x-hub-signature") {
        prefixed("X-Hub-Signature", signature, body, secret)?;
        return Ok(if bitbucket { Forge::Bitbucket } else { Forge::GitHub });
    }
    if let Some(signature) = header("x-signature") {
        prefixed("X-Signature", signature, body, secret)?;
        return Ok(Forge::Generic);
    }
    Err(VerifyError::Missing)
}

/// `X-Gitea-Signature` / `X-Forgejo-Signature`: hex HMAC-SHA256 without a prefix.
fn plain_hex(header: &'static str, signature: &[u8], body: &[u8], secret: &[u8]) -> Result<(), VerifyError> {
    check(
        header,
        "<hex HMAC-SHA256 of the body>",
        Algorithm::Sha256,
        signature,
        body,
        secret,
    )
}

/// `<sha1|sha256|sha512>=<hex>`.
fn prefixed(header: &'static str, signature: &[u8], body: &[u8], secret: &[u8]) -> Result<(), VerifyError> {
    let form = "<sha1|sha256|sha512>=<hex HMAC of the body>";
    let malformed = VerifyError::Malformed { header, form };
    let split = signature.iter().position(|b| *b == b'=').ok_or(malformed.clone())?;
    let (name, hex) = (&signature[..split], &signature[split + 1..]);
    let algorithm = match name {
        b"sha1" => Algorithm::Sha1,
        b"sha256" => Algorithm::Sha256,
        b"sha512" => Algorithm::Sha512,
        _ => return Err(malformed),
    };
    check(header, form, algorithm, hex, body, secret)
}

/// Compares the hex signature with the HMAC of `body`, in constant time.
fn check(
    header: &'static str,
    form: &'static str,
    algorithm: Algorithm,
    hex: &[u8],
    body: &[u8],
    secret: &[u8],
) -> Result<(), VerifyError> {
    let expected = std::str::from_utf8(hex)
        .ok()
        .and_then(|text| from_hex(text.trim()))
        .ok_or(VerifyError::Malformed { header, form })?;
    let matches = match algorithm {
        Algorithm::Sha1 => hmac_verify::<Hmac<sha1::Sha1>>(secret, body, &expected),
        Algorithm::Sha256 => hmac_verify::<Hmac<sha2::Sha256>>(secret, body, &expected),
        Algorithm::Sha512 => hmac_verify::<Hmac<sha2::Sha512>>(secret, body, &expected),
    };
    if matches {
        Ok(())
    } else {
        Err(VerifyError::Mismatch { header })
    }
}

fn hmac_verify<M: Mac + hmac::digest::KeyInit>(secret: &[u8], body: &[u8], expected: &[u8]) -> bool {
    match <M as hmac::digest::KeyInit>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            // `verify_slice` compares in constant time.
            mac.verify_slice(expected).is_ok()
        }
        Err(_) => false,
    }
}

/// What the delivery is about, from the forge's event header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The forge checks the hook (GitHub `ping`, Bitbucket Server `diagnostics:ping`).
    Ping,
    /// Refs moved (a push of branches or tags).
    Push,
    /// Anything else, by its header value.
    Other(String),
}

/// The event of a verified delivery from `forge`.
pub fn event(forge: Forge, headers: &HeaderMap) -> Event {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.trim().to_ascii_lowercase())
    };
    let name = match forge {
        Forge::GitHub => header("x-github-event"),
        Forge::Gitea => header("x-gitea-event").or_else(|| header("x-github-event")),
        Forge::Forgejo => header("x-forgejo-event").or_else(|| header("x-gitea-event")),
        Forge::GitLab => header("x-gitlab-event"),
        Forge::Bitbucket => header("x-event-key"),
        Forge::Generic => header("x-event").or_else(|| header("x-github-event")),
    };
    match name.as_deref() {
        // A generic sender without an event header posts pushes.
        None if forge == Forge::Generic => Event::Push,
        None => Event::Other(String::new()),
        Some("ping" | "diagnostics:ping") => Event::Ping,
        Some("push" | "push hook" | "tag push hook" | "repo:push" | "repo:refs_changed") => Event::Push,
        Some(other) => Event::Other(other.chars().take(64).collect()),
    }
}

/// The delivery's id, when the forge sends one (GitHub `X-GitHub-Delivery`, Gitea `X-Gitea-Delivery`, Forgejo
/// `X-Forgejo-Delivery`, GitLab `X-Gitlab-Event-UUID`, Bitbucket `X-Request-UUID` or `X-Request-Id`, generic
/// `X-Delivery-Id`), at most 128 characters.
pub fn delivery_id(forge: Forge, headers: &HeaderMap) -> Option<String> {
    let names: &[&str] = match forge {
        Forge::GitHub => &["x-github-delivery"],
        Forge::Gitea => &["x-gitea-delivery", "x-github-delivery"],
        Forge::Forgejo => &["x-forgejo-delivery", "x-gitea-delivery"],
        Forge::GitLab => &["x-gitlab-event-uuid"],
        Forge::Bitbucket => &["x-request-uuid", "x-request-id"],
        Forge::Generic => &["x-delivery-id", "x-github-delivery"],
    };
    names
        .iter()
        .find_map(|name| headers.get(*name)?.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| id.chars().take(128).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::to_hex;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("a header value"));
        }
        map
    }

    fn sha256_hex(secret: &[u8], body: &[u8]) -> String {
        let mut mac = <Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(secret).expect("a key");
        mac.update(body);
        to_hex(&mac.finalize().into_bytes())
    }

    /// The test vector of GitHub's "Validating webhook deliveries" page.
    #[test]
    fn github_published_test_vector() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sha256_hex(secret, body), signature.trim_start_matches("sha256="));
        let map = headers(&[("x-hub-signature-256", signature), ("x-github-event", "push")]);
        assert_eq!(verify(&map, body, secret), Ok(Forge::GitHub));
        assert_eq!(
            verify(&map, b"Hello, World?", secret),
            Err(VerifyError::Mismatch {
                header: "X-Hub-Signature-256"
            })
        );
        assert_eq!(
            verify(&map, body, b"another secret"),
            Err(VerifyError::Mismatch {
                header: "X-Hub-Signature-256"
            })
        );
    }

    #[test]
    fn github_signature_needs_its_prefix_and_hex() {
        let body = b"{}";
        let bare = sha256_hex(b"k", body);
        let map = headers(&[("x-hub-signature-256", &bare)]);
        assert_eq!(
            verify(&map, body, b"k"),
            Err(VerifyError::Malformed {
                header: "X-Hub-Signature-256",
                form: "sha256=<hex HMAC-SHA256 of the body>"
            })
        );
        let map = headers(&[("x-hub-signature-256", "sha256=not-hex")]);
        assert_eq!(verify(&map, body, b"k").map_err(|e| e.category()), Err("Malformed"));
    }

    #[test]
    fn gitea_and_forgejo_sign_in_plain_hex() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let signature = sha256_hex(b"k", body);
        assert_eq!(
            verify(&headers(&[("x-gitea-signature", &signature)]), body, b"k"),
            Ok(Forge::Gitea)
        );
        assert_eq!(
            verify(&headers(&[("x-forgejo-signature", &signature)]), body, b"k"),
            Ok(Forge::Forgejo)
        );
        assert_eq!(
            verify(
                &headers(&[("x-gitea-signature", &format!("sha256={signature}"))]),
                body,
                b"k"
            )
            .map_err(|e| e.category()),
            Err("Malformed")
        );
        assert_eq!(
            verify(&headers(&[("x-gitea-signature", &sha256_hex(b"x", body))]), body, b"k"),
            Err(VerifyError::Mismatch {
                header: "X-Gitea-Signature"
            })
        );
    }

    #[test]
    fn gitlab_sends_the_token_itself() {
        assert_eq!(
            verify(&headers(&[("x-gitlab-token", "k")]), b"{}", b"k"),
            Ok(Forge::GitLab)
        );
        assert_eq!(
            verify(&headers(&[("x-gitlab-token", "k2")]), b"{}", b"k"),
            Err(VerifyError::Mismatch {
                header: "X-Gitlab-Token"
            })
        );
        assert_eq!(
            verify(&headers(&[("x-gitlab-token", "")]), b"{}", b"k").map_err(|e| e.category()),
            Err("Mismatch")
        );
    }

    #[test]
    fn bitbucket_and_generic_name_their_algorithm() {
        let body = b"{\"push\":{}}";
        let mut sha1 = <Hmac<sha1::Sha1> as hmac::digest::KeyInit>::new_from_slice(b"k").expect("a key");
        sha1.update(body);
        let sha1 = to_hex(&sha1.finalize().into_bytes());
        let map = headers(&[
            ("x-hub-signature", &format!("sha1={sha1}")),
            ("x-event-key", "repo:push"),
        ]);
        assert_eq!(verify(&map, body, b"k"), Ok(Forge::Bitbucket));
        let map = headers(&[
            ("x-hub-signature", &format!("sha256={}", sha256_hex(b"k", body))),
            ("x-event-key", "repo:refs_changed"),
        ]);
        assert_eq!(verify(&map, body, b"k"), Ok(Forge::Bitbucket));
        let mut sha512 = <Hmac<sha2::Sha512> as hmac::digest::KeyInit>::new_from_slice(b"k").expect("a key");
        sha512.update(body);
        let sha512 = to_hex(&sha512.finalize().into_bytes());
        assert_eq!(
            verify(&headers(&[("x-signature", &format!("sha512={sha512}"))]), body, b"k"),
            Ok(Forge::Generic)
        );
        assert_eq!(
            verify(&headers(&[("x-signature", &format!("md5={sha512}"))]), body, b"k").map_err(|e| e.category()),
            Err("Malformed")
        );
        assert_eq!(verify(&HeaderMap::new(), body, b"k"), Err(VerifyError::Missing));
    }

    #[test]
    fn events_and_delivery_ids_per_forge() {
        let map = headers(&[("x-github-event", "ping"), ("x-github-delivery", "d-1")]);
        assert_eq!(event(Forge::GitHub, &map), Event::Ping);
        assert_eq!(delivery_id(Forge::GitHub, &map), Some("d-1".to_string()));
        let map = headers(&[("x-gitlab-event", "Tag Push Hook"), ("x-gitlab-event-uuid", "u-2")]);
        assert_eq!(event(Forge::GitLab, &map), Event::Push);
        assert_eq!(delivery_id(Forge::GitLab, &map), Some("u-2".to_string()));
        let map = headers(&[("x-gitea-event", "issues")]);
        assert_eq!(event(Forge::Gitea, &map), Event::Other("issues".to_string()));
        assert_eq!(event(Forge::Generic, &HeaderMap::new()), Event::Push);
        assert_eq!(event(Forge::GitHub, &HeaderMap::new()), Event::Other(String::new()));
    }
}
