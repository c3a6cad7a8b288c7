//! OpenSSH `known_hosts` checking for SSH remotes: plain and hashed (`|1|salt|hash`) host patterns, wildcards,
//! negations and `@revoked` lines. A host with no entry is refused (no trust on first use).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Result of checking an offered host key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HostKeyVerdict {
    /// A line lists this key for this host.
    Trusted,
    /// No line names this host at all.
    Unknown {
        /// The offered key, `type SHA256:fingerprint`.
        offered: String,
    },
    /// Lines name this host, but none with this key (or the key is revoked).
    Mismatch {
        /// The offered key, `type SHA256:fingerprint`.
        offered: String,
        /// The keys known_hosts lists for the host, same format.
        expected: Vec<String>,
    },
}

/// One usable line of a known_hosts file.
struct Entry {
    revoked: bool,
    patterns: String,
    key_type: String,
    key_blob: Vec<u8>,
}

/// The SHA256 fingerprint the way `ssh-keygen -l` prints it.
pub(crate) fn fingerprint(key_blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(key_blob)))
}

fn parse(known_hosts: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for line in known_hosts.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next();
        let mut revoked = false;
        match first {
            Some("@revoked") => {
                revoked = true;
                first = fields.next();
            }
            // Certificate authorities would need certificate parsing: such lines never match a plain key.
            Some("@cert-authority") => continue,
            _ => {}
        }
        let (Some(patterns), Some(key_type), Some(key)) = (first, fields.next(), fields.next()) else {
            continue;
        };
        let Ok(key_blob) = STANDARD.decode(key) else {
            continue;
        };
        entries.push(Entry {
            revoked,
            patterns: patterns.to_string(),
            key_type: key_type.to_string(),
            key_blob,
        });
    }
    entries
}

/// Does a comma-separated pattern list match the host name (`host` or `[host]:port`)?
fn patterns_match(patterns: &str, host: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(hashed) = pattern.strip_prefix("|1|") {
            if hashed_matches(hashed, host) {
                matched = true;
            }
        } else if let Some(negated) = pattern.strip_prefix('!') {
            if glob_match(&negated.to_ascii_lowercase(), &host.to_ascii_lowercase()) {
                return false;
            }
        } else if glob_match(&pattern.to_ascii_lowercase(), &host.to_ascii_lowercase()) {
            matched = true;
        }
    }
    matched
}

/// `salt|hash`, both base64: HMAC-SHA1 of the host name keyed by the salt.
fn hashed_matches(salt_and_hash: &str, host: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(host.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` and `?` wildcards, as in ssh host patterns.
fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// How an offered key can be compared: the raw blob when libssh2 gives it, else its SHA256 digest only.
pub(crate) enum OfferedKey<'a> {
    /// The SSH wire-format public key and its type name (`ssh-ed25519`...).
    Blob {
        /// Type name.
        key_type: &'a str,
        /// Wire-format key.
        blob: &'a [u8],
    },
    /// Only the SHA256 digest of the key blob.
    Sha256(&'a [u8; 32]),
}

/// Checks the key a server offered for `host` against the known_hosts text.
pub(crate) fn check(known_hosts: &str, host: &str, offered: OfferedKey<'_>) -> HostKeyVerdict {
    let entries: Vec<Entry> = parse(known_hosts)
        .into_iter()
        .filter(|entry| patterns_match(&entry.patterns, host))
        .collect();
    let offered_text = match &offered {
        OfferedKey::Blob { key_type, blob } => format!("{key_type} {}", fingerprint(blob)),
        OfferedKey::Sha256(digest) => format!("SHA256:{}", STANDARD_NO_PAD.encode(digest)),
    };
    let same_key = |entry: &Entry| match &offered {
        OfferedKey::Blob { key_type, blob } => entry.key_type == *key_type && entry.key_blob == *blob,
        OfferedKey::Sha256(digest) => Sha256::digest(&entry.key_blob).as_slice() == digest.as_slice(),
    };
    if entries.iter().any(|entry| entry.revoked && same_key(entry)) {
        return HostKeyVerdict::Mismatch {
            offered: format!("{offered_text} (revoked)"),
            expected: Vec::new(),
        };
    }
    let listed: Vec<&Entry> = entries.iter().filter(|entry| !entry.revoked).collect();
    if listed.is_empty() {
        return HostKeyVerdict::Unknown { offered: offered_text };
    }
    if listed.iter().any(|entry| same_key(entry)) {
        return HostKeyVerdict::Trusted;
    }
    HostKeyVerdict::Mismatch {
        offered: offered_text,
        expected: listed
            .iter()
            .map(|entry| format!("{} {}", entry.key_type, fingerprint(&entry.key_blob)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIBd3bL3Oe2ceeBaC8k5C+kSdzGZ0v7cwN2a2Q+2ytfTl";

    fn blob(key: &str) -> Vec<u8> {
        STANDARD.decode(key).unwrap()
    }

    #[test]
    fn plain_entry_with_port_trusts_only_its_key() {
        let text = format!("[127.0.0.1]:2222 ssh-ed25519 {KEY_A}\n");
        let a = blob(KEY_A);
        let b = blob(KEY_B);
        let offered = |blob| OfferedKey::Blob {
            key_type: "ssh-ed25519",
            blob,
        };
        assert_eq!(check(&text, "[127.0.0.1]:2222", offered(&a)), HostKeyVerdict::Trusted);
        assert!(matches!(
            check(&text, "[127.0.0.1]:2222", offered(&b)),
            HostKeyVerdict::Mismatch { .. }
        ));
        assert!(matches!(
            check(&text, "127.0.0.1", offered(&a)),
            HostKeyVerdict::Unknown { .. }
        ));
    }

    #[test]
    fn hashed_wildcard_negated_and_revoked_entries() {
        // Hash of "example.com" with salt "salt-salt-salt-salt!", computed with the same HMAC as ssh-keygen -H.
        let salt = b"salt-salt-salt-salt!";
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"example.com");
        let hash = mac.finalize().into_bytes();
        let hashed = format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(hash));
        let a = blob(KEY_A);
        let offered = OfferedKey::Blob {
            key_type: "ssh-ed25519",
            blob: &a,
        };
        let text = format!("{hashed} ssh-ed25519 {KEY_A}");
        assert_eq!(check(&text, "example.com", offered), HostKeyVerdict::Trusted);

        let text = format!("*.example.org,!bad.example.org ssh-ed25519 {KEY_A}");
        let offered = || OfferedKey::Blob {
            key_type: "ssh-ed25519",
            blob: &a,
        };
        assert_eq!(check(&text, "git.example.org", offered()), HostKeyVerdict::Trusted);
        assert!(matches!(
            check(&text, "bad.example.org", offered()),
            HostKeyVerdict::Unknown { .. }
        ));

        let text = format!("git.example.org ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_A}");
        assert!(matches!(
            check(&text, "git.example.org", offered()),
            HostKeyVerdict::Mismatch { .. }
        ));
    }

    #[test]
    fn fingerprint_matches_ssh_keygen_format() {
        let print = fingerprint(&blob(KEY_A));
        assert!(print.starts_with("SHA256:") && !print.ends_with('='), "{print}");
    }
}
