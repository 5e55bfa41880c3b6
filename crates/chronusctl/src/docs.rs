//! `chronusctl docs DIR` (hidden): chronusctl(1) and the shell completions, from the
//! same clap definitions as `--help`. `scripts/package` runs it.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::failure::{Failure, IOERR};

pub fn run(dir: &Path) -> Result<(), Failure> {
    let written = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut cmd = Cli::command();
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        page.extend_from_slice(
            b".SH EXIT STATUS\n0 on success; 65 when chronusd refuses a request; 69 when it \
              does not answer; 64 for a usage error.\n\
              .SH SEE ALSO\n.BR chronusd (8),\n.BR chronus.toml (5)\n",
        );
        std::fs::write(dir.join("chronusctl.1"), page)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut cmd, "chronusctl", dir)?;
        }
        Ok(())
    })();
    written.map_err(|e| {
        Failure::new(
            IOERR,
            anyhow::Error::new(e).context(format!("cannot write into {}", dir.display())),
        )
    })
}
