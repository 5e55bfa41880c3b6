//! libasound prints its own error lines to stderr ("ALSA lib confmisc.c:855:
//! (parse_card) cannot find card '0'", eight of them whenever a box without a
//! card opens the default device). They are routed into the daemon's log at
//! debug level instead: they explain a device error that the daemon reports
//! itself, in words, at warn or error.

use std::ffi::{CStr, c_char, c_int};

unsafe extern "C" {
    fn chronus_alsa_route_errors() -> c_int;
}

/// Installs the handler; process-wide, so call it once before any device is
/// opened (later calls replace the handler with itself).
pub fn route_library_errors() {
    // SAFETY: `snd_lib_error_set_handler` only stores the function pointer; the
    // handler it installs is `chronus_alsa_error` below, which is sound to call
    // from any thread at any time.
    let rc = unsafe { chronus_alsa_route_errors() };
    if rc < 0 {
        tracing::debug!(
            rc,
            "libasound refused the error handler; its lines stay on stderr"
        );
    }
}

/// Called by the C shim with a formatted, NUL-terminated message.
#[unsafe(no_mangle)]
extern "C" fn chronus_alsa_error(
    file: *const c_char,
    line: c_int,
    function: *const c_char,
    err: c_int,
    message: *const c_char,
) {
    let text = |p: *const c_char| {
        if p.is_null() {
            std::borrow::Cow::Borrowed("")
        } else {
            // SAFETY: libasound passes NUL-terminated strings (its own source file
            // and function names, and the shim's buffer) valid for this call.
            unsafe { CStr::from_ptr(p) }.to_string_lossy()
        }
    };
    tracing::debug!(
        target: "alsa",
        source = %format_args!("{}:{}", text(file), line),
        function = %text(function),
        err,
        "libasound: {}",
        text(message)
    );
}
