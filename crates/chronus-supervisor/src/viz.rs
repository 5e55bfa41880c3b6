//! `/viz/levels` and `/viz/spectrum`, sent 10 times a second over UDP to
//! `viz.host:viz.port`, computed on the main thread from the blocks the device
//! most recently played (read from the rings, as the callback reads them), so
//! nothing is added to the audio path.
//!
//! - `/viz/levels f:peak_left f:rms_left f:peak_right f:rms_right`
//! - `/viz/spectrum f × 8`: the RMS level of the left/right mean in each of
//!   eight octave bands centred on 63, 125, 250, 500, 1000, 2000, 4000 and 8000
//!   Hz (edges a half octave either side; the last reaches up to 16 kHz).
//!
//! Both over the last [`WINDOW`] played frames, or as many as the rings still
//! hold. One analysis (a 2048-point FFT) takes about 0.16 ms even in the
//! test build: under 0.2 % of a core at 10 Hz.
//!
//! The socket is connected to the target, so a target where nothing listens
//! (loopback answers with ICMP port unreachable) fails the next send with
//! "connection refused": the analysis then pauses for [`QUIET`] and tries again, so a
//! box without a visualiser spends a tenth of the work on it.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use chronus_osc::OscType;
use chronus_shm::{CHANNELS, Region, SLOTS};

pub const LEVELS_ADDR: &str = "/viz/levels";
pub const SPECTRUM_ADDR: &str = "/viz/spectrum";
const INTERVAL: Duration = Duration::from_millis(100);
/// How long nothing is analysed after the target refused a message.
pub const QUIET: Duration = Duration::from_secs(1);
/// Frames analysed (a power of two, for the FFT).
pub const WINDOW: usize = 2048;
pub const BANDS: usize = 8;
/// Band centres in Hz.
pub const CENTRES: [f32; BANDS] = [62.5, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0];
const TOP_HZ: f32 = 16_000.0;

pub struct Viz {
    /// Connected to the target it names.
    socket: Option<(UdpSocket, SocketAddr)>,
    next_at: Instant,
    /// Interleaved frames, oldest first.
    frames: Vec<f32>,
}

impl Viz {
    pub fn new(now: Instant) -> Viz {
        Viz {
            socket: None,
            next_at: now,
            frames: Vec::new(),
        }
    }

    /// Sends both messages if they are due and `target` is set.
    pub fn tick(
        &mut self,
        now: Instant,
        target: Option<SocketAddr>,
        region: &Region,
        active: usize,
    ) {
        let Some(target) = target else {
            return;
        };
        if now < self.next_at {
            return;
        }
        // Steady 10 Hz; after a stall, start again from now rather than burst.
        self.next_at += INTERVAL;
        if self.next_at < now {
            self.next_at = now + INTERVAL;
        }
        if !self.read_played(region, active) {
            return;
        }
        let socket = match &self.socket {
            Some((s, to)) if *to == target => s,
            _ => {
                let bind: SocketAddr = if target.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let opened = UdpSocket::bind(bind)
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .and_then(|s| s.connect(target).map(|()| s));
                match opened {
                    Ok(s) => &self.socket.insert((s, target)).0,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot open the visualisation socket");
                        return;
                    }
                }
            }
        };
        let rate = region.geometry().sample_rate;
        let floats = |v: &[f32]| v.iter().map(|&x| OscType::Float(x)).collect();
        let levels = chronus_osc::message(LEVELS_ADDR, floats(&levels(&self.frames)));
        // Never waits: a full socket buffer drops the message. Over loopback the
        // refusal of this very message is pending by the time `send` returns.
        let refused = |e: std::io::Error| e.kind() == std::io::ErrorKind::ConnectionRefused;
        let sent = socket.send(&chronus_osc::encode(&levels));
        let pending = socket.take_error().ok().flatten();
        if sent.err().is_some_and(refused) || pending.is_some_and(refused) {
            self.next_at = now + QUIET;
            return;
        }
        let spectrum = chronus_osc::message(SPECTRUM_ADDR, floats(&spectrum(&self.frames, rate)));
        let _ = socket.send(&chronus_osc::encode(&spectrum));
    }

    /// Collects the last played whole blocks, newest back to at most [`WINDOW`]
    /// frames, from the active ring or else the other. False if none is held.
    fn read_played(&mut self, region: &Region, active: usize) -> bool {
        let play = region
            .header()
            .clock
            .play_frame
            .load(std::sync::atomic::Ordering::Acquire);
        let bf = u64::from(region.geometry().block_frames);
        let block_len = bf as usize * CHANNELS;
        let max_blocks = WINDOW.div_ceil(bf as usize);
        // Filled from the end, newest block last.
        self.frames.resize(max_blocks * block_len, 0.0);
        let order = [active, (active + 1) % SLOTS];
        let mut start = play / bf * bf;
        let mut held = 0;
        while start >= bf && held < max_blocks {
            start -= bf;
            let at = (max_blocks - 1 - held) * block_len;
            let out = &mut self.frames[at..at + block_len];
            if !order
                .iter()
                .any(|&slot| region.ring(slot).read(start, 0, out).is_some())
            {
                break;
            }
            held += 1;
        }
        self.frames.drain(..(max_blocks - held) * block_len);
        let keep = WINDOW * CHANNELS;
        if self.frames.len() > keep {
            self.frames.drain(..self.frames.len() - keep);
        }
        // Worker output is untrusted: clamped and NaN flushed, as for the device.
        for s in &mut self.frames {
            *s = if s.is_finite() {
                s.clamp(-1.0, 1.0)
            } else {
                0.0
            };
        }
        !self.frames.is_empty()
    }
}

/// Peak and RMS of each channel of interleaved stereo: `[peak_l, rms_l, peak_r, rms_r]`.
pub fn levels(stereo: &[f32]) -> [f32; 4] {
    let mut out = [0.0; 4];
    let frames = stereo.len() / CHANNELS;
    if frames == 0 {
        return out;
    }
    for ch in 0..CHANNELS {
        let (mut peak, mut sum) = (0.0f32, 0.0f64);
        for s in stereo.iter().skip(ch).step_by(CHANNELS) {
            peak = peak.max(s.abs());
            sum += f64::from(*s) * f64::from(*s);
        }
        out[ch * 2] = peak;
        out[ch * 2 + 1] = (sum / frames as f64).sqrt() as f32;
    }
    out
}

/// The RMS level in each band of the mean of the channels, from a Hann-windowed
/// FFT: a sine of amplitude `a` inside a band reads `a / √2` there.
pub fn spectrum(stereo: &[f32], sample_rate: u32) -> [f32; BANDS] {
    let frames = (stereo.len() / CHANNELS).min(WINDOW);
    let mut out = [0.0; BANDS];
    if frames < 2 {
        return out;
    }
    let mut re = vec![0.0f64; WINDOW];
    let mut im = vec![0.0f64; WINDOW];
    let mut window_power = 0.0;
    let tail = &stereo[stereo.len() / CHANNELS * CHANNELS - frames * CHANNELS..];
    for (i, frame) in tail.chunks_exact(CHANNELS).enumerate() {
        let w = 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / frames as f64).cos();
        let mono = frame.iter().map(|&s| f64::from(s)).sum::<f64>() / CHANNELS as f64;
        re[i] = mono * w;
        window_power += w * w;
    }
    fft(&mut re, &mut im);
    let bin_hz = f64::from(sample_rate) / WINDOW as f64;
    let top = f64::from(TOP_HZ.min(sample_rate as f32 / 2.0));
    for (band, centre) in CENTRES.iter().enumerate() {
        let low = f64::from(*centre) / std::f64::consts::SQRT_2;
        let high = if band == BANDS - 1 {
            top
        } else {
            f64::from(*centre) * std::f64::consts::SQRT_2
        };
        // Bins 1..N/2, each counted for its negative twin too (Parseval).
        let power: f64 = (1..WINDOW / 2)
            .filter(|&k| (low..high).contains(&(k as f64 * bin_hz)))
            .map(|k| 2.0 * (re[k] * re[k] + im[k] * im[k]))
            .sum();
        out[band] = (power / (WINDOW as f64 * window_power)).sqrt() as f32;
    }
    out
}

/// In-place iterative radix-2 FFT; `re.len()` is a power of two.
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let twiddles: Vec<(f64, f64)> = (0..n / 2)
        .map(|k| {
            let angle = -std::f64::consts::TAU * k as f64 / n as f64;
            (angle.cos(), angle.sin())
        })
        .collect();
    let mut len = 2;
    while len <= n {
        let step = n / len;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (wr, wi) = twiddles[k * step];
                let (a, b) = (start + k, start + k + len / 2);
                let (xr, xi) = (re[b] * wr - im[b] * wi, re[b] * wi + im[b] * wr);
                re[b] = re[a] - xr;
                im[b] = im[a] - xi;
                re[a] += xr;
                im[a] += xi;
            }
        }
        len <<= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;

    fn sine(hz: f32, amp: f32, frames: usize) -> Vec<f32> {
        (0..frames)
            .flat_map(|i| {
                let s = amp * (std::f32::consts::TAU * hz * i as f32 / RATE as f32).sin();
                [s, s]
            })
            .collect()
    }

    #[test]
    fn a_tone_lands_in_the_band_that_contains_it() {
        for (hz, band) in [
            (60.0, 0),
            (125.0, 1),
            (250.0, 2),
            (440.0, 3),
            (1000.0, 4),
            (2500.0, 5),
            (4000.0, 6),
            (12_000.0, 7),
        ] {
            let bands = spectrum(&sine(hz, 0.5, WINDOW), RATE);
            let total: f32 = bands.iter().map(|b| b * b).sum();
            assert!(
                bands[band] * bands[band] > 0.9 * total,
                "{hz} Hz: {bands:?}"
            );
            // A sine of amplitude 0.5 has an RMS of 0.354.
            assert!(
                (bands[band] - 0.5 / 2f32.sqrt()).abs() < 0.03,
                "{hz} Hz: {bands:?}"
            );
        }
    }

    #[test]
    fn silence_and_short_input_read_zero() {
        assert_eq!(spectrum(&vec![0.0; WINDOW * 2], RATE), [0.0; BANDS]);
        assert_eq!(spectrum(&[0.5, 0.5], RATE), [0.0; BANDS]);
        assert_eq!(levels(&[]), [0.0; 4]);
    }

    #[test]
    fn levels_are_peak_and_rms_per_channel() {
        let mut stereo = sine(1000.0, 0.8, 4800);
        for frame in stereo.chunks_exact_mut(2) {
            frame[1] = 0.25;
        }
        let [peak_l, rms_l, peak_r, rms_r] = levels(&stereo);
        assert!((peak_l - 0.8).abs() < 1e-3, "{peak_l}");
        assert!((rms_l - 0.8 / 2f32.sqrt()).abs() < 1e-3, "{rms_l}");
        assert_eq!((peak_r, rms_r), (0.25, 0.25));
    }
}
