//! `underpass token new`: a fresh client token, shown once, and the `[[client]]` block with its
//! SHA-256 for the server's clients file. Contacts nothing.

use clap::{Args, Subcommand};

use crate::http::edge::token::generate_token;
use crate::server::clients::{check_name, TokenHash};

/// Flags of `underpass token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// Subcommands of `underpass token`.
#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Print a fresh token and the [[client]] block (with its token_sha256) to paste into the
    /// server's clients file.
    New {
        /// The client's name in the block (letters, digits, '.', '_', '-').
        #[arg(long, default_value = "client")]
        name: String,
    },
}

/// Prints the token and the block on stdout.
pub fn run(args: TokenArgs) -> Result<(), String> {
    let TokenCommand::New { name } = args.command;
    let name = check_name(&name)?;
    let token = generate_token();
    print!("{}", block(&name, &token));
    eprintln!(
        "Give the token to the client (--token or UNDERPASS_TOKEN); the server keeps only its \
         SHA-256, so this is the only time it is shown. Paste the block into the --clients file \
         and reload the server (SIGHUP or `underpass admin reload`)."
    );
    Ok(())
}

/// The text printed for `name` and `token`.
fn block(name: &str, token: &str) -> String {
    let digest = TokenHash::of(token).to_hex();
    format!(
        "token: {token}\n\
         \n\
         [[client]]\n\
         name = \"{name}\"\n\
         token_sha256 = \"{digest}\"\n\
         # subdomains = [\"{name}\", \"{name}-*\"]   # host routes it may bind ('@': the root); absent: none\n\
         # random_subdomain = true              # may ask for a server-assigned up-xxxxxxxxxx name\n\
         # ports = [\"21000-21010\"]               # dedicated http and tcp expose ports; absent: none\n\
         # pull = false                         # may open pull bindings\n\
         # forward = [\"5432\"]                    # server loopback ports it may forward to\n\
         # max_sessions = 4\n\
         # max_bindings = 8                     # per session; default: the server's limit\n\
         # max_bytes_per_second = \"10MiB\"       # each direction, all its streams together\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::clients::ClientsFile;

    #[test]
    fn the_block_parses_and_holds_the_tokens_digest() {
        let text = block("alice", "tok-123");
        let token_line = text.lines().next().unwrap();
        assert_eq!(token_line, "token: tok-123");
        let toml: String = text.lines().skip(1).collect::<Vec<_>>().join("\n");
        let file = ClientsFile::parse(&toml).unwrap();
        assert_eq!(file.clients.len(), 1);
        assert_eq!(file.clients[0].name, "alice");
        assert_eq!(file.clients[0].token, TokenHash::of("tok-123"));
        assert!(file.warnings.is_empty());
    }
}
