//! The registry: every plugin loaded from the tool directories, and which plugin serves
//! which tool name.

use crate::budget::Budgets;
use crate::error::{LoadError, LoadProblem};
use crate::exec::Runtime;
use crate::plugin::{Plugin, ToolSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Loaded plugins, by tool name.
#[derive(Default)]
pub struct Registry {
    plugins: Vec<Arc<Plugin>>,
    /// Tool name to (index in `plugins`, index in that plugin's `tools`).
    tools: BTreeMap<String, (usize, usize)>,
}

impl Registry {
    /// Loads every `*.wasm` file of `dirs`, each directory in file-name order. A file that
    /// cannot be loaded is reported and left out: its tools do not exist for callers.
    pub(crate) fn load(
        runtime: &Runtime,
        dirs: &[PathBuf],
        budgets: &Budgets,
    ) -> (Registry, Vec<LoadError>) {
        let mut registry = Registry::default();
        let mut errors = Vec::new();
        for dir in dirs {
            match component_files(dir) {
                Ok(files) => {
                    for file in files {
                        match Plugin::load(runtime, &file, budgets).and_then(|p| registry.add(p)) {
                            Ok(()) => {}
                            Err(error) => errors.push(error),
                        }
                    }
                }
                Err(error) => errors.push(error),
            }
        }
        (registry, errors)
    }

    /// Adds `plugin`, refusing it whole if one of its tool names is taken.
    fn add(&mut self, plugin: Plugin) -> Result<(), LoadError> {
        for tool in &plugin.tools {
            if tool.name == crate::controls::READ_MORE {
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
        let index = self.plugins.len();
        for (position, tool) in plugin.tools.iter().enumerate() {
            self.tools.insert(tool.name.clone(), (index, position));
        }
        self.plugins.push(Arc::new(plugin));
        Ok(())
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

/// The `*.wasm` files directly in `dir`, sorted by file name.
pub(crate) fn component_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let fail = |e: std::io::Error| LoadError {
        path: dir.to_owned(),
        problem: LoadProblem::Directory(e.to_string()),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let path = entry.map_err(fail)?.path();
        if path.extension().is_some_and(|ext| ext == "wasm") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
