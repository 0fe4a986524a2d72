//! Files that hold a key: readable and writable by their owner only, written whole or not at all.
//!
//! The SQLite encryption key file and the log's signing key file share these rules: a file that
//! group or others can read is refused (its key may have leaked), and a new file is written to a
//! private temporary file and linked into place, so it either does not exist or holds a whole
//! key, and a process racing us to create it makes us read its key instead of overwriting it.
//! Errors name paths and modes, never the contents.

use rand::RngCore;
use secrecy::zeroize::Zeroizing;
use std::ffi::OsString;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    #[error("{path} is accessible to group or others (mode {mode:03o}); run `chmod 600 {path}`")]
    TooOpen { path: String, mode: u32 },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// What `create` found.
pub enum Created {
    /// This call wrote the file.
    New,
    /// Another process made it first: its contents.
    Existing(Zeroizing<String>),
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> PrivateFileError {
    PrivateFileError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// The contents of a private file, or `None` if there is none.
pub fn read(path: &Path) -> Result<Option<Zeroizing<String>>, PrivateFileError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("open", path, e)),
    };
    // The mode is taken from the open handle, so it is the mode of the file actually read.
    let metadata = file.metadata().map_err(|e| io("inspect", path, e))?;
    refuse_if_shared(&metadata, path)?;
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| io("read", path, e))?;
    Ok(Some(text))
}

#[cfg(unix)]
fn refuse_if_shared(metadata: &std::fs::Metadata, path: &Path) -> Result<(), PrivateFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PrivateFileError::TooOpen {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_if_shared(_: &std::fs::Metadata, _: &Path) -> Result<(), PrivateFileError> {
    Ok(())
}

/// Creates a private file (mode 0600) holding `contents`, unless one exists already.
pub fn create(path: &Path, contents: &str) -> Result<Created, PrivateFileError> {
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let temporary = with_suffix(path, &format!(".{}.tmp", hex::encode(suffix)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    // Best effort: a leftover temporary file is harmless next to the error we may report.
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            return match read(path)? {
                Some(text) => Ok(Created::Existing(text)),
                None => Err(io("read", path, ErrorKind::NotFound.into())),
            };
        }
        Err(e) => return Err(io("create", path, e)),
    }
    sync_parent_directory(path);
    Ok(Created::New)
}

/// Makes the new directory entry durable, so a crash cannot lose a key already in use.
fn sync_parent_directory(path: &Path) {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        if let Err(e) = File::open(parent).and_then(|dir| dir.sync_all()) {
            tracing::debug!(directory = %parent.display(), error = %e, "could not sync a key file's directory");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// `path` with `suffix` appended to its file name (`ledger.db` + `.key`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}
