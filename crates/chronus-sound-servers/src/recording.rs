//! What the recorders wrote, as interleaved stereo f32, read while they may still be
//! writing: a recorder stopped by a signal may leave a WAV header's sizes unset, so
//! the samples run from the data chunk to the end of the file.

use std::path::Path;
use std::time::{Duration, Instant};

/// How a recording's samples are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `parec --raw --format=float32le`: no header.
    RawF32,
    /// `pw-record --format f32`: a float WAV.
    WavF32,
    /// `jack_rec`: a 32-bit integer WAV.
    WavI32,
}

/// The samples of the recording at `path`, interleaved as recorded.
pub fn read(path: &Path, format: Format) -> std::io::Result<Vec<f32>> {
    let bytes = std::fs::read(path)?;
    let data = match format {
        Format::RawF32 => &bytes[..],
        Format::WavF32 | Format::WavI32 => {
            let Some(chunk) = bytes.windows(4).position(|w| w == b"data") else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} has no data chunk (yet)", path.display()),
                ));
            };
            &bytes[(chunk + 8).min(bytes.len())..]
        }
    };
    Ok(data
        .chunks_exact(4)
        .map(|b| {
            let b = [b[0], b[1], b[2], b[3]];
            match format {
                Format::WavI32 => i32::from_le_bytes(b) as f32 / 2_147_483_648.0,
                Format::RawF32 | Format::WavF32 => f32::from_le_bytes(b),
            }
        })
        .collect())
}

/// Polls the recording at `path` every 100 ms until a sample in it is louder than
/// 0.05 (a stream reaches its recorder once buffers fill); false if none is
/// within `within`.
pub fn wait_for_sound(path: &Path, format: Format, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if read(path, format).is_ok_and(|s| s.iter().any(|x| x.abs() > 0.05)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The left channel of interleaved stereo.
pub fn left(interleaved: &[f32]) -> Vec<f32> {
    interleaved.iter().step_by(2).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_whose_header_sizes_are_unset_reads_to_the_end() {
        let dir = std::env::temp_dir().join(format!("chronus-recording-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rec.wav");
        let mut bytes = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        bytes.extend_from_slice(&[16, 0, 0, 0, 1, 0, 2, 0]);
        bytes.extend_from_slice(&[0; 12]);
        bytes.extend_from_slice(b"data\0\0\0\0");
        for s in [i32::MAX, i32::MIN, 0, 1 << 30] {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let samples = read(&path, Format::WavI32).unwrap();
        assert_eq!(samples, [1.0, -1.0, 0.0, 0.5]);
        assert_eq!(left(&samples), [1.0, 0.0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
