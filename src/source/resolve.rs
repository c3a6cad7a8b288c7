//! Choosing the commit to follow from the refs a remote advertises: branch, tag (peeled), semver range over
//! tags (Flux/Masterminds range syntax translated to the `semver` crate), full ref name or exact commit.

use std::fmt;

use super::config::GitRef;
use super::error::SourceError;

/// A revision in Flux's format: `main@sha1:<40 hex>`, `v1.2.3@sha1:<40 hex>`, or `sha1:<40 hex>` for a bare
/// commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revision {
    /// Short branch or tag name (`main`, `v1.2.3`), full ref for `GitRef::Name`, `None` for an exact commit.
    pub ref_name: Option<String>,
    /// The commit, 40 lowercase hex digits.
    pub commit: String,
}

impl Revision {
    /// Parses `<ref>@sha1:<hex>`, `sha1:<hex>` and the legacy `<ref>/<hex>` form Flux used before v1.
    pub fn parse(text: &str) -> Option<Revision> {
        let is_commit = |hex: &str| hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if let Some((name, hex)) = text.rsplit_once("@sha1:") {
            return (is_commit(hex) && !name.is_empty()).then(|| Revision {
                ref_name: Some(name.to_string()),
                commit: hex.to_ascii_lowercase(),
            });
        }
        if let Some(hex) = text.strip_prefix("sha1:") {
            return is_commit(hex).then(|| Revision {
                ref_name: None,
                commit: hex.to_ascii_lowercase(),
            });
        }
        let (name, hex) = text.rsplit_once('/')?;
        (is_commit(hex) && !name.is_empty()).then(|| Revision {
            ref_name: Some(name.to_string()),
            commit: hex.to_ascii_lowercase(),
        })
    }

    /// The first 7 hex digits, for short status messages.
    pub fn short_commit(&self) -> &str {
        self.commit.get(..7).unwrap_or(&self.commit)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ref_name {
            Some(name) => write!(f, "{name}@sha1:{}", self.commit),
            None => write!(f, "sha1:{}", self.commit),
        }
    }
}

/// One ref the remote advertised.
#[derive(Debug, Clone)]
pub(crate) struct AdvertisedRef {
    /// Full name (`refs/heads/main`, `refs/tags/v1^{}`).
    pub name: String,
    /// The object it points to.
    pub oid: git2::Oid,
}

/// What to fetch and how to name the result.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The name in the revision string.
    pub ref_name: Option<String>,
    /// The full remote ref to fetch (`None` for an exact commit).
    pub remote_ref: Option<String>,
    /// The object the ref points at: a commit, or an annotated tag when the remote did not advertise the peeled
    /// commit.
    pub oid: git2::Oid,
}

/// Picks the ref from the advertisement.
pub(crate) fn resolve(reference: &GitRef, refs: &[AdvertisedRef], url: &str) -> Result<Resolved, SourceError> {
    let not_found = |detail: String| SourceError::RefNotFound {
        url: url.to_string(),
        reference: reference.to_string(),
        detail,
    };
    let lookup = |full: &str| {
        refs.iter()
            .find(|advertised| advertised.name == full)
            .map(|found| found.oid)
    };
    match reference {
        GitRef::Branch(branch) => {
            let short = branch.strip_prefix("refs/heads/").unwrap_or(branch);
            let full = format!("refs/heads/{short}");
            let oid = lookup(&full).ok_or_else(|| not_found(String::new()))?;
            Ok(Resolved {
                ref_name: Some(short.to_string()),
                remote_ref: Some(full),
                oid,
            })
        }
        GitRef::Tag(tag) => {
            let short = tag.strip_prefix("refs/tags/").unwrap_or(tag);
            resolve_tag(short, &lookup).ok_or_else(|| not_found(String::new()))
        }
        GitRef::Name(name) => {
            let oid = lookup(&format!("{name}^{{}}"))
                .or_else(|| lookup(name))
                .ok_or_else(|| not_found(String::new()))?;
            Ok(Resolved {
                ref_name: Some(name.clone()),
                remote_ref: Some(name.clone()),
                oid,
            })
        }
        GitRef::Semver(range) => {
            let requirement = parse_range(range).map_err(|reason| SourceError::InvalidRef {
                reference: reference.to_string(),
                reason,
            })?;
            let mut best: Option<(semver::Version, &str)> = None;
            let mut tag_count = 0usize;
            for advertised in refs {
                let Some(tag) = advertised.name.strip_prefix("refs/tags/") else {
                    continue;
                };
                if tag.ends_with("^{}") {
                    continue;
                }
                tag_count += 1;
                let Ok(version) = semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)) else {
                    continue;
                };
                if requirement.matches(&version) && best.as_ref().is_none_or(|(top, _)| version > *top) {
                    best = Some((version, tag));
                }
            }
            let (_, tag) = best.ok_or_else(|| {
                not_found(format!(
                    ": none of the remote's {tag_count} tags is a version in that range"
                ))
            })?;
            resolve_tag(tag, &lookup).ok_or_else(|| not_found(String::new()))
        }
        GitRef::Commit(commit) => {
            let oid = parse_commit(commit).map_err(|reason| SourceError::InvalidRef {
                reference: reference.to_string(),
                reason,
            })?;
            Ok(Resolved {
                ref_name: None,
                remote_ref: None,
                oid,
            })
        }
    }
}

fn resolve_tag(short: &str, lookup: &dyn Fn(&str) -> Option<git2::Oid>) -> Option<Resolved> {
    let full = format!("refs/tags/{short}");
    let oid = lookup(&format!("{full}^{{}}")).or_else(|| lookup(&full))?;
    Some(Resolved {
        ref_name: Some(short.to_string()),
        remote_ref: Some(full),
        oid,
    })
}

/// An exact commit must be 40 hex digits: a short hash cannot be resolved without the whole history.
pub(crate) fn parse_commit(commit: &str) -> Result<git2::Oid, String> {
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("a commit must be the full 40 hex digit SHA-1".to_string());
    }
    git2::Oid::from_str(commit).map_err(|error| error.message().to_string())
}

/// A parsed range: any of the alternatives (`||`) matches.
#[derive(Debug)]
pub(crate) struct Range(Vec<semver::VersionReq>);

impl Range {
    fn matches(&self, version: &semver::Version) -> bool {
        self.0.iter().any(|requirement| requirement.matches(version))
    }
}

/// Translates a Masterminds range (Flux's syntax) into `semver` requirements: `||` alternatives, comparators
/// separated by spaces or commas, `x`/`X` wildcards, hyphen ranges, and a bare version meaning exactly that
/// version (Masterminds) rather than a caret range (Cargo).
pub(crate) fn parse_range(range: &str) -> Result<Range, String> {
    let mut alternatives = Vec::new();
    for alternative in range.split("||") {
        let tokens: Vec<&str> = alternative
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|token| !token.is_empty())
            .collect();
        let mut comparators: Vec<String> = Vec::new();
        let mut index = 0;
        while index < tokens.len() {
            if tokens.get(index + 1) == Some(&"-") {
                let (Some(low), Some(high)) = (tokens.get(index), tokens.get(index + 2)) else {
                    return Err(format!("incomplete hyphen range in '{range}'"));
                };
                comparators.push(format!(">={}", normalize_version(low)));
                comparators.push(format!("<={}", normalize_version(high)));
                index += 3;
                continue;
            }
            let token = tokens[index];
            // Masterminds accepts "> 1.2" with a space; join a lone operator with the next token.
            let token = if matches!(token, ">" | ">=" | "<" | "<=" | "=" | "~" | "^" | "!=") {
                index += 1;
                let Some(next) = tokens.get(index) else {
                    return Err(format!("operator '{token}' without a version in '{range}'"));
                };
                format!("{token}{next}")
            } else {
                token.to_string()
            };
            comparators.push(normalize_comparator(&token)?);
            index += 1;
        }
        if comparators.is_empty() {
            return Err(format!("empty alternative in '{range}'"));
        }
        let text = comparators.join(", ");
        let requirement =
            semver::VersionReq::parse(&text).map_err(|error| format!("'{range}' is not a semver range: {error}"))?;
        alternatives.push(requirement);
    }
    Ok(Range(alternatives))
}

fn normalize_version(version: &str) -> String {
    let version = version.strip_prefix('v').unwrap_or(version);
    version.replace(['x', 'X'], "*")
}

fn normalize_comparator(token: &str) -> Result<String, String> {
    if token == "!=" || token.starts_with("!=") {
        return Err("'!=' comparators are not supported".to_string());
    }
    let operator_end = token
        .find(|c: char| c.is_ascii_alphanumeric() || c == '*')
        .ok_or_else(|| format!("'{token}' has no version"))?;
    let (operator, version) = token.split_at(operator_end);
    let version = normalize_version(version);
    let operator = match operator {
        // Masterminds: a bare version means that version exactly (with wildcards, the matching versions).
        "" if version.contains('*') => "",
        "" => "=",
        other => other,
    };
    Ok(format!("{operator}{version}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> semver::Version {
        semver::Version::parse(text).unwrap()
    }

    #[test]
    fn masterminds_ranges_translate() {
        let range = parse_range(">=1.0.0 <2.0.0").unwrap();
        assert!(range.matches(&version("1.9.3")) && !range.matches(&version("2.0.0")));
        let range = parse_range("1.2.x").unwrap();
        assert!(range.matches(&version("1.2.9")) && !range.matches(&version("1.3.0")));
        let range = parse_range("1.2.3").unwrap();
        assert!(range.matches(&version("1.2.3")) && !range.matches(&version("1.2.4")));
        let range = parse_range("~1.2 || ^3").unwrap();
        assert!(range.matches(&version("1.2.7")) && range.matches(&version("3.4.0")));
        assert!(!range.matches(&version("2.0.0")));
        let range = parse_range("1.2 - 1.4.5").unwrap();
        assert!(range.matches(&version("1.4.5")) && !range.matches(&version("1.4.6")));
        let range = parse_range("> 1.0, < 1.5").unwrap();
        assert!(range.matches(&version("1.4.0")));
        assert!(parse_range("banana").is_err());
    }

    #[test]
    fn revision_formats_round_trip() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        for text in [
            format!("main@sha1:{commit}"),
            format!("sha1:{commit}"),
            format!("v1.2.3@sha1:{commit}"),
        ] {
            assert_eq!(Revision::parse(&text).unwrap().to_string(), text);
        }
        let legacy = Revision::parse(&format!("master/{commit}")).unwrap();
        assert_eq!(legacy.to_string(), format!("master@sha1:{commit}"));
        assert!(Revision::parse("main@sha1:abc").is_none());
    }

    #[test]
    fn semver_picks_highest_matching_tag_and_prefers_peeled() {
        let oid = |n: u8| git2::Oid::from_bytes(&[n; 20]).unwrap();
        let refs = vec![
            AdvertisedRef {
                name: "refs/tags/v1.2.0".into(),
                oid: oid(1),
            },
            AdvertisedRef {
                name: "refs/tags/v1.10.0".into(),
                oid: oid(2),
            },
            AdvertisedRef {
                name: "refs/tags/v1.10.0^{}".into(),
                oid: oid(3),
            },
            AdvertisedRef {
                name: "refs/tags/v2.0.0".into(),
                oid: oid(4),
            },
            AdvertisedRef {
                name: "refs/tags/not-a-version".into(),
                oid: oid(5),
            },
        ];
        let resolved = resolve(&GitRef::Semver("^1".into()), &refs, "u").unwrap();
        assert_eq!(resolved.ref_name.as_deref(), Some("v1.10.0"));
        assert_eq!(resolved.oid, oid(3));
        let error = resolve(&GitRef::Semver(">=3".into()), &refs, "u").unwrap_err();
        assert_eq!(error.category(), "RefNotFound");
        assert!(error.to_string().contains("4 tags"), "{error}");
    }
}
