//! Reading files named by clients, or found in directories someone else may
//! have written to. Opening never blocks (a FIFO or a terminal would hold the
//! caller until a writer appears), only regular files are read, never more
//! than a bound, and a client's name never reaches outside its directory.

use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

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
    #[error("cannot open the directory {dir}: {source}")]
    Dir { dir: PathBuf, source: io::Error },
    #[error("`{name}` is not accepted: {reason}; accepted: the relative name of a file in {dir}")]
    BadName {
        name: String,
        dir: PathBuf,
        reason: &'static str,
    },
    /// Missing, unreadable and outside the directory all read the same, so a
    /// client learns nothing about files elsewhere.
    #[error(
        "`{name}` names no file in {dir}; accepted: the relative name of a file in that \
         directory (links may not lead out of it)"
    )]
    NotInDir { name: String, dir: PathBuf },
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

/// The file a client's `requested` name means in `dir`: a relative name
/// without `..`, which after resolving every link is still inside `dir`.
/// The answer is the canonical path; names that lead nowhere, or out of
/// `dir`, are refused alike, whether or not something exists there.
pub fn confine(dir: &Path, requested: &Path) -> Result<PathBuf, FileError> {
    let bad = |reason| FileError::BadName {
        name: requested.display().to_string(),
        dir: dir.to_path_buf(),
        reason,
    };
    let mut names = 0;
    for component in requested.components() {
        match component {
            Component::Normal(_) => names += 1,
            Component::CurDir => {}
            Component::ParentDir => return Err(bad("it contains `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(bad("it is absolute")),
        }
    }
    if names == 0 {
        return Err(bad("it names no file"));
    }
    let root = dir.canonicalize().map_err(|source| FileError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    match root.join(requested).canonicalize() {
        Ok(path) if path.starts_with(&root) && path != root => Ok(path),
        _ => Err(FileError::NotInDir {
            name: requested.display().to_string(),
            dir: dir.to_path_buf(),
        }),
    }
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

    fn confined(dir: &Path, name: &str) -> Result<PathBuf, FileError> {
        let (dir, name) = (dir.to_path_buf(), PathBuf::from(name));
        promptly(&format!("confining {}", name.display()), move || {
            confine(&dir, &name)
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

    #[test]
    fn names_inside_the_directory_resolve_to_their_canonical_path() {
        let dir = scratch("inside");
        std::fs::create_dir(dir.join("takes")).unwrap();
        std::fs::write(dir.join("takes/a.wav"), b"a").unwrap();
        symlink("takes/a.wav", dir.join("latest")).unwrap();
        let real = dir.canonicalize().unwrap().join("takes/a.wav");
        for name in ["takes/a.wav", "./takes/a.wav", "latest"] {
            assert_eq!(confined(&dir, name).unwrap(), real, "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parent_absolute_and_empty_names_are_refused() {
        let dir = scratch("names");
        std::fs::write(dir.join("a.wav"), b"a").unwrap();
        for (name, reason) in [
            ("../a.wav", "`..`"),
            ("sub/../../a.wav", "`..`"),
            ("..", "`..`"),
            ("/etc/passwd", "absolute"),
            ("/dev/ptmx", "absolute"),
            ("", "names no file"),
            (".", "names no file"),
        ] {
            match confined(&dir, name) {
                Err(e @ FileError::BadName { .. }) => {
                    assert!(e.to_string().contains(reason), "{name}: {e}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn links_out_of_the_directory_are_refused_alike_whether_or_not_the_target_exists() {
        let dir = scratch("escape");
        let outside = scratch("escape-outside");
        std::fs::write(outside.join("secret"), b"s").unwrap();
        let refusal = |name: &str| match confined(&dir, name) {
            Err(e @ FileError::NotInDir { .. }) => e.to_string(),
            other => panic!("{name}: {other:?}"),
        };
        symlink(outside.join("secret"), dir.join("link")).unwrap();
        let to_existing = refusal("link");
        std::fs::remove_file(dir.join("link")).unwrap();
        symlink(outside.join("nothing"), dir.join("link")).unwrap();
        assert_eq!(refusal("link"), to_existing);
        std::fs::remove_file(dir.join("link")).unwrap();
        assert_eq!(
            refusal("link"),
            to_existing,
            "a missing file reads the same"
        );
        // Through a linked directory: the same, existing target or not.
        symlink(&outside, dir.join("out")).unwrap();
        let existing = refusal("out/secret").replace("out/secret", "NAME");
        let missing = refusal("out/nothing").replace("out/nothing", "NAME");
        assert_eq!(existing, missing);
        symlink("/", dir.join("root")).unwrap();
        assert_eq!(
            refusal("root/etc/shadow").replace("root/etc/shadow", "NAME"),
            refusal("root/etc/no-such-file").replace("root/etc/no-such-file", "NAME"),
        );
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn a_fifo_inside_the_directory_is_confined_then_refused_when_read() {
        let dir = scratch("confined-fifo");
        nix::unistd::mkfifo(&dir.join("take.wav"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let path = confined(&dir, "take.wav").unwrap();
        refused_as(&path, "a FIFO");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
