//! `underpass skill install DIR`: writes `DIR/underpass.md`, a short reference for coding
//! agents. Contacts nothing.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// The reference text, kept next to this file so it is reviewed with the code.
const SKILL: &str = include_str!("skill.md");

/// Flags of `underpass skill`.
#[derive(Debug, Clone, Args)]
pub struct SkillArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SkillAction,
}

/// `skill` actions.
#[derive(Debug, Clone, Subcommand)]
pub enum SkillAction {
    /// Write DIR/underpass.md.
    Install {
        /// Directory to write into (created if missing).
        dir: PathBuf,
        /// Print what would be written instead of writing.
        #[arg(long)]
        dry_run: bool,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `skill install`.
pub fn run(args: SkillArgs) -> Result<(), String> {
    let SkillAction::Install {
        dir,
        dry_run,
        force,
    } = args.action;
    let path = dir.join("underpass.md");
    if dry_run {
        println!("would write {} ({} bytes)", path.display(), SKILL.len());
        return Ok(());
    }
    if path.exists() && !force {
        return Err(format!(
            "{} exists; pass --force to overwrite it",
            path.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(&path, SKILL).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
