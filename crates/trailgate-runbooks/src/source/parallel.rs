//! Reading many local files on several threads into one [`Scan`].
//!
//! Each thread takes the next unread file from a shared counter (files differ a lot in size, so
//! a fixed split would leave threads idle), reads it into its own scan of the same compiled
//! runbook, and the scans are merged at the end ([`Scan::merge`]). Each file is marked with its
//! index ([`Scan::begin_file`]) so kept rows keep the order of a sequential read.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::files::{Limits, read_file_with};
use crate::engine::Scan;

/// The machine's available parallelism (1 if unknown).
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// One file finished by [`scan_files_with`]: its index in `files` and what it added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDone {
    /// Index of the file in the list given.
    pub index: usize,
    /// Records evaluated in this file.
    pub events_scanned: u64,
    /// Records matched in this file.
    pub events_matched: u64,
}

/// Reads `files` (in any order, on `threads` threads) into `scan`.
pub fn scan_files(files: &[PathBuf], limits: Limits, threads: usize, scan: &mut Scan<'_, '_>) {
    scan_files_with(files, limits, threads, scan, &|_| {});
}

/// [`scan_files`], calling `progress` (from the worker threads, in completion order) after each
/// file, so a caller can report progress.
pub fn scan_files_with(
    files: &[PathBuf],
    limits: Limits,
    threads: usize,
    scan: &mut Scan<'_, '_>,
    progress: &(dyn Fn(FileDone) + Sync),
) {
    let compiled = scan.compiled();
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, files.len().max(1));
    let partials: Vec<Scan<'_, '_>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut local = compiled.scan();
                    let mut buffer = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(index) else {
                            break;
                        };
                        local.begin_file(index);
                        let before = (local.events_scanned(), local.events_matched());
                        read_file_with(file, limits, &mut local, &mut buffer);
                        progress(FileDone {
                            index,
                            events_scanned: local.events_scanned() - before.0,
                            events_matched: local.events_matched() - before.1,
                        });
                    }
                    local
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| match worker.join() {
                Ok(local) => local,
                // A panic in a worker is a bug; surface it on the caller's thread.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    for partial in partials {
        scan.merge(partial);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use time::macros::datetime;

    use crate::library::Library;
    use crate::output::RunbookResult;
    use crate::params::Params;
    use crate::source::Source;
    use crate::source::files::{FileSource, Limits};

    /// Every runbook over the real logs and the fixtures, three ways: sequential without the
    /// prefilter (the reference), sequential with it, and on three threads with it.
    #[test]
    fn parallel_and_prefiltered_scans_equal_the_plain_sequential_scan() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let library = Library::load_dir(manifest.join("../../runbooks")).expect("library loads");
        let mut roots = vec![manifest.join("tests/fixtures")];
        let real = manifest.join("../../../shared/data/cloudtrail");
        if real.is_dir() {
            roots.push(real);
        }
        let window = Params::new().window(
            datetime!(2000-01-01 0:00 UTC),
            datetime!(2030-01-01 0:00 UTC),
        );
        let mut compared = 0;
        let mut with_matches = 0;
        for runbook in library.iter() {
            // Values that find something in the real logs, for the runbooks that need them.
            let values = [
                ("requester", "benjamin"),
                ("request_id", "r-1"),
                ("session_name", "tg-benjamin-r-1"),
                ("access_key_id", "AKIATFQR7NSCUXC3DDDP"),
                ("resource", "stratus-red-team-backdoor-r-role"),
                ("user_name", "benjamin"),
                ("user_id", "94482488-3041-7026-18f3-be45837cd0e4"),
                ("permission_set", "AdministratorAccess"),
                ("account", "111122223333"),
            ];
            let mut params = window.clone();
            for declared in &runbook.spec().parameters {
                if let Some((name, value)) = values.iter().find(|(name, _)| *name == declared.name)
                {
                    params = params.set(name, value);
                }
            }
            let compiled = runbook.compile(&params).expect("binds");
            for root in &roots {
                let reference = {
                    let plain = compiled.clone().without_prefilter();
                    let mut scan = plain.scan();
                    let files = FileSource::new(root).files().expect("lists");
                    for file in &files {
                        crate::source::files::read_file(file, Limits::default(), &mut scan);
                    }
                    scan.finish()
                };
                let run = |threads: usize| -> RunbookResult {
                    let mut scan = compiled.scan();
                    FileSource::new(root)
                        .threads(threads)
                        .scan(&mut scan)
                        .expect("scans");
                    scan.finish()
                };
                assert_eq!(run(1), reference, "{} prefiltered", runbook.id());
                assert_eq!(run(3), reference, "{} on 3 threads", runbook.id());
                compared += 1;
                if reference.coverage.events_matched > 0 {
                    with_matches += 1;
                }
            }
        }
        assert!(compared >= 25, "only {compared} runbook runs compared");
        assert!(
            with_matches >= 10,
            "only {with_matches} runs matched anything"
        );
    }
}
