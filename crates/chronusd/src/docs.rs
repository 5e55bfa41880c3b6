//! `chronusd docs DIR` (hidden): the man pages chronusd(8) and chronus.toml(5) and
//! shell completions, generated from the clap definitions behind `--help` and the
//! settings table behind `check-config`, so what the package installs cannot drift
//! from the binary. `scripts/package` runs it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

pub fn run(dir: &Path) -> ExitCode {
    match write_all(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chronusd docs: cannot write into {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn write_all(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .render(&mut page)?;
    page.extend_from_slice(DAEMON_SECTIONS.as_bytes());
    std::fs::write(dir.join("chronusd.8"), page)?;
    std::fs::File::create(dir.join("chronus.toml.5"))?.write_all(config_page().as_bytes())?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "chronusd", dir)?;
    }
    Ok(())
}

const DAEMON_SECTIONS: &str = r#".SH ENVIRONMENT
Every setting can be given as a CHRONUS_* variable; see
.BR chronus.toml (5)
for the list.
.SH FILES
.TP
.I /etc/chronus/chronus.toml
the configuration file, when present and no other is named.
.TP
.I /var/lib/chronus
state of the packaged service (journals, recordings, patterns).
.SH EXIT STATUS
0 after a clean stop; 78 (EX_CONFIG) for an invalid setting, a named audio device
that does not exist, or a sound server at another sample rate; 65 for a score that
cannot be rendered; 1 for any other failure.
.SH SEE ALSO
.BR chronusctl (1),
.BR chronus.toml (5),
.BR systemd.service (5)
"#;

/// Text as roff: backslashes escaped, a leading period or quote defused.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// chronus.toml(5): every setting, section by section, as the table defines it.
fn config_page() -> String {
    let mut page = format!(
        ".TH CHRONUS.TOML 5 \"\" \"chronus {}\" \"File Formats\"\n\
         .SH NAME\nchronus.toml \\- configuration of the Chronus audio daemon\n\
         .SH DESCRIPTION\n\
         Settings come, lowest to highest, from built\\-in defaults, a TOML file \
         (\\fB\\-\\-config\\fR \\fIFILE\\fR, else \\fBCHRONUS_CONFIG\\fR, else \
         \\fI/etc/chronus/chronus.toml\\fR when present), \\fBCHRONUS_*\\fR environment \
         variables, and \\fB\\-\\-set\\fR \\fIkey=value\\fR flags. \
         \\fBchronusd check\\-config\\fR prints the effective configuration with the \
         source of each value. An invalid value or an unknown key stops the daemon \
         with exit status 78 and a message naming the setting.\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut section = None;
    for s in chronus_config::settings() {
        if section != Some(s.section()) {
            section = Some(s.section());
            match s.section() {
                Some(name) => page.push_str(&format!(".SH [{}]\n", roff(name))),
                None => page.push_str(".SH TOP\\-LEVEL KEYS\n"),
            }
        }
        page.push_str(&format!(
            ".TP\n.B {}\n{}\n",
            roff(s.name()),
            roff(s.description)
        ));
        let default = s.default_toml().unwrap_or_else(|| "unset".into());
        page.push_str(&format!(".br\nDefault: {}.\n", roff(&default)));
        page.push_str(&format!(".br\nAccepted: {}.\n", roff(&s.accepted())));
        let env = match s.env_alias {
            Some(alias) => format!("{} (legacy name: {alias})", s.env),
            None => s.env.to_owned(),
        };
        page.push_str(&format!(".br\nEnvironment: \\fB{}\\fR.\n", roff(&env)));
    }
    page.push_str(".SH SEE ALSO\n.BR chronusd (8),\n.BR chronusctl (1)\n");
    page
}
