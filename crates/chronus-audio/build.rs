//! Compiles the shim that routes libasound's error lines into the log (see
//! `src/alsa_log.rs`).

fn main() {
    println!("cargo:rerun-if-changed=csrc/alsa_errors.c");
    cc::Build::new()
        .file("csrc/alsa_errors.c")
        .warnings(true)
        .compile("chronus_alsa_errors");
    // The shim calls into libasound; name it after the archive so the linker
    // resolves it whatever order the crates' libraries come in.
    println!("cargo:rustc-link-lib=asound");
}
