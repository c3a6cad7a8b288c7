//! Push webhooks (issue 11): a forge posts to a GitSync's `status.webhookPath` on the agent's webhook port, the
//! receiver checks the forge's signature with the GitSync's webhook Secret, decides from the payload whether the
//! push concerns the GitSync (its ref, its path), and asks the running GitSync controller to sync at once. It may
//! read the webhook Secrets; it writes nothing to the API server, and never logs or returns a secret.
//!
//! [`verify`] checks signatures (pure), [`push`] reads payloads and decides (pure), [`server`] is the HTTP receiver.

pub mod push;
pub mod server;
pub mod verify;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use server::{MAX_BODY_BYTES, MIN_TRIGGER_INTERVAL, WebhookReceiver, serve};

/// The key of the webhook Secret that holds the secret.
pub const SECRET_KEY: &str = "token";

/// The prefix of every webhook path.
pub const PATH_PREFIX: &str = "/hook/";

/// The default address of the webhook port (`--webhook-address`).
pub const DEFAULT_ADDRESS: &str = ":9292";

/// `status.webhookPath` of GitSync `namespace/name` with webhook secret `token`: `/hook/` and the hex HMAC-SHA256
/// of the namespace and name keyed by the secret, so that it is not guessable without the secret and changes with
/// it.
pub fn webhook_path(token: &[u8], namespace: &str, name: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty digest would only make the path unusable.
    let digest = match Hmac::<Sha256>::new_from_slice(token) {
        Ok(mut mac) => {
            mac.update(b"redisgitops.dev/webhook\0");
            mac.update(namespace.as_bytes());
            mac.update(b"\0");
            mac.update(name.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    };
    format!("{PATH_PREFIX}{}", to_hex(&digest))
}

/// Checks the name of `spec.webhook.secretRef` (a Kubernetes object name: a DNS subdomain of at most 253
/// characters); the message says what is wrong.
pub fn validate_secret_name(name: &str) -> Result<(), String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let alphanumeric_ends = name
        .bytes()
        .next()
        .zip(name.bytes().last())
        .is_some_and(|(first, last)| first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric());
    if name.is_empty() {
        Err("is empty; name the Secret whose key `token` holds the webhook secret".to_string())
    } else if name.len() > 253 || !valid_chars || !alphanumeric_ends {
        Err(format!(
            "\"{}\" is not a Secret name (lowercase letters, digits, '-' and '.', at most 253 characters)",
            name.chars().take(64).collect::<String>()
        ))
    } else {
        Ok(())
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The bytes of a hex text (either case), or `None` when it is not hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|index| {
            text.get(index..index + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_depends_on_the_secret_the_namespace_and_the_name() {
        let path = webhook_path(b"s3cret", "default", "config");
        assert!(path.starts_with("/hook/"));
        assert_eq!(path.len(), "/hook/".len() + 64);
        assert_eq!(path, webhook_path(b"s3cret", "default", "config"));
        assert_ne!(path, webhook_path(b"other", "default", "config"));
        assert_ne!(path, webhook_path(b"s3cret", "team", "config"));
        assert_ne!(path, webhook_path(b"s3cret", "default", "config2"));
        // No ambiguity between namespace and name boundaries.
        assert_ne!(webhook_path(b"k", "ab", "c"), webhook_path(b"k", "a", "bc"));
    }

    #[test]
    fn secret_names_are_checked_with_a_message() {
        assert_eq!(validate_secret_name("hook"), Ok(()));
        assert_eq!(validate_secret_name("hook.v2-a"), Ok(()));
        assert_eq!(
            validate_secret_name(""),
            Err("is empty; name the Secret whose key `token` holds the webhook secret".to_string())
        );
        assert_eq!(
            validate_secret_name("Hook"),
            Err(
                "\"Hook\" is not a Secret name (lowercase letters, digits, '-' and '.', at most 253 characters)"
                    .to_string()
            )
        );
        assert!(validate_secret_name("-hook").is_err());
        assert!(validate_secret_name(&"a".repeat(254)).is_err());
    }

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(to_hex(&[0, 171, 255]), "00abff");
        assert_eq!(from_hex("00ABff"), Some(vec![0, 171, 255]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("é0"), None);
    }
}
