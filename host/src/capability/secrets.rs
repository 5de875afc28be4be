//! `secrets`: named values from the host's environment or files, granted per tool. A value
//! reaches the tool and nothing else: results, errors and log messages are redacted.

use crate::bindings::moat::plugin::secrets::{Host, SecretError};
use crate::exec::CallState;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[secrets.NAME]`: where a secret's value comes from. Exactly one of `env` and `file`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// An environment variable of the moat process.
    pub env: Option<String>,
    /// A file whose content (without a trailing newline) is the value; relative to the
    /// config file.
    pub file: Option<PathBuf>,
}

/// Every configured secret source, by name.
#[derive(Clone, Debug, Default)]
pub struct SecretStore {
    sources: BTreeMap<String, SecretSource>,
}

/// Values shorter than this are not redacted: replacing every "ab" in an output would
/// destroy it and protect nothing. Configure real secrets.
pub const MIN_REDACTED_LEN: usize = 4;

impl SecretStore {
    pub fn new(sources: BTreeMap<String, SecretSource>) -> SecretStore {
        SecretStore { sources }
    }

    fn value(&self, name: &str) -> Result<String, String> {
        let source = self
            .sources
            .get(name)
            .ok_or_else(|| format!("secret `{name}` has no source in [secrets]"))?;
        let value = match (&source.env, &source.file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|_| format!("secret `{name}`: environment variable `{var}` is not set"))?,
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|e| format!("secret `{name}`: cannot read {}: {e}", file.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
            _ => return Err(format!("secret `{name}` needs exactly one of `env` and `file`")),
        };
        if value.is_empty() {
            return Err(format!("secret `{name}` is empty"));
        }
        Ok(value)
    }
}

/// The secret values one call has obtained, to redact wherever they would leave the tool.
#[derive(Clone, Default)]
pub struct Revealed {
    values: Vec<(String, String)>,
}

impl Revealed {
    /// `text` with every revealed value replaced by `[redacted:NAME]`.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (name, value) in &self.values {
            if value.len() >= MIN_REDACTED_LEN && text.contains(value.as_str()) {
                text = text.replace(value.as_str(), &format!("[redacted:{name}]"));
            }
        }
        text
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether `bytes` hold a revealed value.
    pub fn appears_in(&self, bytes: &[u8]) -> bool {
        self.values.iter().any(|(_, value)| {
            value.len() >= MIN_REDACTED_LEN
                && bytes.windows(value.len()).any(|window| window == value.as_bytes())
        })
    }
}

impl Host for CallState {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, SecretError>> {
        let caps = &mut self.caps;
        if !caps.grants.secrets.contains(&name) {
            return Ok(Err(SecretError::NotGranted(format!(
                "tool `{}` has no grant for secret `{name}`",
                caps.tool
            ))));
        }
        Ok(match caps.shared.secrets.value(&name) {
            Ok(value) => {
                if !caps.secrets.values.iter().any(|(n, _)| *n == name) {
                    caps.secrets.values.push((name, value.clone()));
                }
                Ok(value)
            }
            Err(reason) => Err(SecretError::Unavailable(reason)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revealed_values_are_redacted_by_name() {
        let revealed = Revealed { values: vec![("API_TOKEN".into(), "s3cr3t-value".into())] };
        assert_eq!(
            revealed.redact("token=s3cr3t-value;again s3cr3t-value"),
            "token=[redacted:API_TOKEN];again [redacted:API_TOKEN]"
        );
    }
}
