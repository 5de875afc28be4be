//! `moat.toml`: where plugins live, default per-call budgets and per-tool overrides.
//!
//! Every table denies unknown keys: a typo in a limit is an error naming the key, never a
//! silently different sandbox. With no file at all, [`Config::default`] lets everything run.

mod serve;

pub use serve::{AdminConfig, Auth, ServeConfig};

use crate::audit::AuditConfig;
use crate::budget::{BudgetOverrides, Budgets};
use crate::call::Stakes;
use crate::capability::secrets::SecretSource;
use crate::capability::{resolve, Grants};
use crate::controls::alert::AlertConfig;
use crate::controls::breaker::BreakerConfig;
use crate::controls::loops::LoopConfig;
use crate::controls::task_budget::TaskBudgets;
use crate::controls::tokens::TokenizerKind;
use crate::controls::window::WindowConfig;
use crate::error::ConfigError;
use crate::escalation::EscalationConfig;
pub use crate::guard::confidence::ConfidenceConfig;
use crate::guard::facts::FactSource;
use crate::guard::PolicyConfig;
pub use crate::plugin::OnPolicyError;
pub use crate::plugin::PluginDirs;
pub use crate::runtime::engine::EngineConfig;
use crate::units::ByteSize;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub plugins: PluginDirs,
    /// Default budgets of every call.
    #[serde(default)]
    pub budgets: Budgets,
    /// Settings of single tools, by tool name.
    #[serde(default)]
    pub tools: BTreeMap<String, ToolConfig>,
    /// Where moat keeps its own state (the kv store); relative to this file.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Secret sources, by name; tools are granted them by name.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Settings of single policies, by file name without `.wasm`.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyConfig>,
    /// Ground-truth sources guards may read, by name.
    #[serde(default)]
    pub facts: BTreeMap<String, FactSource>,
    /// Confidence the agent must give for calls of each stakes, or they escalate.
    #[serde(default)]
    pub confidence: ConfidenceConfig,
    /// How a person is asked when a call escalates.
    #[serde(default)]
    pub escalation: EscalationConfig,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Circuit breakers per tool and per task.
    #[serde(default)]
    pub breakers: BreakerConfig,
    /// Loop detection per session.
    #[serde(default)]
    pub loops: LoopConfig,
    /// How a person hears of a breaker opening, a task stopped, a loop, a budget exhausted.
    #[serde(default)]
    pub alerts: AlertConfig,
    /// Budgets of a whole task: calls, tokens, fuel, wall time.
    #[serde(default)]
    pub task: TaskBudgets,
    /// `[limits.principal]`: per caller, over the last hour and day, whatever the task.
    #[serde(default)]
    pub limits: crate::controls::principal::LimitsConfig,
    /// Outputs over this many tokens are returned a window at a time.
    #[serde(default)]
    pub window: WindowConfig,
    /// The tokenizer that counts output tokens: `o200k_base` (default) or `cl100k_base`.
    #[serde(default)]
    pub tokenizer: TokenizerKind,
    /// Compiled components kept on disk between starts.
    #[serde(default)]
    pub compile_cache: CompileCacheConfig,
    /// How instances are allocated.
    #[serde(default)]
    pub engine: EngineConfig,
    /// Who may reach `moat serve --http`.
    #[serde(default)]
    pub serve: ServeConfig,
    /// The admin HTTP server of `moat serve`: approvals, metrics, health.
    #[serde(default)]
    pub admin: AdminConfig,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            plugins: PluginDirs::default(),
            budgets: Budgets::default(),
            tools: BTreeMap::new(),
            state_dir: default_state_dir(),
            secrets: BTreeMap::new(),
            policies: BTreeMap::new(),
            facts: BTreeMap::new(),
            confidence: ConfidenceConfig::default(),
            escalation: EscalationConfig::default(),
            audit: AuditConfig::default(),
            breakers: BreakerConfig::default(),
            loops: LoopConfig::default(),
            alerts: AlertConfig::default(),
            task: TaskBudgets::default(),
            limits: crate::controls::principal::LimitsConfig::default(),
            window: WindowConfig::default(),
            tokenizer: TokenizerKind::default(),
            compile_cache: CompileCacheConfig::default(),
            engine: EngineConfig::default(),
            serve: ServeConfig::default(),
            admin: AdminConfig::default(),
        }
    }
}

/// `[compile_cache]`: where compiled components are kept between starts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompileCacheConfig {
    /// Off: every start compiles every component (seconds for a Python or JS one).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The directory (owner-only); default `STATE_DIR/compiled`.
    pub dir: Option<PathBuf>,
    /// At start, entries used least recently are removed until the rest fit; default 2 GiB.
    #[serde(default = "default_cache_size")]
    pub max_size: ByteSize,
}

impl Default for CompileCacheConfig {
    fn default() -> CompileCacheConfig {
        CompileCacheConfig { enabled: true, dir: None, max_size: default_cache_size() }
    }
}

fn default_cache_size() -> ByteSize {
    ByteSize::mib(2048)
}

fn yes() -> bool {
    true
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(".moat")
}

/// Settings of one tool.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// Replaces fields of the default budgets for this tool.
    #[serde(default)]
    pub budgets: BudgetOverrides,
    /// Capabilities granted to this tool; nothing by default.
    #[serde(default)]
    pub grants: Grants,
    /// Overrides the stakes the tool declares (or that its effects imply).
    pub stakes: Option<Stakes>,
}

impl Config {
    /// The escalation channel of a host with this configuration: `[escalation]`, where
    /// `auto` also means the approval queue when the admin server (`[admin] http`) serves it.
    pub fn escalator(&self) -> Result<std::sync::Arc<dyn crate::call::Escalator>, String> {
        let mut escalation = self.escalation.clone();
        if escalation.channel == crate::escalation::Channel::Auto && self.admin.http.is_some() {
            escalation.channel = crate::escalation::Channel::Queue;
        }
        crate::admin::escalator(&escalation, &self.state_dir)
    }

    /// Parses `text`; `origin` names the file in errors, and relative plugin directories are
    /// resolved against its parent directory.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.to_owned(),
            message: crate::error::one_line(&e),
        })?;
        config.plugins.policies_named = toml::from_str::<toml::Table>(text)
            .is_ok_and(|table| table.get("plugins").and_then(|p| p.get("policies")).is_some());
        let base = origin.parent().unwrap_or(Path::new(""));
        for dir in &mut config.plugins.tools {
            *dir = resolve(base, dir);
        }
        config.plugins.policies = resolve(base, &config.plugins.policies);
        config.plugins.lockfile = resolve(base, &config.plugins.lockfile);
        config.state_dir = resolve(base, &config.state_dir);
        config.alerts.check().map_err(|e| ConfigError::Invalid {
            path: origin.to_owned(),
            message: format!("[alerts]: {e}"),
        })?;
        let paths = [
            &mut config.audit.dir,
            &mut config.audit.key,
            &mut config.alerts.log,
            &mut config.compile_cache.dir,
        ];
        for path in paths.into_iter().flatten() {
            *path = resolve(base, path);
        }
        for source in config.secrets.values_mut() {
            if let Some(file) = &mut source.file {
                *file = resolve(base, file);
            }
        }
        for tool in config.tools.values_mut() {
            tool.grants.resolve_paths(base);
        }
        for source in config.facts.values_mut() {
            source.resolve_paths(base);
        }
        Ok(config)
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(&text, path)
    }

    /// The alert log: `[alerts] log`, or `STATE_DIR/alerts.jsonl`.
    pub fn alert_log(&self) -> PathBuf {
        self.alerts.log.clone().unwrap_or_else(|| self.state_dir.join("alerts.jsonl"))
    }

    /// The compile cache's directory, if it is on: `[compile_cache] dir`, or
    /// `STATE_DIR/compiled`.
    pub fn compile_cache_dir(&self) -> Option<PathBuf> {
        let cache = &self.compile_cache;
        cache.enabled.then(|| cache.dir.clone().unwrap_or_else(|| self.state_dir.join("compiled")))
    }

    /// The budgets of one call of `tool`: the defaults with the tool's overrides applied.
    pub fn budgets_for(&self, tool: &str) -> Budgets {
        match self.tools.get(tool) {
            Some(settings) => self.budgets.with(&settings.budgets),
            None => self.budgets,
        }
    }

    /// The largest table any tool or policy may have, by its budgets: what the instance
    /// pool must make room for.
    pub fn largest_table(&self) -> u32 {
        let tools = self.tools.values().filter_map(|tool| tool.budgets.table_elements);
        let policies = self.policies.values().filter_map(|policy| policy.budgets.table_elements);
        let guards = crate::guard::default_guard_budgets().table_elements;
        tools.chain(policies).fold(self.budgets.table_elements.max(guards), u32::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{ByteSize, Millis};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("conf/moat.toml"))
    }

    #[test]
    fn an_empty_file_means_embedded_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.budgets, Budgets::default());
        assert_eq!(config.plugins.tools, vec![PathBuf::from("conf/tools")]);
    }

    #[test]
    fn budgets_accept_units_and_per_tool_overrides() {
        let config = parse(
            r#"
            [budgets]
            fuel = 5_000
            memory = "8 MiB"
            wall_time = "1.5s"

            [tools.csv_stats.budgets]
            output = "4 KiB"
            "#,
        )
        .unwrap();
        let budgets = config.budgets_for("csv_stats");
        assert_eq!(budgets.fuel, 5_000);
        assert_eq!(budgets.memory, ByteSize::mib(8));
        assert_eq!(budgets.wall_time, Millis(1500));
        assert_eq!(budgets.output, ByteSize::kib(4));
        assert_eq!(config.budgets_for("echo").output, Budgets::default().output);
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_key_and_the_line() {
        let error = parse("[budgets]\nfule = 10\n").unwrap_err().to_string();
        assert!(error.contains("conf/moat.toml"), "{error}");
        assert!(error.contains("unknown field `fule`"), "{error}");
        assert!(error.contains("line 2"), "{error}");
    }

    #[test]
    fn a_bad_unit_is_an_error_naming_the_value() {
        let error = parse("[budgets]\nmemory = \"3 parsecs\"\n").unwrap_err().to_string();
        assert!(error.contains("unknown unit `parsecs`"), "{error}");
    }

    #[test]
    fn a_typo_in_a_tool_override_is_an_error() {
        let error = parse("[tools.echo.budgets]\nfeul = 1\n").unwrap_err().to_string();
        assert!(error.contains("unknown field `feul`"), "{error}");
    }
}
