//! `underpass man`: manual pages in roff, generated from the command definition (clap_mangen):
//! `underpass(1)` on stdout, or with `--dir` one page per subcommand as well.

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::Cli;

/// Flags of `underpass man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write underpass.1 and a page per subcommand (underpass-server.1, ...) into this
    /// directory instead of printing underpass.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints or writes the pages.
pub fn run(args: ManArgs) -> Result<(), String> {
    let cmd = Cli::command();
    match args.dir {
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .map_err(|e| format!("cannot write the manual page: {e}")),
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .map_err(|e| format!("cannot write the manual pages to {}: {e}", dir.display()))?;
            println!("wrote {}", dir.display());
            Ok(())
        }
    }
}
