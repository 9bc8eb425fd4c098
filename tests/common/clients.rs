//! Servers with a clients file (`--clients`): the file in the temp directory (rewritten for
//! reloads, removed on drop), a server started on it, clients connected with their own tokens.

use std::path::PathBuf;

use underpass::client::{Binding, ClientError, ClientOptions, ClientSession};
use underpass::proto::BindErrorCode;
use underpass::server::{Server, ServerConfig};

use super::{within, DOMAIN};

/// A clients file in a temporary directory; removed when dropped.
pub struct TempClients {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TempClients {
    pub fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.toml");
        std::fs::write(&path, text).unwrap();
        Self { path, _dir: dir }
    }

    /// Replaces the file's content (then reload the server).
    pub fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

/// A `[[client]]` table with a plain token (the tests' tokens are not secrets) and `extra` keys.
pub fn client_block(name: &str, token: &str, extra: &str) -> String {
    format!("[[client]]\nname = \"{name}\"\ntoken = \"{token}\"\n{extra}\n\n")
}

/// A server under [`DOMAIN`] whose clients are those of `file`, with no shared token unless
/// `f` sets one.
pub async fn clients_server(file: &TempClients, f: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut cfg = ServerConfig::local("unused");
    cfg.token = None;
    cfg.clients_file = Some(file.path.clone());
    cfg.domain = Some(DOMAIN.into());
    f(&mut cfg);
    Server::start(cfg).await.expect("server starts")
}

/// A client of `server` holding `token`.
pub async fn connect_as(server: &Server, token: &str) -> ClientSession {
    within(
        10,
        ClientSession::connect(&ClientOptions::new(server.control_url(), token)),
    )
    .await
    .unwrap_or_else(|e| panic!("client connects: {e}"))
}

/// The BIND_ERR code of a refused bind (panics when it was not refused).
pub fn refused(result: Result<Binding, ClientError>) -> (BindErrorCode, String) {
    match result {
        Err(ClientError::Bind { code, message }) => (code, message),
        Err(other) => panic!("expected a BIND_ERR, got {other}"),
        Ok(b) => panic!("expected a BIND_ERR, bind {} succeeded", b.bind_id()),
    }
}
