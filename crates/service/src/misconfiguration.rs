//! Failures to reach Redis or Postgres that retrying will not fix — an untrusted certificate,
//! refused credentials, an unknown host or database — told apart from an outage, with the
//! setting to change. A service keeps retrying either way (the operator may be fixing it), but
//! says so at `error`, counts it (`dependency_misconfigured_total`) and shows it in `/readyz`.

use std::{error::Error, fmt, time::Duration};

/// A service's dependency, named the way its settings name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// `REDIS_URL` and its companions.
    Redis,
    /// `DATABASE_URL`.
    Postgres,
}

impl Dependency {
    /// Its name in logs, metrics and `/readyz`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Redis => "redis",
            Dependency::Postgres => "postgres",
        }
    }
}

/// A failure retrying cannot fix: what is wrong, and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misconfiguration {
    /// Whose connection failed.
    pub dependency: Dependency,
    /// What is wrong and what to change, naming the setting.
    pub fix: &'static str,
}

impl fmt::Display for Misconfiguration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.fix)
    }
}

/// The kinds of failure this knows, as words that appear in the error's text (lower case),
/// and what each means for Redis and for Postgres (`None`: it cannot happen there).
type Known = (
    &'static [&'static str],
    Option<&'static str>,
    Option<&'static str>,
);

const KNOWN: &[Known] = &[
    (
        &["invalid peer certificate", "certificate verify failed"],
        Some(
            "Redis's TLS certificate is not trusted: set REDIS_CA_FILE to the CA that signed it, \
         and use a host in REDIS_URL that the certificate names",
        ),
        Some(
            "Postgres's TLS certificate is not trusted: set sslrootcert in DATABASE_URL to the CA \
         that signed it, and use a host that the certificate names",
        ),
    ),
    (
        &[
            "authenticationfailed",
            "wrongpass",
            "noauth",
            "password authentication failed",
            "no pg_hba.conf entry",
        ],
        Some(
            "Redis refused the credentials: check REDIS_USERNAME and REDIS_PASSWORD (or those in \
         REDIS_URL)",
        ),
        Some(
            "Postgres refused the credentials: check the user and password in DATABASE_URL (or \
         PGPASSWORD)",
        ),
    ),
    (
        &["role \"", "database \""],
        None,
        Some(
            "Postgres has no such role or database: check the user and the database name in \
         DATABASE_URL (or create them)",
        ),
    ),
    (
        &[
            "name or service not known",
            "no address associated with hostname",
            "nodename nor servname provided",
        ],
        Some("the host in REDIS_URL is unknown: check its name"),
        Some("the host in DATABASE_URL is unknown: check its name"),
    ),
];

/// Whether `error` (the text of an error and its sources, see [`text`]) is one that retrying
/// will not fix, and if so what to change. An outage, a timeout or a refused connection is not:
/// the dependency may simply not be up yet.
pub fn diagnose(dependency: Dependency, error: &str) -> Option<Misconfiguration> {
    let error = error.to_lowercase();
    // "role "x" does not exist" and "database "x" does not exist" name a missing object; a
    // role or database mentioned any other way is not this case.
    let names_missing = |word: &str| !word.ends_with('"') || error.contains("does not exist");
    KNOWN
        .iter()
        .filter(|(words, ..)| {
            words
                .iter()
                .any(|word| error.contains(word) && names_missing(word))
        })
        .find_map(|(_, redis, postgres)| match dependency {
            Dependency::Redis => *redis,
            Dependency::Postgres => *postgres,
        })
        .map(|fix| Misconfiguration { dependency, fix })
}

/// An error and its sources as one line, each cause once.
pub fn text(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let part = e.to_string();
        if !parts.iter().any(|p| p.contains(&part)) {
            parts.push(part);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// Logs one failed attempt to reach `dependency` while waiting for it, and says how long to
/// wait before the next: a misconfiguration at `error` with what to change, counted, and
/// retried every 5 s; anything else at `info`, retried every 0.5 s.
pub fn report_wait(dependency: Dependency, error: &str, waiting: &str) -> Duration {
    match diagnose(dependency, error) {
        Some(wrong) => {
            count(&wrong);
            tracing::error!(dependency = dependency.as_str(), fix = %wrong, %error, "{waiting}: retrying will not help until the settings change");
            Duration::from_secs(5)
        }
        None => {
            tracing::info!(dependency = dependency.as_str(), %error, "{waiting}");
            Duration::from_millis(500)
        }
    }
}

/// Counts a misconfiguration seen (`dependency_misconfigured_total{dependency}`).
pub fn count(wrong: &Misconfiguration) {
    metrics::counter!("dependency_misconfigured_total", "dependency" => wrong.dependency.as_str())
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors as the Redis and Postgres clients report them (recorded from real connections).
    #[test]
    fn what_retrying_cannot_fix_is_told_apart_from_an_outage() {
        use Dependency::{Postgres, Redis};
        let cases: &[(Dependency, &str, Option<&str>)] = &[
            (
                Redis,
                "invalid peer certificate: UnknownIssuer",
                Some("REDIS_CA_FILE"),
            ),
            (
                Redis,
                "invalid peer certificate: NotValidForName",
                Some("REDIS_CA_FILE"),
            ),
            (
                Redis,
                "Password authentication failed - AuthenticationFailed",
                Some("REDIS_PASSWORD"),
            ),
            (
                Redis,
                "WRONGPASS invalid username-password pair or user is disabled.",
                Some("REDIS_PASSWORD"),
            ),
            (
                Redis,
                "NOAUTH: Authentication required.",
                Some("REDIS_PASSWORD"),
            ),
            (
                Redis,
                "failed to lookup address information: Name or service not known",
                Some("host in REDIS_URL"),
            ),
            (
                Postgres,
                "error communicating with database: invalid peer certificate: UnknownIssuer",
                Some("sslrootcert"),
            ),
            (
                Postgres,
                "error returned from database: role \"nobody\" does not exist",
                Some("the user and the database name"),
            ),
            (
                Postgres,
                "error returned from database: database \"nodb\" does not exist",
                Some("the user and the database name"),
            ),
            (
                Postgres,
                "error returned from database: password authentication failed for user \"app\"",
                Some("PGPASSWORD"),
            ),
            (
                Postgres,
                "error communicating with database: failed to lookup address information: Name or service not known",
                Some("host in DATABASE_URL"),
            ),
            // Outages, and what may pass: not misconfigurations.
            (Redis, "Connection refused (os error 111)", None),
            (Redis, "timed out", None),
            (Redis, "Connection reset by peer (os error 104)", None),
            (
                Redis,
                "LOADING Redis is loading the dataset in memory",
                None,
            ),
            (
                Redis,
                "failed to lookup address information: Temporary failure in name resolution",
                None,
            ),
            (
                Postgres,
                "pool timed out while waiting for an open connection",
                None,
            ),
            (
                Postgres,
                "error returned from database: the database system is starting up",
                None,
            ),
            (
                Postgres,
                "error returned from database: relation \"x\" does not exist",
                None,
            ),
        ];
        for (dependency, error, fix) in cases {
            let found = diagnose(*dependency, error);
            match fix {
                Some(setting) => {
                    let found = found.unwrap_or_else(|| panic!("{error:?} is a misconfiguration"));
                    assert!(found.fix.contains(setting), "{error:?} → {found}");
                    assert_eq!(found.dependency, *dependency);
                }
                None => assert_eq!(found, None, "{error:?} may pass by itself"),
            }
        }
    }

    #[test]
    fn an_error_reads_as_one_line_each_cause_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "error communicating with database: {}", self.0)
            }
        }
        impl Error for Outer {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let inner = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert_eq!(
            text(&Outer(inner)),
            "error communicating with database: invalid peer certificate: UnknownIssuer"
        );
        let plain = std::io::Error::other("timed out");
        assert_eq!(text(&plain), "timed out");
    }
}
