//! Secret material, in one place: the one password generator (the operating system's CSPRNG through OpenSSL; a
//! failure of the random source is an error, never a fallback to something weaker) and reading a Secret value as
//! text (a value that is not UTF-8 is an error naming the Secret and the key, never the value). No I/O beyond the
//! random source.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::secret_value;

/// Length of every generated password (alphanumeric: about 190 bits).
pub const PASSWORD_LENGTH: usize = 32;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The random source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random generator failed: {reason}")]
pub struct RandomnessError {
    /// What OpenSSL said.
    pub reason: String,
}

/// A Secret value that is not UTF-8 text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the value of key `{key}` in Secret {secret} is not UTF-8 text; store it as text (for example with \
     `kubectl create secret generic --from-literal`)"
)]
pub struct NotUtf8 {
    /// `<namespace>/<name>` of the Secret.
    pub secret: String,
    /// The key.
    pub key: String,
}

/// Fills `bytes` from the operating system's CSPRNG.
pub fn random_bytes(bytes: &mut [u8]) -> Result<(), RandomnessError> {
    openssl::rand::rand_bytes(bytes).map_err(|error| RandomnessError {
        reason: error.to_string(),
    })
}

/// A new random alphanumeric password of [`PASSWORD_LENGTH`] characters.
pub fn generate_password() -> Result<String, RandomnessError> {
    let mut password = String::with_capacity(PASSWORD_LENGTH);
    let mut buffer = [0u8; 64];
    while password.len() < PASSWORD_LENGTH {
        random_bytes(&mut buffer)?;
        // Rejection sampling keeps every character equally likely (248 = 4 * 62).
        for byte in buffer.iter().filter(|b| **b < 248) {
            if password.len() == PASSWORD_LENGTH {
                break;
            }
            password.push(char::from(ALPHABET[usize::from(*byte % 62)]));
        }
    }
    Ok(password)
}

/// `bytes` random bytes as lowercase hexadecimal (tokens that name something, not secrets).
pub fn random_hex(bytes: usize) -> Result<String, RandomnessError> {
    let mut buffer = vec![0u8; bytes];
    random_bytes(&mut buffer)?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// One key of a Secret as text (see [`secret_value`]: empty counts as absent); a value that is not UTF-8 is an
/// error that names the Secret and the key.
pub fn secret_text(secret: &Secret, key: &str) -> Result<Option<String>, NotUtf8> {
    secret_value(secret, key)
        .map(|bytes| {
            String::from_utf8(bytes).map_err(|_| NotUtf8 {
                secret: format!("{}/{}", secret.namespace().unwrap_or_default(), secret.name_any()),
                key: key.to_string(),
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn generated_passwords_are_long_alphanumeric_and_differ() {
        let first = generate_password().expect("random");
        let second = generate_password().expect("random");
        assert_eq!(first.len(), PASSWORD_LENGTH);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()), "{first}");
        assert_ne!(first, second);
        let token = random_hex(8).expect("random");
        assert_eq!(token.len(), 16);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    }

    #[test]
    fn a_secret_value_that_is_not_text_is_an_error_naming_the_secret_and_key_not_the_value() {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("redb-cache".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some(
                [
                    ("password".to_string(), ByteString(vec![0x68, 0xff, 0xfe, 0x32])),
                    ("username".to_string(), ByteString(b"admin".to_vec())),
                ]
                .into(),
            ),
            ..Default::default()
        };
        assert_eq!(secret_text(&secret, "username"), Ok(Some("admin".to_string())));
        assert_eq!(secret_text(&secret, "missing"), Ok(None));
        let error = secret_text(&secret, "password").expect_err("not UTF-8");
        assert_eq!(
            error.to_string(),
            "the value of key `password` in Secret ns/redb-cache is not UTF-8 text; store it as text (for example \
             with `kubectl create secret generic --from-literal`)"
        );
    }
}
