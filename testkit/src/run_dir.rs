//! [`RunDir`]: a server's or cluster's temp base dir (a `tempfile`
//! directory) that says whether its owner still runs.
//!
//! A test binary's shared stack lives in a static that is never dropped,
//! so its dir outlives the binary. Each dir therefore holds `owner.lock`,
//! exclusively locked (`flock`, through `fs4`) by the process that made it
//! for as long as it runs; the kernel drops the lock when that process
//! dies, however it dies. [`sweep`] removes only dirs whose lock it can
//! take, so a live run's dir is never touched, whatever PID namespace it
//! runs in.

use std::fs::{File, OpenOptions};
use std::path::Path;

use tempfile::TempDir;

/// Every dir made here starts with this (not `procreg-restate-`, the
/// name earlier versions swept by pid, which would take these for dead).
const PREFIX: &str = "procreg-run-";
/// The owner's lock inside each dir.
const OWNER_LOCK: &str = "owner.lock";

/// A temp dir removed on drop, locked by this process while it lives.
#[derive(Debug)]
pub(crate) struct RunDir {
    // Field order: the lock is released before the dir is removed.
    _owner: File,
    dir: TempDir,
}

impl RunDir {
    /// A fresh dir under the temp dir, after sweeping the ones whose
    /// owners are gone.
    pub(crate) fn new() -> std::io::Result<Self> {
        sweep();
        let dir = tempfile::Builder::new().prefix(PREFIX).tempdir()?;
        // Locked under a name the sweep ignores, then renamed into place:
        // whoever sees `owner.lock` sees it locked.
        let claiming = dir.path().join("owner.lock.new");
        let owner = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&claiming)?;
        fs4::FileExt::lock(&owner)?;
        std::fs::rename(&claiming, dir.path().join(OWNER_LOCK))?;
        Ok(Self { _owner: owner, dir })
    }

    /// The dir.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the run dirs whose owner process has ended.
fn sweep() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(PREFIX));
        if is_ours && owner_is_gone(&entry.path()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether `dir`'s owner lock can be taken (its owner ended). A dir
/// without one is being made, or is not ours: left alone.
fn owner_is_gone(dir: &Path) -> bool {
    let Ok(lock) = File::open(dir.join(OWNER_LOCK)) else {
        return false;
    };
    // Released when `lock` closes; nobody claims a dead owner's dir.
    fs4::FileExt::try_lock(&lock).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_dir_is_kept_and_a_dead_one_swept() {
        let live = RunDir::new().expect("a run dir");
        assert!(!owner_is_gone(live.path()), "its owner holds the lock");
        sweep();
        assert!(live.path().exists(), "the sweep leaves a live dir alone");

        // A dir whose owner ended: the lock file is there, nobody holds it.
        let dead = tempfile::Builder::new().prefix(PREFIX).tempdir().unwrap();
        File::create(dead.path().join(OWNER_LOCK)).unwrap();
        let dead = dead.keep();
        sweep();
        assert!(!dead.exists(), "the sweep removes an ownerless dir");

        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists(), "removed on drop");
    }
}
