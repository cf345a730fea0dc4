//! Atomic file writes shared by checkpoints and tokenizer files.
//!
//! The bytes go to `.<name>.tmp-<pid>` next to the target, are fsynced, and
//! the temporary file is renamed over the target (then the directory is
//! fsynced). On top of that:
//!
//! * the temporary file is removed on every error path;
//! * before writing, temporary files `.<name>.tmp-<pid>` of the same target
//!   left by processes that no longer exist (killed mid-save) are removed —
//!   only names of exactly that pattern, and only where `/proc/<pid>` shows
//!   the process is gone (where there is no `/proc`, nothing is removed);
//! * the target must be absent or a regular file (a symlink is followed for
//!   this check): a directory, a device node (`/dev/full`, `/dev/null`), a
//!   FIFO or a socket is refused before anything is written, so a save as
//!   root never replaces a device node with a regular file;
//! * every error names the target path (an empty path is refused as such).

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where to stop, for tests of the failure paths (`Stage::Done` in real use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The whole write.
    Done,
    /// Stop after writing the temporary file and return `Ok`, leaving it
    /// behind as a process killed mid-save would.
    Interrupt,
    /// Fail after writing the temporary file, as a full disk would at fsync.
    Fail,
}

/// The temporary file of `path` for process `pid`: `.<name>.tmp-<pid>`.
pub(crate) fn tmp_path(dir: &Path, name: &str, pid: u32) -> PathBuf {
    dir.join(format!(".{name}.tmp-{pid}"))
}

/// Removes the temporary file on drop unless disarmed.
struct TmpGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Fails unless `path` is absent or (after following symlinks) a regular file.
fn check_target(path: &Path) -> Result<()> {
    let refuse = |what: &str| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("refusing to save over {what}; the target must be a regular file or absent"),
        ),
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) if m.is_dir() => Err(refuse("a directory")),
        Ok(m) => {
            let kind = special_kind(&m);
            Err(refuse(kind))
        }
        // Absent (or a dangling symlink, which the rename replaces).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(unix)]
fn special_kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "something that is not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::Metadata) -> &'static str {
    "something that is not a regular file"
}

/// Whether process `pid` is known to be gone. `false` when unsure (no `/proc`).
fn process_gone(pid: u32) -> bool {
    Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes `dir`'s `.<name>.tmp-<pid>` files whose process is gone (not ours).
/// Returns how many were removed. Errors are ignored: this is housekeeping.
pub(crate) fn clean_stale(dir: &Path, name: &str) -> usize {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let me = std::process::id();
    let mut n = 0;
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(pid) = file.strip_prefix(&prefix) else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == me || !process_gone(pid) {
            continue;
        }
        // Only regular files: never a directory someone named like this.
        if e.file_type().map(|t| t.is_file()).unwrap_or(false)
            && std::fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Writes `bytes` to `path` atomically (see the module docs).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], stage: Stage) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.as_os_str().is_empty() {
        return Err(Error::invalid(
            "save",
            "the path is empty (\"\"); give a file name",
        ));
    }
    let Some(name) = path.file_name() else {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path names no file (it ends in `..` or `/`)",
        )));
    };
    let name = name.to_string_lossy().into_owned();
    check_target(path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    clean_stale(&dir, &name);
    let tmp = tmp_path(&dir, &name, std::process::id());
    let mut guard = TmpGuard {
        path: tmp.clone(),
        armed: false,
    };
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        guard.armed = true;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    match stage {
        Stage::Done => {}
        Stage::Interrupt => {
            guard.armed = false;
            return Ok(());
        }
        Stage::Fail => {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "injected failure after writing the temporary file",
            )))
        }
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    guard.armed = false;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kiln-atomic-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn checkpoint_tmp_failure_removes_the_temporary_file() {
        let d = dir("fail");
        let p = d.join("a.bin");
        write_atomic(&p, b"old", Stage::Done).unwrap();
        let e = write_atomic(&p, b"new", Stage::Fail)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.bin"), "{e}");
        assert_eq!(names(&d), ["a.bin"]);
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
    }

    #[test]
    fn checkpoint_tmp_stale_files_of_dead_processes_are_removed() {
        let d = dir("stale");
        let p = d.join("a.bin");
        // pid 0 never is a user process; u32::MAX - 1 is above any pid_max.
        let dead = [4_194_305u32, u32::MAX - 1];
        for pid in dead {
            std::fs::write(tmp_path(&d, "a.bin", pid), b"x").unwrap();
        }
        // A live process (pid 1), ours, other targets' and odd names stay.
        let keep = [
            ".a.bin.tmp-1".to_string(),
            format!(".a.bin.tmp-{}", std::process::id()),
            ".b.bin.tmp-4194305".into(),
            ".a.bin.tmp-12x".into(),
            "a.bin.tmp-4194305".into(),
        ];
        for k in &keep {
            std::fs::write(d.join(k), b"x").unwrap();
        }
        write_atomic(&p, b"new", Stage::Done).unwrap();
        let mut want: Vec<String> = keep.to_vec();
        // Our own temporary file was the one renamed over the target.
        want.retain(|k| !k.ends_with(&format!("tmp-{}", std::process::id())));
        want.push("a.bin".into());
        want.sort();
        assert_eq!(names(&d), want);
    }

    #[test]
    fn checkpoint_tmp_targets_that_are_not_regular_files_are_refused() {
        let d = dir("special");
        let e = write_atomic(&d, b"x", Stage::Done).unwrap_err().to_string();
        assert!(
            e.contains("a directory") && e.contains("kiln-atomic-special"),
            "{e}"
        );
        let e = write_atomic(Path::new(""), b"x", Stage::Done)
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
    }
}
