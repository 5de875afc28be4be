//! `secrets`: named values from the host's environment or files, granted per tool. A value
//! reaches the tool and nothing else: whatever a tool controls that leaves the call (its
//! output, errors, log messages, the effects and undo images in the audit log) is redacted of
//! every value moat has loaded for any call, in every form [`redact`] looks for.
//!
//! Every configured secret is loaded when the host starts, and a call's granted secrets again
//! when it starts (so that they are redacted even if the tool never asks for them, say when
//! it reads back a value it stashed in an earlier call); `get` answers from that snapshot.
//! Every value loaded is remembered for the life of the host ([`REMEMBERED`] per secret), so
//! that a value another tool stashed, or one since rotated, is still redacted. A secret that
//! cannot be loaded does not refuse the call: no call can have it from moat now, and a value
//! it had before is remembered; the tool hears why if it asks for it (logged once).

use crate::capability::bindings::moat::plugin::secrets::{Host, SecretError};
use crate::capability::CapsView;
use crate::capability::{Capability, Caps, HasCaps};
pub use crate::redact::{redactor as redact, Redactor, Revealed, MIN_REDACTED_LEN};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wasmtime::component::Linker;

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

/// Distinct values remembered per secret, newest kept: a secret rotated more often than
/// this in one run of moat has its oldest values forgotten.
pub const REMEMBERED: usize = 16;

/// Every configured secret source, by name, and every value loaded so far.
#[derive(Default)]
pub struct SecretStore {
    sources: BTreeMap<String, SecretSource>,
    known: Mutex<Known>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore").field("sources", &self.sources).finish_non_exhaustive()
    }
}

/// The values loaded so far, and the redactor of all of them.
#[derive(Default)]
struct Known {
    /// Per secret, oldest first.
    values: BTreeMap<String, VecDeque<String>>,
    redactor: Arc<Redactor>,
    /// Secrets whose failure to load was logged (once each).
    warned: BTreeSet<String>,
}

impl Known {
    /// Remembers `value` of `name`; true if it was new.
    fn remember(&mut self, name: &str, value: &str) -> bool {
        let values = self.values.entry(name.to_owned()).or_default();
        if values.iter().any(|known| known == value) {
            return false;
        }
        values.push_back(value.to_owned());
        if values.len() > REMEMBERED {
            values.pop_front();
        }
        true
    }
}

impl SecretStore {
    /// The store of `sources`, each loaded once now: from the first call on, every value is
    /// redacted from every tool, granted it or not.
    pub fn new(sources: BTreeMap<String, SecretSource>) -> SecretStore {
        let store = SecretStore { sources, known: Mutex::default() };
        let names: Vec<String> = store.sources.keys().cloned().collect();
        store.for_call(&names);
        store
    }

    /// What a call of a tool granted `granted` starts with: each of those secrets loaded now
    /// (its value, or why it could not be), and the redactor of every value known, these
    /// included.
    pub fn for_call(&self, granted: &[String]) -> Revealed {
        if granted.is_empty() {
            let known = self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            return Revealed::new(Vec::new(), known.redactor.clone());
        }
        let values: Vec<(String, Result<String, String>)> =
            granted.iter().map(|name| (name.clone(), self.value(name))).collect();
        let mut known = self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut new = false;
        for (name, value) in &values {
            match value {
                Ok(value) => new |= known.remember(name, value),
                Err(reason) => {
                    if known.warned.insert(name.clone()) {
                        tracing::warn!("{reason}: a tool granted it gets none");
                    }
                }
            }
        }
        if new {
            let all: Vec<(String, String)> = known
                .values
                .iter()
                .flat_map(|(name, values)| values.iter().map(|v| (name.clone(), v.clone())))
                .collect();
            known.redactor = Arc::new(Redactor::new(&all));
        }
        Revealed::new(values, known.redactor.clone())
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

/// The `secrets` capability.
pub(crate) struct Secrets;

impl Capability for Secrets {
    const INTERFACE: &'static str = "moat:plugin/secrets@0.1.0";
    type Grant = Vec<String>;
    type Call = ();

    fn add_to_linker<T: HasCaps>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        crate::capability::bindings::moat::plugin::secrets::add_to_linker::<T, Caps>(
            linker,
            T::caps,
        )
    }
}

impl Host for CapsView<'_> {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, SecretError>> {
        let caps = &mut self.caps;
        if !caps.grants.secrets.contains(&name) {
            return Ok(Err(SecretError::NotGranted(format!(
                "tool `{}` has no grant for secret `{name}`",
                caps.tool
            ))));
        }
        // Only a value loaded at the start of the call, and so redacted, is handed out.
        Ok(match caps.secrets.value(&name) {
            Some(Ok(value)) => Ok(value.clone()),
            Some(Err(reason)) => Err(SecretError::Unavailable(reason.clone())),
            None => Err(SecretError::Unavailable(format!(
                "secret `{name}` was not loaded at the start of the call"
            ))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revealed_values_are_redacted_by_name() {
        let revealed = Revealed::of(&[("API_TOKEN".into(), "s3cr3t-value".into())]);
        assert_eq!(
            revealed.redact("token=s3cr3t-value;again s3cr3t-value"),
            "token=[redacted:API_TOKEN];again [redacted:API_TOKEN]"
        );
    }

    #[test]
    fn every_value_loaded_is_remembered_and_redacted_in_later_calls_of_any_tool() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first-value\n").unwrap();
        let sources = BTreeMap::from([(
            "TOKEN".to_owned(),
            SecretSource { env: None, file: Some(file.clone()) },
        )]);
        let store = SecretStore::new(sources);
        // Loaded at the start: redacted from a tool that is not granted it.
        assert_eq!(store.for_call(&[]).redact("a first-value"), "a [redacted:TOKEN]");
        let first = store.for_call(&["TOKEN".to_owned()]);
        assert_eq!(first.redact("a first-value"), "a [redacted:TOKEN]");
        std::fs::write(&file, "second-value").unwrap();
        store.for_call(&["TOKEN".to_owned()]);
        std::fs::remove_file(&file).unwrap();
        // Neither granted nor loadable now: both values are still redacted.
        let later = store.for_call(&["TOKEN".to_owned()]);
        assert_eq!(later.redact("first-value second-value"), "[redacted:TOKEN] [redacted:TOKEN]");
        assert_eq!(store.for_call(&[]).redact("second-value"), "[redacted:TOKEN]");
        assert!(format!("{later:?}").contains("TOKEN") && !format!("{later:?}").contains("value"));
    }
}
