//! Reading files named by clients, or found in directories someone else may
//! have written to. Opening never blocks (a FIFO or a terminal would hold the
//! caller until a writer appears), only regular files are read, and never more
//! than a bound.

use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a file was not read, or a name not accepted.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {path}: {source}; accepted: a readable regular file")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is {kind}; accepted: a regular file")]
    NotRegular { path: PathBuf, kind: String },
    #[error("{path} holds {size} bytes or more; accepted: at most {max} bytes")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
}

impl FileError {
    /// Whether the path named nothing at all.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FileError::Open { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// What a file of this type is, for messages: "a FIFO", "a directory".
pub fn describe(file_type: FileType) -> &'static str {
    if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The whole of the regular file at `path` (symbolic links followed), if it
/// holds at most `max_bytes`. Anything else is refused without blocking:
/// FIFOs, devices, sockets, directories, and links to them.
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let open_error = |source| FileError::Open {
        path: path.to_path_buf(),
        source,
    };
    // Checked before opening as well as after: opening a device can act on its
    // own (a tape rewinds, a watchdog arms).
    let named = std::fs::metadata(path).map_err(open_error)?;
    check_regular(path, &named)?;
    // Non-blocking, so a FIFO or terminal swapped in since is opened at once
    // (and refused below); a terminal never becomes our controlling one.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(open_error)?;
    let read_error = |source| FileError::Read {
        path: path.to_path_buf(),
        source,
    };
    // What counts is what was opened, not what the name held a moment ago.
    let opened = file.metadata().map_err(read_error)?;
    check_regular(path, &opened)?;
    let too_large = |size| FileError::TooLarge {
        path: path.to_path_buf(),
        size,
        max: max_bytes,
    };
    if opened.len() > max_bytes {
        return Err(too_large(opened.len()));
    }
    let mut bytes = Vec::with_capacity(opened.len() as usize);
    // One byte past the bound tells a file that grew while read.
    File::take(file, max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

fn check_regular(path: &Path, meta: &Metadata) -> Result<(), FileError> {
    if meta.file_type().is_file() {
        return Ok(());
    }
    let through_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let kind = describe(meta.file_type());
    Err(FileError::NotRegular {
        path: path.to_path_buf(),
        kind: if through_link {
            format!("a symbolic link to {kind}")
        } else {
            kind.to_owned()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::sync::mpsc::{RecvTimeoutError, channel};
    use std::time::Duration;

    /// Runs `f` on its own thread: a call that blocks fails the test instead
    /// of hanging it.
    fn promptly<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(value) => value,
            Err(RecvTimeoutError::Timeout) => panic!("{what} did not return within 5 s"),
            Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
        }
    }

    fn read(path: &Path, max: u64) -> Result<Vec<u8>, FileError> {
        let owned = path.to_path_buf();
        promptly(&format!("reading {}", path.display()), move || {
            read_regular(&owned, max)
        })
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chronus-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn refused_as(path: &Path, kind: &str) {
        match read(path, 1 << 20) {
            Err(e @ FileError::NotRegular { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains(&path.display().to_string())
                        && message.contains(&format!("is {kind};")),
                    "{message}"
                );
            }
            other => panic!("{}: {other:?}", path.display()),
        }
    }

    #[test]
    fn regular_files_and_links_to_them_are_read_whole() {
        let dir = scratch("regular");
        let file = dir.join("take.wav");
        std::fs::write(&file, b"RIFF....").unwrap();
        symlink(&file, dir.join("link")).unwrap();
        assert_eq!(read(&file, 8).unwrap(), b"RIFF....");
        assert_eq!(read(&dir.join("link"), 8).unwrap(), b"RIFF....");
        let missing = read(&dir.join("nothing"), 8).unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fifos_devices_sockets_and_directories_are_refused_without_blocking() {
        let dir = scratch("special");
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        refused_as(&fifo, "a FIFO");
        symlink(&fifo, dir.join("to-fifo")).unwrap();
        refused_as(&dir.join("to-fifo"), "a symbolic link to a FIFO");
        symlink("/dev/zero", dir.join("zero")).unwrap();
        refused_as(&dir.join("zero"), "a symbolic link to a character device");
        refused_as(Path::new("/dev/ptmx"), "a character device");
        let socket = dir.join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        refused_as(&socket, "a socket");
        refused_as(&dir, "a directory");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_over_the_bound_are_refused_before_reading() {
        let dir = scratch("large");
        let file = dir.join("big");
        std::fs::write(&file, vec![0u8; 1001]).unwrap();
        assert_eq!(read(&file, 1001).unwrap().len(), 1001);
        match read(&file, 1000) {
            Err(e @ FileError::TooLarge { size: 1001, .. }) => {
                assert!(e.to_string().contains("at most 1000 bytes"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
