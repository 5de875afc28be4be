//! The registry: every plugin loaded from the tool directories, and which plugin serves
//! which tool name.

use crate::budget::Budgets;
use crate::error::{LoadError, LoadProblem};
use crate::plugin::watch::component_files;
use crate::plugin::{read_component, Plugin, ToolSpec};
use crate::runtime::exec::Runtime;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Loaded plugins, by tool name.
#[derive(Default)]
pub struct Registry {
    plugins: Vec<Arc<Plugin>>,
    /// Tool name to (index in `plugins`, index in that plugin's `tools`).
    tools: BTreeMap<String, (usize, usize)>,
}

/// What serves a tool a call names.
#[derive(Clone, Copy)]
pub(crate) enum Found<'a> {
    Plugin(&'a Arc<Plugin>, &'a ToolSpec),
    Builtin(super::builtin::Builtin),
}

impl<'a> Found<'a> {
    pub fn spec(self) -> &'a ToolSpec {
        match self {
            Found::Plugin(_, spec) => spec,
            Found::Builtin(builtin) => builtin.spec(),
        }
    }

    /// The component that runs it, unless moat does.
    pub fn plugin(self) -> Option<&'a Arc<Plugin>> {
        match self {
            Found::Plugin(plugin, _) => Some(plugin),
            Found::Builtin(_) => None,
        }
    }
}

impl Registry {
    /// Loads every `*.wasm` file of `dirs`, each directory in file-name order. A file that
    /// cannot be loaded is reported and left out: its tools do not exist for callers.
    pub(crate) fn load(
        runtime: &Runtime,
        dirs: &[PathBuf],
        budgets: &Budgets,
    ) -> (Registry, Vec<LoadError>) {
        Registry::default().reload(runtime, dirs, budgets)
    }

    /// Loads `dirs` again: new files are added, replaced ones reloaded, removed ones gone. A
    /// file that no longer loads keeps its previous version in force (if it had one), and
    /// is reported. When to reload is for `watch.rs` to say (`Host::reload_tools_if_changed`).
    pub(crate) fn reload(
        &self,
        runtime: &Runtime,
        dirs: &[PathBuf],
        budgets: &Budgets,
    ) -> (Registry, Vec<LoadError>) {
        let mut registry = Registry::default();
        let mut errors = Vec::new();
        for dir in dirs {
            let files = match component_files(dir) {
                Ok(files) => files,
                // A directory that cannot be read keeps what it had.
                Err(error) => {
                    errors.push(error);
                    let kept = self.plugins.iter().filter(|p| p.path.parent() == Some(dir));
                    for plugin in kept {
                        registry.add_loaded(plugin.clone(), &mut errors);
                    }
                    continue;
                }
            };
            for file in files {
                let previous = self.plugins.iter().find(|p| p.path == file);
                let max = runtime.compiler.max_component_size;
                let unchanged = previous.filter(|p| {
                    read_component(&file, max).is_ok_and(|bytes| blake3::hash(&bytes) == p.hash)
                });
                if let Some(plugin) = unchanged {
                    registry.add_loaded(plugin.clone(), &mut errors);
                    continue;
                }
                match Plugin::load(runtime, &file, budgets) {
                    Ok(plugin) => registry.add_loaded(Arc::new(plugin), &mut errors),
                    Err(error) => {
                        errors.push(error);
                        if let Some(old) = previous {
                            registry.add_loaded(old.clone(), &mut errors);
                        }
                    }
                }
            }
        }
        (registry, errors)
    }

    /// Adds `plugin`, refusing it whole (reported in `errors`) if one of its tool names is
    /// taken.
    fn add_loaded(&mut self, plugin: Arc<Plugin>, errors: &mut Vec<LoadError>) {
        if let Err(error) = self.check_names(&plugin) {
            errors.push(error);
            return;
        }
        self.insert(plugin);
    }

    /// Refuses a plugin offering a reserved tool name or one another plugin has.
    fn check_names(&self, plugin: &Plugin) -> Result<(), LoadError> {
        for tool in &plugin.tools {
            if super::builtin::Builtin::named(&tool.name).is_some() {
                let problem = LoadProblem::ReservedTool(tool.name.clone());
                return Err(LoadError { path: plugin.path.clone(), problem });
            }
            if let Some(&(other, _)) = self.tools.get(&tool.name) {
                return Err(LoadError {
                    path: plugin.path.clone(),
                    problem: LoadProblem::DuplicateTool {
                        tool: tool.name.clone(),
                        other: self.plugins[other].path.clone(),
                    },
                });
            }
        }
        Ok(())
    }

    fn insert(&mut self, plugin: Arc<Plugin>) {
        let index = self.plugins.len();
        for (position, tool) in plugin.tools.iter().enumerate() {
            self.tools.insert(tool.name.clone(), (index, position));
        }
        self.plugins.push(plugin);
    }

    /// What serves `tool`: a plugin, or moat itself; with the tool's description.
    pub(crate) fn find(&self, tool: &str) -> Option<Found<'_>> {
        if let Some(builtin) = super::builtin::Builtin::named(tool) {
            return Some(Found::Builtin(builtin));
        }
        self.get(tool).map(|(plugin, spec)| Found::Plugin(plugin, spec))
    }

    /// The tools moat offers itself, listed beside the plugins' (`tools/list`).
    pub fn builtins(&self) -> impl Iterator<Item = &'static ToolSpec> {
        super::builtin::Builtin::ALL.into_iter().map(super::builtin::Builtin::spec)
    }

    /// The plugin serving `tool`, and the tool's description.
    pub fn get(&self, tool: &str) -> Option<(&Arc<Plugin>, &ToolSpec)> {
        let &(plugin, position) = self.tools.get(tool)?;
        let plugin = &self.plugins[plugin];
        Some((plugin, &plugin.tools[position]))
    }

    /// Every tool, by name.
    pub fn tools(&self) -> impl Iterator<Item = (&Arc<Plugin>, &ToolSpec)> {
        self.tools.values().map(|&(p, t)| (&self.plugins[p], &self.plugins[p].tools[t]))
    }

    /// Every loaded plugin, in load order.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }
}
