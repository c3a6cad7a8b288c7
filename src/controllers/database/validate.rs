//! Validate stage (no I/O): the raw REDB and what the dereference stage found → [`ValidatedState`]: the
//! validated database, its validated cluster (for Service naming and ports) and the password to use, taken from the
//! database Secret, or generated once when the Secret has none and the database does not exist yet. A database that
//! exists whose Secret (or its `password` key) is gone is refused: a new password would lock its clients out.

use std::fmt;

use kube::ResourceExt;

use super::dereference::{Blocked, References, database_secret_name};
use crate::api::RedisEnterpriseDatabase;
use crate::controllers::password::{NotUtf8, RandomnessError, generate_password, random_hex, secret_text};
use crate::manifests::Severity;
use crate::manifests::validate::{validate_cluster, validate_database};
use crate::model::{ValidatedCluster, ValidatedDatabase, names};

/// Where the default user's password comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// The database Secret's `password` key.
    FromSecret(String),
    /// Generated now because the Secret does not exist or has no password and the database does not exist yet; it
    /// is stored in the Secret before the database uses it, and never generated again.
    Generated(String),
    /// `defaultUser: false`: no password and no Secret.
    None,
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FromSecret(_) => "FromSecret(<redacted>)",
            Self::Generated(_) => "Generated(<redacted>)",
            Self::None => "None",
        })
    }
}

impl Password {
    /// The password, if the database has one.
    pub fn value(&self) -> Option<&str> {
        match self {
            Self::FromSecret(password) | Self::Generated(password) => Some(password),
            Self::None => None,
        }
    }
}

/// The validated inputs of the build stage.
#[derive(Debug)]
pub struct ValidatedState {
    /// The database, validated.
    pub database: ValidatedDatabase,
    /// Its cluster, validated; `None` when the REC's spec does not validate (the cluster controller reports that),
    /// in which case the builders use the official defaults.
    pub cluster: Option<ValidatedCluster>,
    /// The default user's password.
    pub password: Password,
    /// Warnings of the spec validation, one line each.
    pub warnings: Vec<String>,
    /// A random token naming this creation attempt (`status.pendingCreation.token`), drawn when the bdb does not
    /// exist; `None` otherwise.
    pub creation_token: Option<String>,
}

/// A REDB spec that does not validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSpec {
    /// One line per error: `field: message`.
    pub errors: Vec<String>,
}

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the spec is invalid: {}; fix the REDB", self.errors.join("; "))
    }
}

/// Why the validate stage stops the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The spec does not validate.
    Invalid(InvalidSpec),
    /// The database exists but its Secret has no password to give it (see the module doc).
    SecretMissing(Blocked),
    /// The database Secret's password is not UTF-8 text; the message names the Secret and key, never the value.
    SecretInvalid(Blocked),
    /// The random source failed drawing a password or creation token (never replaced by a weaker one).
    RandomnessFailed(Blocked),
}

impl Refused {
    /// As the blocked outcome the status reports.
    pub fn into_blocked(self) -> Blocked {
        match self {
            Self::Invalid(invalid) => Blocked {
                stalled: true,
                reason: "InvalidSpec",
                message: invalid.to_string(),
            },
            Self::SecretMissing(blocked) | Self::SecretInvalid(blocked) | Self::RandomnessFailed(blocked) => blocked,
        }
    }
}

/// The refusal for an existing database whose Secret has no `password`.
pub fn secret_missing(redb: &RedisEnterpriseDatabase, references: &References) -> Option<Blocked> {
    let bdb = references.bdb.as_ref()?;
    let namespace = redb.namespace().unwrap_or_else(|| "default".to_string());
    let secret_name = database_secret_name(redb);
    let what = if references.secret.is_some() {
        format!("its Secret {namespace}/{secret_name} has no key password")
    } else {
        format!("its Secret {namespace}/{secret_name} is missing")
    };
    Some(Blocked {
        stalled: true,
        reason: "DatabaseSecretMissing",
        message: format!(
            "database {} (uid {}) exists on cluster {} but {what}; restore the Secret {secret_name} (key password) \
             with the database's current password: a new password is never generated for a database that exists",
            bdb.name, bdb.uid, references.cluster_key
        ),
    })
}

/// Runs the validate stage.
pub fn validate(redb: &RedisEnterpriseDatabase, references: &References) -> Result<ValidatedState, Refused> {
    validate_with(redb, references, generate_password)
}

/// The refusal of a Secret password that is not text (the user has to fix the Secret).
fn secret_invalid(redb: &RedisEnterpriseDatabase, error: &NotUtf8) -> Refused {
    Refused::SecretInvalid(Blocked {
        stalled: true,
        reason: "DatabaseSecretInvalid",
        message: format!("unable to use the password of database {}: {error}", redb.name_any()),
    })
}

/// The refusal when the random source failed (waiting: it is retried at the resync).
fn randomness_failed(redb: &RedisEnterpriseDatabase, what: &str, error: &RandomnessError) -> Refused {
    Refused::RandomnessFailed(Blocked {
        stalled: false,
        reason: "RandomGenerationFailed",
        message: format!("failed to generate {what} for database {}: {error}", redb.name_any()),
    })
}

/// [`validate`] with the password generator as a parameter (tests pass a fixed one).
pub fn validate_with(
    redb: &RedisEnterpriseDatabase,
    references: &References,
    generate: impl FnOnce() -> Result<String, RandomnessError>,
) -> Result<ValidatedState, Refused> {
    let (database, issues) = validate_database(redb).map_err(|issues| {
        Refused::Invalid(InvalidSpec {
            errors: issues
                .iter()
                .filter(|issue| issue.severity == Severity::Error)
                .map(|issue| format!("{}: {}", issue.path, issue.message))
                .collect(),
        })
    })?;
    let warnings = issues
        .iter()
        .map(|issue| format!("{}: {}", issue.path, issue.message))
        .collect();
    let cluster = validate_cluster(&references.cluster).ok().map(|(cluster, _)| cluster);
    let service_problems = names::database_service_name_problems(&database, cluster.as_ref(), database.port);
    if !service_problems.is_empty() {
        return Err(Refused::Invalid(InvalidSpec {
            errors: service_problems
                .into_iter()
                .map(|problem| format!("metadata.name: {problem}"))
                .collect(),
        }));
    }
    let password = if !database.default_user {
        Password::None
    } else {
        let from_secret = match references.secret.as_ref() {
            Some(secret) => secret_text(secret, "password").map_err(|error| secret_invalid(redb, &error))?,
            None => None,
        };
        match from_secret {
            Some(password) => Password::FromSecret(password),
            None => match secret_missing(redb, references) {
                Some(blocked) => return Err(Refused::SecretMissing(blocked)),
                None => Password::Generated(generate().map_err(|error| randomness_failed(redb, "a password", &error))?),
            },
        }
    };
    let creation_token = match references.bdb {
        Some(_) => None,
        None => Some(random_hex(8).map_err(|error| randomness_failed(redb, "a creation token", &error))?),
    };
    Ok(ValidatedState {
        database,
        cluster,
        password,
        warnings,
        creation_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_secret_and_key_but_never_the_value() {
        let redb: RedisEnterpriseDatabase = serde_json::from_value(serde_json::json!({
            "apiVersion": "app.redislabs.com/v1alpha1", "kind": "RedisEnterpriseDatabase",
            "metadata": {"name": "cache", "namespace": "ns"}, "spec": {}
        }))
        .expect("redb");
        let error = NotUtf8 {
            secret: "ns/redb-cache".into(),
            key: "password".into(),
        };
        assert_eq!(
            secret_invalid(&redb, &error).into_blocked(),
            Blocked {
                stalled: true,
                reason: "DatabaseSecretInvalid",
                message: "unable to use the password of database cache: the value of key `password` in Secret \
                          ns/redb-cache is not UTF-8 text; store it as text (for example with `kubectl create secret \
                          generic --from-literal`)"
                    .into(),
            }
        );
        let failed = randomness_failed(
            &redb,
            "a password",
            &RandomnessError {
                reason: "no entropy".into(),
            },
        );
        assert_eq!(
            failed.into_blocked(),
            Blocked {
                stalled: false,
                reason: "RandomGenerationFailed",
                message: "failed to generate a password for database cache: the operating system's random generator \
                          failed: no entropy"
                    .into(),
            }
        );
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let debug = format!("{:?}", Password::FromSecret("hunter2".into()));
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
