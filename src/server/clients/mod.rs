//! Client identities: who may connect, and what each one may bind.
//!
//! Without `--clients`, every client holds the shared `--token` and is the client `default`
//! with every right, as before. With `--clients FILE`, each `[[client]]` of the file has its
//! own token (the server keeps only its SHA-256) and its own scope: host routes, dedicated
//! ports, pull, forward ports, session and binding counts, a bandwidth limit. A shared
//! `--token` given as well stays the client `default` with every right.
//!
//! A session remembers the client it authenticated as; every later decision (BIND, takeover,
//! cluster, resume, JOIN) looks at that client's scope as it is now, and a reload (SIGHUP or
//! the admin API) ends the sessions of removed clients and revokes the bindings a shrunk scope
//! no longer covers.

mod digest;
mod file;
mod pattern;
mod reload;
mod scope;
mod usage;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub use digest::TokenHash;
pub use file::{check_name, ClientSpec, ClientsFile, DEFAULT_CLIENT};
pub use pattern::Pattern;
pub use reload::{reload, ReloadReport};
pub use scope::{wants_of_record, Scope, Want, DEFAULT_MAX_SESSIONS};
pub use usage::ClientUsage;

/// One client the server knows.
#[derive(Debug)]
pub struct Client {
    /// Unique name, shown in logs, the admin API and metrics.
    pub name: Arc<str>,
    /// SHA-256 of its token.
    pub token: TokenHash,
    /// What it may do.
    pub scope: Scope,
    /// Its bandwidth buckets and totals; the same object across reloads while the name stays.
    pub usage: Arc<ClientUsage>,
}

impl Client {
    /// True when both are the same client (by name): sessions of one client may take routes
    /// over from each other, share a route in cluster mode and resume each other.
    pub fn same_as(&self, other: &Client) -> bool {
        self.name == other.name
    }
}

/// The clients in force, and where they come from.
#[derive(Debug)]
pub struct ClientRegistry {
    file: Option<PathBuf>,
    shared: Option<TokenHash>,
    admin: Option<TokenHash>,
    clients: RwLock<Arc<[Arc<Client>]>>,
}

impl ClientRegistry {
    /// The shared token (client `default`), the clients of `file`, or both. The admin token
    /// is only used to refuse a client token equal to it.
    pub fn load(
        shared: Option<&str>,
        admin: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Self, String> {
        if shared.is_none() && file.is_none() {
            return Err("the server needs a shared --token or a --clients file".into());
        }
        let registry = Self {
            file: file.map(Path::to_path_buf),
            shared: shared.map(TokenHash::of),
            admin: admin.map(TokenHash::of),
            clients: RwLock::new(Arc::from(Vec::new())),
        };
        let clients = registry.read()?;
        *registry.clients.write().unwrap_or_else(|e| e.into_inner()) = clients;
        Ok(registry)
    }

    /// The clients file, when there is one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Every client in force.
    pub fn all(&self) -> Arc<[Arc<Client>]> {
        self.clients
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The client holding `token`, comparing its digest against every client in constant time.
    pub fn authenticate(&self, token: &str) -> Option<Arc<Client>> {
        let clients = self.all();
        let presented = TokenHash::of(token);
        digest::find(&presented, clients.iter().map(|c| c.token)).map(|i| clients[i].clone())
    }

    /// The client named `name` as it is now; `None` once a reload removed it.
    pub fn current(&self, name: &str) -> Option<Arc<Client>> {
        self.all().iter().find(|c| &*c.name == name).cloned()
    }

    /// Reads the file again and builds the clients it describes (plus `default`), reusing the
    /// totals of clients that keep their name. Changes nothing; see [`reload`].
    fn read(&self) -> Result<Arc<[Arc<Client>]>, String> {
        let old = self.all();
        let at = |e: String| match &self.file {
            Some(path) => format!("{}: {e}", path.display()),
            None => e,
        };
        let specs = match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let parsed = ClientsFile::parse(&text).map_err(at)?;
                for warning in &parsed.warnings {
                    tracing::warn!(file = %path.display(), "{warning}");
                }
                parsed.clients
            }
            None => Vec::new(),
        };
        for spec in &specs {
            let clash = |t: Option<TokenHash>| t.is_some_and(|t| t.ct_eq(&spec.token));
            if clash(self.shared) {
                return Err(at(format!(
                    "line {}: client '{}' has the same token as --token",
                    spec.line, spec.name
                )));
            }
            if clash(self.admin) {
                return Err(at(format!(
                    "line {}: client '{}' has the same token as --admin-token",
                    spec.line, spec.name
                )));
            }
        }
        let keep = |name: &str, rate: Option<u64>| {
            let usage = old
                .iter()
                .find(|c| &*c.name == name)
                .map(|c| c.usage.clone())
                .unwrap_or_else(|| Arc::new(ClientUsage::new(rate)));
            usage.set_rate(rate);
            usage
        };
        let shared = self.shared.map(|token| Client {
            name: Arc::from(DEFAULT_CLIENT),
            token,
            scope: Scope::full(),
            usage: keep(DEFAULT_CLIENT, None),
        });
        let clients: Vec<Arc<Client>> = shared
            .into_iter()
            .chain(specs.into_iter().map(|s| Client {
                usage: keep(&s.name, s.scope.max_bytes_per_second),
                name: Arc::from(s.name),
                token: s.token,
                scope: s.scope,
            }))
            .map(Arc::new)
            .collect();
        Ok(Arc::from(clients))
    }

    fn replace(&self, clients: Arc<[Arc<Client>]>) {
        *self.clients.write().unwrap_or_else(|e| e.into_inner()) = clients;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clients file in the temp directory, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn file(text: &str) -> TempFile {
        let name = format!("underpass-clients-{}.toml", rand::random::<u64>());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    #[test]
    fn the_shared_token_alone_is_default_with_every_right() {
        let r = ClientRegistry::load(Some("shared"), None, None).unwrap();
        let c = r.authenticate("shared").unwrap();
        assert_eq!(&*c.name, DEFAULT_CLIENT);
        assert_eq!(c.scope, Scope::full());
        assert!(r.authenticate("other").is_none());
        assert!(ClientRegistry::load(None, None, None).is_err());
    }

    #[test]
    fn file_clients_and_default_side_by_side() {
        let f = file("[[client]]\nname = \"alice\"\ntoken = \"a-token\"\n\n[[client]]\nname = \"bob\"\ntoken = \"b-token\"\n");
        let only_file = ClientRegistry::load(None, None, Some(&f.0)).unwrap();
        assert_eq!(&*only_file.authenticate("b-token").unwrap().name, "bob");
        assert!(only_file.authenticate("shared").is_none());
        let both = ClientRegistry::load(Some("shared"), None, Some(&f.0)).unwrap();
        assert_eq!(&*both.authenticate("shared").unwrap().name, DEFAULT_CLIENT);
        assert_eq!(&*both.authenticate("a-token").unwrap().name, "alice");
        assert!(both.current("alice").is_some() && both.current("carol").is_none());
    }

    #[test]
    fn client_tokens_must_differ_from_the_server_tokens() {
        let f = file("[[client]]\nname = \"alice\"\ntoken = \"same\"\n");
        let err = ClientRegistry::load(Some("same"), None, Some(&f.0)).unwrap_err();
        assert!(err.contains("--token") && !err.contains("same\""), "{err}");
        let err = ClientRegistry::load(None, Some("same"), Some(&f.0)).unwrap_err();
        assert!(err.contains("--admin-token"), "{err}");
    }

    #[test]
    fn totals_survive_a_reread() {
        let f = file("[[client]]\nname = \"alice\"\ntoken = \"a\"\nmax_bytes_per_second = 4096\n");
        let r = ClientRegistry::load(None, None, Some(&f.0)).unwrap();
        let before = r.current("alice").unwrap().usage.clone();
        assert!(before.throttle().is_some());
        std::fs::write(&f.0, "[[client]]\nname = \"alice\"\ntoken = \"a\"\n").unwrap();
        r.replace(r.read().unwrap());
        let after = r.current("alice").unwrap().usage.clone();
        assert!(Arc::ptr_eq(&before, &after));
        assert!(after.throttle().is_none());
    }
}
