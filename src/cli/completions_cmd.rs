//! `underpass completions SHELL`: a completion script for bash, zsh, fish, PowerShell or elvish,
//! generated from the command definition itself, so it always knows every flag.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

/// Flags of `underpass completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the script on stdout.
pub fn run(args: CompletionsArgs) -> Result<(), String> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "underpass", &mut std::io::stdout());
    Ok(())
}
