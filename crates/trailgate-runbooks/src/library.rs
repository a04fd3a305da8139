//! A library of runbooks: every `*.yaml` / `*.yml` file of a folder, ids unique.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::LoadError;
use crate::runbook::Runbook;

/// Runbooks by id.
#[derive(Debug, Clone, Default)]
pub struct Library {
    runbooks: BTreeMap<String, Runbook>,
}

impl Library {
    /// Loads every runbook file in `folder` (not recursive); fails on the first bad file.
    pub fn load_dir(folder: impl AsRef<Path>) -> Result<Library, LoadError> {
        let (library, mut errors) = Library::check_dir(folder);
        if errors.is_empty() {
            Ok(library)
        } else {
            Err(errors.remove(0))
        }
    }

    /// Loads what it can and returns every error (for `jitctl runbook check`).
    pub fn check_dir(folder: impl AsRef<Path>) -> (Library, Vec<LoadError>) {
        let folder = folder.as_ref();
        let mut library = Library::default();
        let mut errors = Vec::new();
        let entries = match std::fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(source) => {
                return (
                    library,
                    vec![LoadError::Read {
                        file: folder.to_path_buf(),
                        source,
                    }],
                );
            }
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.is_file()
                    && matches!(
                        path.extension().and_then(|ext| ext.to_str()),
                        Some("yaml" | "yml")
                    )
            })
            .collect();
        files.sort();
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(source) => {
                    errors.push(LoadError::Read { file, source });
                    continue;
                }
            };
            match Runbook::parse(&text, &file.display().to_string()) {
                Ok(runbook) => {
                    if let Err(error) = library.insert(runbook) {
                        errors.push(error);
                    }
                }
                Err(error) => errors.push(error),
            }
        }
        (library, errors)
    }

    /// Adds a runbook; an id already present is an error.
    pub fn insert(&mut self, runbook: Runbook) -> Result<(), LoadError> {
        if let Some(existing) = self.runbooks.get(runbook.id()) {
            return Err(LoadError::DuplicateId {
                id: runbook.id().to_owned(),
                first: existing.file().to_owned(),
                second: runbook.file().to_owned(),
            });
        }
        self.runbooks.insert(runbook.id().to_owned(), runbook);
        Ok(())
    }

    /// The runbook with this id.
    pub fn get(&self, id: &str) -> Option<&Runbook> {
        self.runbooks.get(id)
    }

    /// All runbooks, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Runbook> {
        self.runbooks.values()
    }

    /// How many runbooks.
    pub fn len(&self) -> usize {
        self.runbooks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.runbooks.is_empty()
    }
}
