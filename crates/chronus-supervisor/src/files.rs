//! Placeholder until the safe-file module lands.
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FileError(String);

pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, FileError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| FileError(format!("cannot open {}: {e}", path.display())))?;
    let meta = file.metadata().map_err(|e| FileError(e.to_string()))?;
    if !meta.is_file() || meta.len() > max {
        return Err(FileError(format!(
            "{} is not a regular file of at most {max} bytes",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError(e.to_string()))?;
    Ok(bytes)
}

pub fn confine(dir: &Path, requested: &str) -> Result<PathBuf, FileError> {
    let p = Path::new(requested);
    if p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(FileError("not a name inside the directory".into()));
    }
    Ok(dir.join(p))
}
