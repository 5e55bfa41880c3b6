//! Integration tests of `chronus_config`, through the public API the daemon uses.

mod common;
mod example_file;
mod loading;
mod per_setting;
