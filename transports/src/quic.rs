//! QUIC carriers (quinn, rustls with the *ring* provider), behind the `quic` feature.
//!
//! One QUIC connection per server URL, one bidirectional QUIC stream per carrier (PROTOCOL.md,
//! "QUIC carrier"): striping costs no extra handshake and a lost packet stalls only the stream it
//! belongs to. The ALPN is [`ALPN`]; the first stream carries HELLO, the others JOIN, exactly as
//! over WebSocket, but that is the business of the layer above.
//!
//! Client side: [`QuicTransport`] dials `quic://host:port`. Its first `connect` opens the
//! connection, later ones open a new stream on it while it lives. The server is authenticated by
//! a pinned SHA-256 fingerprint of its certificate or by a CA file ([`QuicTrust`]); there is no
//! way to skip verification.
//!
//! Server side: [`QuicAcceptor`] owns the UDP endpoint and yields one [`Carrier`] per
//! bidirectional stream of any connection. [`QuicServerCert`] loads, generates or caches the
//! certificate.
//!
//! # Framing
//! A QUIC stream is a byte stream, not a sequence of messages. The protocol's frames delimit
//! themselves (a 9-byte header holding the payload length), so `send` writes the message's frames
//! as they are and `recv` cuts the byte stream back into frames: it returns exactly **one frame**
//! per call, not the batch the peer sent. The mux decodes every message as a sequence of frames
//! anyway, so this is all it needs; a carrier user that sends bytes which are not whole frames
//! gets them back cut differently (or refused).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use quinn::{ConnectionError, ReadError, VarInt, WriteError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Carrier, CarrierInfo, CarrierRx, CarrierTx, CloseReason, Endpoint, Transport};

/// The rustls version quinn is built on (the same one as [`crate::ws::rustls`]).
pub use quinn::rustls;
/// DER certificate and private key types, for [`QuicServerCert::new`].
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN protocol of underpass over QUIC (PROTOCOL.md).
pub const ALPN: &[u8] = b"underpass/2";

/// [`ALPN`] as text, reported in [`CarrierInfo::subprotocol`].
pub const ALPN_STR: &str = "underpass/2";

/// Time allowed by default for name resolution, the QUIC handshake and opening the stream.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Stream reset code of a carrier dropped without `close` (not a clean end for the peer).
const CODE_DROPPED: u32 = 0;

// ---------------------------------------------------------------------------------------------
// Frame header
//
// The main crate owns the codec, but it depends on this crate, so the little this module needs
// (PROTOCOL.md "Frames": `type: u8, stream_id: u32 BE, length: u32 BE`, payload at most 65,536
// bytes) is repeated here. Keep it in step with the codec.

/// Length of a frame header.
const HEADER_LEN: usize = 9;

/// Largest payload a frame may declare.
pub const MAX_FRAME_PAYLOAD: usize = 65_536;

/// Payload length declared by a complete header, refused when over [`MAX_FRAME_PAYLOAD`] so that
/// nothing is allocated for it.
fn payload_len(header: &[u8; HEADER_LEN]) -> io::Result<usize> {
    let len = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
    match usize::try_from(len) {
        Ok(len) if len <= MAX_FRAME_PAYLOAD => Ok(len),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "frame of type 0x{:02x} declares a {len}-byte payload, over the \
                 {MAX_FRAME_PAYLOAD}-byte limit",
                header[0]
            ),
        )),
    }
}

/// Cuts the bytes of a QUIC stream into frames.
///
/// Every frame is copied into its own buffer of exactly its size. Handing out slices of quinn's
/// chunks instead would save that copy for frames inside one packet, but each slice would keep
/// the whole receive buffer it came from alive for as long as the mux holds the frame; a copy at
/// memory speed is cheap next to QUIC's decryption.
#[derive(Default)]
struct FrameReader {
    /// Received bytes not yet moved into a frame: the rest of the last chunk from quinn.
    pending: Bytes,
    /// Header bytes of the next frame gathered so far (a header may straddle chunks).
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// The frame being filled, allocated at its final size once its header was read.
    frame: Option<BytesMut>,
    frame_len: usize,
}

impl FrameReader {
    /// Moves pending bytes into the current frame; returns it once complete. When this returns
    /// `Ok(None)`, every pending byte has been consumed.
    fn next_frame(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match &mut self.frame {
                None => {
                    let n = (HEADER_LEN - self.header_len).min(self.pending.len());
                    self.header[self.header_len..self.header_len + n]
                        .copy_from_slice(&self.pending[..n]);
                    self.pending.advance(n);
                    self.header_len += n;
                    if self.header_len < HEADER_LEN {
                        return Ok(None);
                    }
                    let total = HEADER_LEN + payload_len(&self.header)?;
                    let mut frame = BytesMut::with_capacity(total);
                    frame.extend_from_slice(&self.header);
                    self.header_len = 0;
                    self.frame = Some(frame);
                    self.frame_len = total;
                }
                Some(frame) => {
                    let n = (self.frame_len - frame.len()).min(self.pending.len());
                    frame.extend_from_slice(&self.pending[..n]);
                    self.pending.advance(n);
                    if frame.len() < self.frame_len {
                        return Ok(None);
                    }
                    return Ok(self.frame.take().map(BytesMut::freeze));
                }
            }
        }
    }

    /// Whether no partial frame is held: a stream that ends now ends cleanly.
    fn is_between_frames(&self) -> bool {
        self.pending.is_empty() && self.header_len == 0 && self.frame.is_none()
    }
}

// ---------------------------------------------------------------------------------------------
// Tuning

/// Flow-control, liveness and socket settings of QUIC connections.
///
/// The defaults keep QUIC's own flow control out of the way of the mux's (1 MiB per stream,
/// 16 MiB per session): one carrier may carry a whole session's window, and a connection may
/// carry a little more than one session.
#[derive(Debug, Clone)]
pub struct QuicTuning {
    /// Bytes the peer may send on one carrier (QUIC stream) ahead of our reading.
    pub stream_receive_window: u32,
    /// Bytes the peer may send on the whole connection ahead of our reading. This also bounds
    /// what an unauthenticated peer can make the server buffer per connection.
    pub receive_window: u32,
    /// Bytes of unacknowledged data quinn buffers for sending per connection.
    pub send_window: u64,
    /// Carriers (bidirectional streams) a client may have open at once on one connection.
    pub max_carriers_per_connection: u32,
    /// Keep-alive interval; keeps NAT bindings and idle connections alive.
    pub keep_alive_interval: Duration,
    /// A connection silent for this long is dead (at most 2^62 ms).
    pub max_idle_timeout: Duration,
    /// SO_SNDBUF and SO_RCVBUF asked for on the UDP socket; the kernel may grant less.
    pub socket_buffer_bytes: usize,
}

impl Default for QuicTuning {
    fn default() -> Self {
        QuicTuning {
            stream_receive_window: 16 << 20,
            receive_window: 32 << 20,
            send_window: 32 << 20,
            max_carriers_per_connection: 64,
            keep_alive_interval: Duration::from_secs(15),
            max_idle_timeout: Duration::from_secs(60),
            socket_buffer_bytes: 4 << 20,
        }
    }
}

impl QuicTuning {
    /// quinn's transport settings. A client accepts no stream from the server (`server` false):
    /// carriers are always opened by the client. Datagrams and unidirectional streams are unused,
    /// so they are refused.
    fn transport_config(&self, server: bool) -> io::Result<quinn::TransportConfig> {
        let idle = quinn::IdleTimeout::try_from(self.max_idle_timeout).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "QUIC max_idle_timeout is too large",
            )
        })?;
        let mut config = quinn::TransportConfig::default();
        config
            .stream_receive_window(VarInt::from_u32(self.stream_receive_window))
            .receive_window(VarInt::from_u32(self.receive_window))
            .send_window(self.send_window)
            .max_concurrent_bidi_streams(VarInt::from_u32(if server {
                self.max_carriers_per_connection
            } else {
                0
            }))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .datagram_receive_buffer_size(None)
            .keep_alive_interval(Some(self.keep_alive_interval))
            .max_idle_timeout(Some(idle));
        // GSO and GRO need no setting: quinn-udp uses them by itself where the kernel has them,
        // and falls back to one datagram per system call elsewhere.
        Ok(config)
    }
}

/// The UDP socket of an endpoint, with large kernel buffers: at high rates the default
/// (about 200 KiB on Linux) overflows between two reads and every drop costs a QUIC loss
/// recovery. The effective sizes are logged, and a warning says how to raise the cap.
fn udp_socket(addr: SocketAddr, buffer: usize) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Failing to enlarge a buffer is not fatal: the reported sizes below show what we got.
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    let recv = socket.recv_buffer_size().unwrap_or(0);
    let send = socket.send_buffer_size().unwrap_or(0);
    let local = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(addr);
    // Linux reports twice the usable size (the other half is its bookkeeping).
    let usable = |reported: usize| {
        if cfg!(target_os = "linux") {
            reported / 2
        } else {
            reported
        }
    };
    tracing::info!(
        %local,
        recv_buffer = usable(recv),
        send_buffer = usable(send),
        asked = buffer,
        "QUIC UDP socket buffers"
    );
    if usable(recv) < buffer {
        tracing::warn!(
            %local,
            granted = usable(recv),
            asked = buffer,
            "the kernel capped the QUIC receive buffer; fast transfers may lose packets: raise \
             the cap with `sysctl -w net.core.rmem_max={buffer}` (persist it in /etc/sysctl.d)"
        );
    }
    if usable(send) < buffer {
        tracing::warn!(
            %local,
            granted = usable(send),
            asked = buffer,
            "the kernel capped the QUIC send buffer: raise the cap with \
             `sysctl -w net.core.wmem_max={buffer}`"
        );
    }
    Ok(socket.into())
}

fn new_endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
    tuning: &QuicTuning,
) -> io::Result<quinn::Endpoint> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other(
            "a QUIC endpoint needs a running Tokio runtime",
        ));
    }
    let socket = udp_socket(addr, tuning.socket_buffer_bytes)?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// SHA-256 of a certificate's DER. ring is already in the build as rustls' crypto provider, so
/// this adds no crate (sha2 would add several).
fn sha256(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Parses a SHA-256 fingerprint written as 64 hex digits, optionally separated by `:` (as
/// `openssl x509 -fingerprint -sha256` prints it), in either case.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let digits: Vec<u8> = text
        .trim()
        .bytes()
        .filter(|&c| c != b':')
        .map(|c| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        })
        .collect::<Option<_>>()
        .ok_or_else(|| format!("SHA-256 fingerprint '{text}' has a character that is not hex"))?;
    if digits.len() != 64 {
        return Err(format!(
            "SHA-256 fingerprint '{text}' has {} hex digits instead of 64",
            digits.len()
        ));
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = pair[0] << 4 | pair[1];
    }
    Ok(out)
}

fn pem_error(what: &str, path: &Path, err: rustls_pki_types::pem::Error) -> io::Error {
    match err {
        rustls_pki_types::pem::Error::Io(e) => {
            io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
        }
        other => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} {}: {other}", path.display()),
        ),
    }
}

/// Certificate chain (end-entity first) and private key of a QUIC server.
pub struct QuicServerCert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for QuicServerCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("QuicServerCert")
            .field("certificates", &self.chain.len())
            .field("sha256", &self.fingerprint_sha256_hex())
            .finish_non_exhaustive()
    }
}

impl Clone for QuicServerCert {
    fn clone(&self) -> Self {
        QuicServerCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl QuicServerCert {
    /// A chain (end-entity certificate first) and its key. Whether they match is checked by
    /// [`QuicAcceptor::bind`].
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> io::Result<Self> {
        if chain.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty certificate chain",
            ));
        }
        Ok(QuicServerCert { chain, key })
    }

    /// Reads a PEM certificate chain (end-entity first) and a PEM private key (PKCS#8, PKCS#1
    /// or SEC1), e.g. from `--tls-cert` and `--tls-key`.
    pub fn from_pem_files(cert: &Path, key: &Path) -> io::Result<Self> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| pem_error("certificate file", cert, e))?;
        if chain.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("certificate file {}: no certificate in it", cert.display()),
            ));
        }
        let key_der =
            PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error("key file", key, e))?;
        Self::new(chain, key_der)
    }

    /// A fresh self-signed certificate (ECDSA P-256) for `names`: DNS names or IP addresses.
    /// Clients pin it by its fingerprint, or use its PEM as their CA file.
    pub fn self_signed(names: &[String]) -> io::Result<Self> {
        Ok(Self::generate(names)?.0)
    }

    /// The certificate and key in one PEM text too, for [`load_or_create`](Self::load_or_create).
    fn generate(names: &[String]) -> io::Result<(Self, String)> {
        if names.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a self-signed certificate needs at least one name",
            ));
        }
        let certified = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot generate a certificate for {names:?}: {e}"),
            )
        })?;
        let pem = format!(
            "{}{}",
            certified.cert.pem(),
            certified.signing_key.serialize_pem()
        );
        let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        Ok((Self::new(vec![certified.cert.der().clone()], key)?, pem))
    }

    /// The certificate cached at `cache_path` (certificate and key PEM in one file), or a new
    /// self-signed one for `names` written there (mode 0600 on Unix), so that a restarted server
    /// keeps its fingerprint and pinned clients keep working. `names` only matter when the
    /// certificate is created: delete the file to get one for other names. A file that exists
    /// but cannot be read is an error, never silently replaced.
    pub fn load_or_create(cache_path: &Path, names: &[String]) -> io::Result<Self> {
        match std::fs::metadata(cache_path) {
            Ok(_) => return Self::from_pem_files(cache_path, cache_path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("certificate cache {}: {e}", cache_path.display()),
                ))
            }
        }
        let (cert, pem) = Self::generate(names)?;
        write_private_file(cache_path, pem.as_bytes()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot write certificate cache {}: {e}",
                    cache_path.display()
                ),
            )
        })?;
        tracing::info!(
            path = %cache_path.display(),
            sha256 = %cert.fingerprint_sha256_hex(),
            "created a self-signed QUIC certificate"
        );
        Ok(cert)
    }

    /// SHA-256 of the end-entity certificate's DER: what clients pin.
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        sha256(self.chain[0].as_ref())
    }

    /// [`fingerprint_sha256`](Self::fingerprint_sha256) as 64 lowercase hex digits.
    pub fn fingerprint_sha256_hex(&self) -> String {
        hex(&self.fingerprint_sha256())
    }

    /// The certificate chain, end-entity first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

/// Writes `data` to `path` readable by the owner only, through a temporary file and a rename so
/// that a crash never leaves a half-written key behind.
fn write_private_file(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = options
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(data)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Client

/// How a client authenticates the QUIC server. There is deliberately no "accept anything".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuicTrust {
    /// Accept exactly the certificate whose DER has this SHA-256 (`--server-cert-sha256`),
    /// whatever its names and dates, like an SSH host key. The handshake signature is still
    /// checked against it, so only the holder of its key passes.
    PinnedSha256([u8; 32]),
    /// Verify the server's chain against the PEM certificates in this file (`--ca`) and its
    /// name against the URL's host, as for HTTPS.
    CaFile(PathBuf),
}

/// The server's certificate is not the pinned one.
#[derive(Clone, Copy)]
struct FingerprintMismatch {
    expected: [u8; 32],
    actual: [u8; 32],
}

// rustls shows the inner error of `CertificateError::Other` with `Debug`: make it readable.
impl fmt::Debug for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "server certificate SHA-256 fingerprint did not match the pinned one: expected {}, \
             got {}",
            hex(&self.expected),
            hex(&self.actual)
        )
    }
}

impl std::error::Error for FingerprintMismatch {}

/// The last fingerprint mismatch a verifier saw. rustls and quinn turn it into a nested error
/// text; `connect` reports it plainly instead. Handshakes of one transport run one at a time,
/// so the slot belongs to the handshake that just failed.
type MismatchSlot = Arc<std::sync::Mutex<Option<FingerprintMismatch>>>;

/// Accepts exactly one end-entity certificate, by fingerprint.
#[derive(Debug)]
struct PinnedCertVerifier {
    expected: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
    mismatch: MismatchSlot,
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // A plain comparison: the pin is public (the server prints it), only the key is secret.
        let actual = sha256(end_entity.as_ref());
        if actual == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            let mismatch = FingerprintMismatch {
                expected: self.expected,
                actual,
            };
            *self.mismatch.lock().unwrap_or_else(|e| e.into_inner()) = Some(mismatch);
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(mismatch)),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn client_tls_config(
    trust: &QuicTrust,
    mismatch: &MismatchSlot,
) -> io::Result<rustls::ClientConfig> {
    let provider = provider();
    // QUIC requires TLS 1.3 (RFC 9001).
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?;
    let mut config = match trust {
        QuicTrust::PinnedSha256(expected) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertVerifier {
                expected: *expected,
                algorithms: provider.signature_verification_algorithms,
                mismatch: mismatch.clone(),
            }))
            .with_no_client_auth(),
        QuicTrust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| pem_error("CA file", path, e))?;
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("CA file {}: {e}", path.display()),
                    )
                })?;
            }
            if roots.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("CA file {}: no certificate in it", path.display()),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Where a `quic://host:port` URL points.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Target {
    /// Host as written, without the brackets of an IPv6 literal: the TLS server name.
    host: String,
    port: u16,
}

impl Target {
    fn parse(url: &str) -> io::Result<Target> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad QUIC server URL '{url}': {why} (expected quic://HOST:PORT)"),
            )
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if !scheme.eq_ignore_ascii_case("quic") {
            return Err(bad("the scheme is not quic"));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(bad("only a host and a port are allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, tail) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (host, tail.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = port
            .ok_or_else(|| bad("no port"))?
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("bad port"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Target {
            host: host.to_owned(),
            port,
        })
    }
}

/// Dials QUIC carriers: `quic://host:port` (the first address the host resolves to).
///
/// The first [`connect`](Transport::connect) to a server opens a QUIC connection; each later one
/// to the same host and port opens one more bidirectional stream on it while it is alive, and a
/// new connection once it is not. Concurrent `connect`s to a server that has no connection yet
/// wait for the first handshake and then share it. The stream reaches the server with its first
/// bytes, which is at once since the layer above starts with HELLO or JOIN.
///
/// `endpoint.subprotocol` and `endpoint.bearer` are not used: the ALPN is always [`ALPN`] and
/// authentication happens in HELLO.
///
/// Errors from `connect`: a bad URL is [`io::ErrorKind::InvalidInput`]; a certificate that does
/// not verify (wrong pin, unknown CA, wrong name) is [`io::ErrorKind::InvalidData`] with the
/// reason in the message; no answer in time is [`io::ErrorKind::TimedOut`] (UDP gives no
/// "connection refused").
pub struct QuicTransport {
    client_config: quinn::ClientConfig,
    tuning: QuicTuning,
    handshake_timeout: Duration,
    state: tokio::sync::Mutex<ClientState>,
    mismatch: MismatchSlot,
}

#[derive(Default)]
struct ClientState {
    /// One client endpoint per address family, made on first use.
    v4: Option<quinn::Endpoint>,
    v6: Option<quinn::Endpoint>,
    connections: HashMap<Target, quinn::Connection>,
}

impl fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicTransport")
            .field("tuning", &self.tuning)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl QuicTransport {
    /// A transport that authenticates servers with `trust` and the default [`QuicTuning`].
    /// Fails if the CA file cannot be read.
    pub fn new(trust: QuicTrust) -> io::Result<Self> {
        Self::with_tuning(trust, QuicTuning::default())
    }

    /// A transport with explicit tuning.
    pub fn with_tuning(trust: QuicTrust, tuning: QuicTuning) -> io::Result<Self> {
        let mismatch = MismatchSlot::default();
        let tls = client_tls_config(&trust, &mismatch)?;
        let crypto =
            QuicClientConfig::try_from(tls).map_err(|e| io::Error::other(e.to_string()))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
        client_config.transport_config(Arc::new(tuning.transport_config(false)?));
        Ok(QuicTransport {
            client_config,
            tuning,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            state: tokio::sync::Mutex::new(ClientState::default()),
            mismatch,
        })
    }

    /// Sets the time allowed for resolution, handshake and stream opening together
    /// (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// A live connection to `target`: the cached one unless it is closed or is `avoid` (a
    /// connection that just failed to open a stream), else a new one.
    async fn connection(
        &self,
        target: &Target,
        avoid: Option<usize>,
    ) -> io::Result<(quinn::Connection, bool)> {
        // Held across the handshake on purpose: concurrent connects then share one connection.
        let mut state = self.state.lock().await;
        if let Some(conn) = state.connections.get(target) {
            if conn.close_reason().is_none() && Some(conn.stable_id()) != avoid {
                return Ok((conn.clone(), true));
            }
            state.connections.remove(target);
        }
        let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {}: {e}", target.host)))?
            .next()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no address for {}", target.host),
                )
            })?;
        let slot = if addr.is_ipv4() {
            &mut state.v4
        } else {
            &mut state.v6
        };
        let endpoint = match slot {
            Some(endpoint) => endpoint.clone(),
            None => {
                let any = if addr.is_ipv4() {
                    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
                } else {
                    SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
                };
                slot.insert(new_endpoint(any, None, &self.tuning)?).clone()
            }
        };
        let connecting = endpoint
            .connect_with(self.client_config.clone(), addr, &target.host)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot dial {addr} as '{}': {e}", target.host),
                )
            })?;
        self.take_mismatch();
        let conn = connecting.await.map_err(|e| match self.take_mismatch() {
            Some(mismatch) => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("QUIC handshake with {addr} failed: {mismatch}"),
            ),
            None => {
                let err = connection_error(e);
                io::Error::new(
                    err.kind(),
                    format!("QUIC handshake with {addr} failed: {err}"),
                )
            }
        })?;
        tracing::debug!(server = %addr, "QUIC connection established");
        state.connections.insert(target.clone(), conn.clone());
        Ok((conn, false))
    }

    fn take_mismatch(&self) -> Option<FingerprintMismatch> {
        self.mismatch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    async fn dial(&self, endpoint: &Endpoint) -> io::Result<Carrier> {
        let target = Target::parse(&endpoint.url)?;
        let (mut conn, mut reused) = self.connection(&target, None).await?;
        loop {
            match conn.open_bi().await {
                Ok((send, recv)) => return Ok(carrier(send, recv, conn)),
                // The cached connection died since it was checked: dial a fresh one, once.
                Err(_) if reused => {
                    (conn, reused) = self.connection(&target, Some(conn.stable_id())).await?;
                }
                Err(e) => return Err(connection_error(e)),
            }
        }
    }
}

#[async_trait]
impl Transport for QuicTransport {
    fn name(&self) -> &'static str {
        "quic"
    }

    async fn connect(&self, endpoint: &Endpoint) -> io::Result<Carrier> {
        tokio::time::timeout(self.handshake_timeout, self.dial(endpoint))
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no QUIC carrier to {} within {:?}",
                        endpoint.url, self.handshake_timeout
                    ),
                ))
            })
    }
}

// ---------------------------------------------------------------------------------------------
// Server

/// Accepts QUIC connections on a UDP socket and yields their carriers.
///
/// Dropping it stops accepting connections, like dropping a `TcpListener`: new handshakes get no
/// answer (the client times out) and new streams on existing connections are not taken, but the
/// carriers already handed out keep working until they close. [`close`](Self::close) ends
/// everything at once and refuses new handshakes outright.
pub struct QuicAcceptor {
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    carriers: mpsc::Receiver<Carrier>,
    connections: Arc<AtomicU64>,
    accept_loop: JoinHandle<()>,
}

impl fmt::Debug for QuicAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicAcceptor")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl QuicAcceptor {
    /// Binds a UDP socket on `addr` and serves `cert` with the default [`QuicTuning`]. Must be
    /// called inside a Tokio runtime.
    pub fn bind(addr: SocketAddr, cert: QuicServerCert) -> io::Result<QuicAcceptor> {
        Self::bind_with_tuning(addr, cert, QuicTuning::default())
    }

    /// [`bind`](Self::bind) with explicit tuning.
    pub fn bind_with_tuning(
        addr: SocketAddr,
        cert: QuicServerCert,
        tuning: QuicTuning,
    ) -> io::Result<QuicAcceptor> {
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_single_cert(cert.chain, cert.key)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("QUIC server certificate or key unusable: {e}"),
                )
            })?;
        // rustls refuses, in QUIC, a client that does not offer this ALPN.
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto =
            QuicServerConfig::try_from(tls).map_err(|e| io::Error::other(e.to_string()))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server_config.transport_config(Arc::new(tuning.transport_config(true)?));

        let endpoint = new_endpoint(addr, Some(server_config), &tuning)?;
        let local_addr = endpoint.local_addr()?;
        // Small: a full queue holds back accept_bi of that connection, and the client waits.
        let (sink, carriers) = mpsc::channel(16);
        let connections = Arc::new(AtomicU64::new(0));
        let accept_loop = tokio::spawn(accept_loop(endpoint.clone(), sink, connections.clone()));
        Ok(QuicAcceptor {
            endpoint,
            local_addr,
            carriers,
            connections,
            accept_loop,
        })
    }

    /// The bound UDP address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Next carrier: one per bidirectional stream a client opened, from any connection, in the
    /// order the streams arrived. `None` once the endpoint is closed and its connections are
    /// gone. Cancel safe.
    pub async fn accept(&mut self) -> Option<Carrier> {
        self.carriers.recv().await
    }

    /// QUIC connections whose handshake completed since the bind (for metrics and tests).
    pub fn connections_accepted(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Closes every connection now with application error `code` and `reason` (peers' carriers
    /// fail with that [`CloseReason`]) and stops accepting.
    pub fn close(&self, code: u16, reason: &str) {
        self.endpoint.close(VarInt::from(code), reason.as_bytes());
    }
}

impl Drop for QuicAcceptor {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.endpoint.set_server_config(None);
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    sink: mpsc::Sender<Carrier>,
    connections: Arc<AtomicU64>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let sink = sink.clone();
        let connections = connections.clone();
        // A task per connection, so a slow handshake holds up nobody else.
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            let conn = match incoming.await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "QUIC handshake failed");
                    return;
                }
            };
            // rustls already refused other ALPNs; this keeps the invariant local.
            let alpn = conn
                .handshake_data()
                .and_then(|data| data.downcast::<HandshakeData>().ok())
                .and_then(|data| data.protocol);
            if alpn.as_deref() != Some(ALPN) {
                conn.close(VarInt::from_u32(0x0178), b"unsupported ALPN");
                return;
            }
            connections.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "QUIC connection accepted");
            serve_connection(conn, sink).await;
        });
    }
}

/// Hands out every bidirectional stream of `conn` as a carrier until it closes.
async fn serve_connection(conn: quinn::Connection, sink: mpsc::Sender<Carrier>) {
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    if sink.send(carrier(send, recv, conn.clone())).await.is_err() {
                        // The acceptor is gone: nobody takes carriers any more.
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(
                        peer = %conn.remote_address(),
                        reason = %e,
                        "QUIC connection ended"
                    );
                    return;
                }
            },
            () = sink.closed() => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Carrier halves

fn carrier(send: quinn::SendStream, recv: quinn::RecvStream, conn: quinn::Connection) -> Carrier {
    let info = CarrierInfo {
        transport: "quic",
        peer: Some(conn.remote_address()),
        subprotocol: Some(ALPN_STR.to_owned()),
        bearer: None,
    };
    Carrier {
        tx: Box::new(QuicTx {
            stream: send,
            conn,
            closed: false,
        }),
        rx: Box::new(QuicRx {
            stream: recv,
            reader: FrameReader::default(),
            state: RxState::Open,
        }),
        info,
    }
}

struct QuicTx {
    stream: quinn::SendStream,
    /// To report a dead connection from `close`, which the stream alone does not tell.
    conn: quinn::Connection,
    closed: bool,
}

#[async_trait]
impl CarrierTx for QuicTx {
    async fn send(&mut self, message: Bytes) -> io::Result<()> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "QUIC carrier is closed",
            ));
        }
        // Hands the buffer itself to quinn: no copy. Resolves once quinn has taken all of it,
        // which waits while QUIC flow control or the send window is exhausted.
        self.stream.write_chunk(message).await.map_err(write_error)
    }

    async fn close(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        if let Some(e) = self.conn.close_reason() {
            return Err(connection_error(e));
        }
        self.closed = true;
        // Sends FIN after the queued data; quinn delivers it as long as the connection lives,
        // which the client transport and the server's connection task ensure.
        self.stream.finish().map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, "QUIC carrier was already reset")
        })
    }
}

impl Drop for QuicTx {
    fn drop(&mut self) {
        // quinn would finish a dropped stream, which the peer would take for a clean close.
        if !self.closed {
            let _ = self.stream.reset(VarInt::from_u32(CODE_DROPPED));
        }
    }
}

struct QuicRx {
    stream: quinn::RecvStream,
    reader: FrameReader,
    state: RxState,
}

/// Where a receiving half stands once it stopped yielding frames.
#[derive(Clone, Copy)]
enum RxState {
    Open,
    /// The peer finished its side cleanly; every later `recv` returns `Ok(None)`.
    Closed,
    /// `recv` returned an error of this kind; every later `recv` fails the same way.
    Failed(io::ErrorKind),
}

impl QuicRx {
    async fn next_frame(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if let Some(frame) = self.reader.next_frame()? {
                return Ok(Some(frame));
            }
            // Cancel safe: quinn removes a chunk from its buffer only in the poll that returns
            // it, and the chunk is in `self.reader` before that poll ends.
            match self.stream.read_chunk(usize::MAX, true).await {
                Ok(Some(chunk)) => self.reader.pending = chunk.bytes,
                Ok(None) if self.reader.is_between_frames() => return Ok(None),
                Ok(None) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "QUIC carrier ended in the middle of a frame",
                    ))
                }
                Err(e) => return Err(read_error(e)),
            }
        }
    }
}

#[async_trait]
impl CarrierRx for QuicRx {
    async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        match self.state {
            RxState::Open => {}
            RxState::Closed => return Ok(None),
            RxState::Failed(kind) => {
                return Err(io::Error::new(kind, "QUIC carrier failed earlier"))
            }
        }
        let result = self.next_frame().await;
        match &result {
            Ok(Some(_)) => {}
            Ok(None) => self.state = RxState::Closed,
            Err(e) => self.state = RxState::Failed(e.kind()),
        }
        result
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

fn read_error(err: ReadError) -> io::Error {
    match err {
        ReadError::Reset(code) if code == VarInt::from_u32(CODE_DROPPED) => io::Error::new(
            io::ErrorKind::ConnectionReset,
            "peer dropped the QUIC carrier without closing it",
        ),
        ReadError::Reset(code) => CloseReason {
            code: u16::try_from(code.into_inner()).unwrap_or(u16::MAX),
            reason: String::new(),
        }
        .into_io_error(),
        ReadError::ConnectionLost(e) => connection_error(e),
        other => io::Error::other(format!("QUIC read error: {other}")),
    }
}

fn write_error(err: WriteError) -> io::Error {
    match err {
        WriteError::Stopped(code) => io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("peer stopped reading the QUIC carrier (code {code})"),
        ),
        WriteError::ClosedStream => {
            io::Error::new(io::ErrorKind::BrokenPipe, "QUIC carrier is closed")
        }
        WriteError::ConnectionLost(e) => connection_error(e),
        other => io::Error::other(format!("QUIC write error: {other}")),
    }
}

/// The `io::Error` the mux sees for a connection that ended.
fn connection_error(err: ConnectionError) -> io::Error {
    match err {
        // What quinn sends when every handle to a connection is dropped: nobody chose to close.
        ConnectionError::ApplicationClosed(close)
            if close.error_code == VarInt::from_u32(0) && close.reason.is_empty() =>
        {
            io::Error::new(
                io::ErrorKind::ConnectionReset,
                "peer dropped the QUIC connection",
            )
        }
        ConnectionError::ApplicationClosed(close) => CloseReason {
            code: u16::try_from(close.error_code.into_inner()).unwrap_or(u16::MAX),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        }
        .into_io_error(),
        ConnectionError::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("QUIC connection refused by the peer: {close}"),
            )
        }
        ConnectionError::ConnectionClosed(close) => io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("QUIC connection aborted by the peer: {close}"),
        ),
        ConnectionError::Reset => io::Error::new(
            io::ErrorKind::ConnectionReset,
            "QUIC connection reset by the peer",
        ),
        ConnectionError::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, "QUIC connection timed out")
        }
        ConnectionError::LocallyClosed => io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "QUIC connection closed locally",
        ),
        ConnectionError::VersionMismatch => io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "peer does not speak our QUIC version",
        ),
        // Includes a certificate we refused: the reason says why.
        ConnectionError::TransportError(e) => io::Error::new(io::ErrorKind::InvalidData, e),
        other => io::Error::other(format!("QUIC connection error: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// Feeds `bytes` in chunks of `step` and collects the frames.
    fn cut(bytes: &[u8], step: usize) -> io::Result<Vec<Bytes>> {
        let mut reader = FrameReader::default();
        let mut out = Vec::new();
        for chunk in bytes.chunks(step) {
            reader.pending = Bytes::copy_from_slice(chunk);
            while let Some(f) = reader.next_frame()? {
                out.push(f);
            }
            assert!(reader.pending.is_empty());
        }
        assert!(reader.is_between_frames());
        Ok(out)
    }

    #[test]
    fn frames_come_out_whole_whatever_the_chunking() {
        let frames = [
            frame(0x12, 1, b"hello"),
            frame(0x13, 1, b""),
            frame(0x12, 3, &vec![7u8; MAX_FRAME_PAYLOAD]),
            frame(0x01, 0, b"{}"),
        ];
        let all: Vec<u8> = frames.concat();
        for step in [1, 2, 8, 9, 10, 1000, 65_545, all.len()] {
            let got = cut(&all, step).unwrap();
            assert_eq!(got.len(), frames.len(), "step {step}");
            for (g, f) in got.iter().zip(&frames) {
                assert_eq!(&g[..], &f[..], "step {step}");
            }
        }
    }

    #[test]
    fn oversized_frame_is_refused_before_its_payload() {
        let mut header = vec![0x12, 0, 0, 0, 1];
        header.extend_from_slice(&(MAX_FRAME_PAYLOAD as u32 + 1).to_be_bytes());
        let mut reader = FrameReader {
            pending: Bytes::from(header),
            ..FrameReader::default()
        };
        let err = reader.next_frame().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("65537"), "{err}");
        assert!(reader.frame.is_none());
    }

    #[test]
    fn partial_frame_is_not_between_frames() {
        let mut reader = FrameReader {
            pending: Bytes::from_static(&[0x12, 0, 0]),
            ..FrameReader::default()
        };
        assert!(reader.next_frame().unwrap().is_none());
        assert!(!reader.is_between_frames());
    }

    #[test]
    fn urls() {
        let t = Target::parse("quic://example.com:4433").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example.com", 4433));
        let t = Target::parse("QUIC://127.0.0.1:9/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 9));
        let t = Target::parse("quic://[::1]:7000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 7000));
        for bad in [
            "quic://h",
            "quic://h:0",
            "quic://h:x",
            "quic://:80",
            "ws://h:80",
            "h:80",
            "quic://h:80/path",
            "quic://u@h:80",
            "quic://[::1",
        ] {
            let err = Target::parse(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn fingerprints() {
        let fp = [0xabu8; 32];
        assert_eq!(hex(&fp), "ab".repeat(32));
        assert_eq!(parse_fingerprint(&"AB".repeat(32)).unwrap(), fp);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), fp);
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
        // SHA-256 of the empty string.
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn default_tuning_covers_the_mux_windows() {
        let t = QuicTuning::default();
        assert!(t.stream_receive_window >= 2 << 20);
        assert!(t.receive_window >= 32 << 20);
        assert!(t.max_carriers_per_connection >= 64);
        assert!(t.transport_config(true).is_ok());
        assert!(t.transport_config(false).is_ok());
    }
}
