//! Opening a WebSocket: DNS, TCP, TLS (`wss://`, rustls with the webpki
//! roots) or plain (`ws://`, for loopback), then the HTTP upgrade, each
//! failure mapped to the policy's [`ConnectFailure`].
//!
//! The steps are taken one by one so that each failure is named for what
//! it is: a name that does not resolve is [`ConnectFailure::Dns`], a refused
//! or reset TCP connection [`ConnectFailure::Refused`], a failed TLS
//! handshake [`ConnectFailure::Tls`], and an upgrade answered with an HTTP
//! status [`ConnectFailure::Rejected`] or, for 429,
//! [`ConnectFailure::RateLimited`] with the `Retry-After` the server asked
//! for. There is no timeout here: the policy's connect deadline ends a dial
//! that takes too long (the driver drops the future).

use std::io;
use std::sync::Arc;

use reconnect_policy::ConnectFailure;

use crate::compression::{Compression, Inflater};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Error as WsError};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open WebSocket.
pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A freshly opened gateway socket and the decompression context that
/// belongs to it alone (transport compression starts anew with every
/// connection).
#[derive(Debug)]
pub(crate) struct GatewaySocket {
    /// The WebSocket.
    pub(crate) ws: WsStream,
    /// Its decompression context.
    pub(crate) inflater: Inflater,
}

/// The query every gateway URL gets: API version 10, JSON, no compression.
pub const GATEWAY_QUERY: &str = "v=10&encoding=json";

/// The `User-Agent` every upgrade request carries unless the builder sets
/// another: this library and its version. Some gateway servers refuse an
/// upgrade without one (closing with 4002 before Hello).
pub const DEFAULT_USER_AGENT: &str = concat!("reconnect-client/", env!("CARGO_PKG_VERSION"));

/// The longest `Retry-After` read, in seconds (the policy caps the wait at
/// 30 days anyway; this only keeps the arithmetic finite).
const MAX_RETRY_AFTER_S: f64 = 30.0 * 24.0 * 3_600.0;

/// A failed dial: what the policy needs, and a detail for the logs.
#[derive(Debug)]
pub(crate) struct DialError {
    /// For the policy.
    pub(crate) failure: ConnectFailure,
    /// For the logs (never contains a secret: the URL has no token).
    pub(crate) detail: String,
}

impl DialError {
    fn new(failure: ConnectFailure, detail: impl Into<String>) -> Self {
        Self {
            failure,
            detail: detail.into(),
        }
    }
}

/// Opens gateway sockets.
#[derive(Clone)]
pub(crate) struct Dialer {
    tls: Arc<rustls::ClientConfig>,
    websocket: WebSocketConfig,
    user_agent: HeaderValue,
    compression: Compression,
    max_frame_bytes: usize,
}

impl Dialer {
    /// A dialer that refuses inbound messages and frames over
    /// `max_frame_bytes` (compressed or, once inflated, not), names itself
    /// with `user_agent` and asks for `compression`.
    ///
    /// # Errors
    ///
    /// rustls refuses the TLS configuration (it does not with the ring
    /// provider; the error is kept rather than assumed away).
    pub(crate) fn new(
        max_frame_bytes: usize,
        user_agent: HeaderValue,
        compression: Compression,
    ) -> Result<Self, rustls::Error> {
        Ok(Self {
            user_agent,
            compression,
            max_frame_bytes,
            tls: Arc::new(tls_config()?),
            websocket: WebSocketConfig::default()
                .max_message_size(Some(max_frame_bytes))
                .max_frame_size(Some(max_frame_bytes))
                .read_buffer_size(max_frame_bytes.clamp(4_096, 128 * 1024))
                .write_buffer_size(0),
        })
    }

    /// Opens a WebSocket to `url` (the policy's URL, without query), with
    /// a fresh decompression context.
    pub(crate) async fn dial(&self, url: &str) -> Result<GatewaySocket, DialError> {
        let inflater = Inflater::new(self.compression, self.max_frame_bytes).map_err(|e| {
            DialError::new(
                ConnectFailure::Refused,
                format!("decompression context: {e}"),
            )
        })?;
        let url = with_gateway_query(url, self.compression);
        let mut request = url.as_str().into_client_request().map_err(|e| {
            DialError::new(ConnectFailure::Refused, format!("unusable URL {url}: {e}"))
        })?;
        request
            .headers_mut()
            .insert(header::USER_AGENT, self.user_agent.clone());
        let uri = request.uri();
        let secure = uri.scheme_str() == Some("wss");
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            .ok_or_else(|| DialError::new(ConnectFailure::Dns, format!("no host in {url}")))?;
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });

        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| DialError::new(ConnectFailure::Dns, format!("{host}: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(DialError::new(
                ConnectFailure::Dns,
                format!("{host}: no address"),
            ));
        }
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match (tcp, last) {
            (Some(tcp), _) => tcp,
            (None, Some(e)) => return Err(io_failure(&e, "TCP connect")),
            (None, None) => unreachable!("at least one address was tried"),
        };
        // Gateway commands are small and latency-sensitive.
        let _ = tcp.set_nodelay(true);

        let stream = if secure {
            let name = ServerName::try_from(host.clone())
                .map_err(|e| DialError::new(ConnectFailure::Tls, format!("{host}: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await
                .map_err(|e| DialError::new(ConnectFailure::Tls, format!("{host}: {e}")))?;
            MaybeTlsStream::Rustls(tls)
        } else {
            MaybeTlsStream::Plain(tcp)
        };

        match tokio_tungstenite::client_async_with_config(request, stream, Some(self.websocket))
            .await
        {
            Ok((ws, _response)) => Ok(GatewaySocket { ws, inflater }),
            Err(e) => Err(handshake_failure(e)),
        }
    }
}

/// rustls with the ring provider and the Mozilla roots from webpki-roots.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `url` with the gateway's query string (any query or fragment it had is
/// replaced, and an empty path becomes `/`).
pub(crate) fn with_gateway_query(url: &str, compression: Compression) -> String {
    let base = url.split(['?', '#']).next().unwrap_or(url);
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let slash = if base[after_scheme..].contains('/') {
        ""
    } else {
        "/"
    };
    match compression.query_value() {
        Some(compress) => format!("{base}{slash}?{GATEWAY_QUERY}&compress={compress}"),
        None => format!("{base}{slash}?{GATEWAY_QUERY}"),
    }
}

fn io_failure(e: &io::Error, what: &str) -> DialError {
    let failure = match e.kind() {
        io::ErrorKind::TimedOut => ConnectFailure::TimedOut,
        _ => ConnectFailure::Refused,
    };
    DialError::new(failure, format!("{what}: {e}"))
}

fn handshake_failure(error: WsError) -> DialError {
    match error {
        WsError::Http(response) => {
            let status = response.status();
            let failure = if status == StatusCode::TOO_MANY_REQUESTS {
                ConnectFailure::RateLimited {
                    retry_after_ms: retry_after_ms(response.headers()),
                }
            } else {
                ConnectFailure::Rejected {
                    status: status.as_u16(),
                }
            };
            DialError::new(failure, format!("upgrade answered with HTTP {status}"))
        }
        WsError::Io(e) => io_failure(&e, "WebSocket upgrade"),
        WsError::Tls(e) => DialError::new(ConnectFailure::Tls, format!("TLS: {e}")),
        other => DialError::new(
            ConnectFailure::Refused,
            format!("WebSocket upgrade failed: {other}"),
        ),
    }
}

/// `Retry-After` as delta-seconds (integer or decimal), in ms. A missing
/// or unreadable value (an HTTP date included: the client keeps no wall
/// clock) is 0, which leaves the wait to the policy's backoff.
pub(crate) fn retry_after_ms(headers: &HeaderMap) -> u64 {
    let Some(value) = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
    else {
        return 0;
    };
    match value.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => {
            // Bounded above, so the conversion cannot overflow.
            let ms = (seconds.min(MAX_RETRY_AFTER_S) * 1_000.0).ceil();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let ms = ms as u64;
            ms
        }
        _ => 0,
    }
}

/// Whether a read error means the frame was over the size limit.
pub(crate) const fn is_oversized(error: &WsError) -> bool {
    matches!(error, WsError::Capacity(_))
}

/// Whether a read error is the peer breaking the WebSocket protocol
/// (invalid UTF-8 in a text frame, a bad frame header, ...). A connection
/// that simply ended without a close frame is not one: that is a drop.
pub(crate) const fn is_protocol_violation(error: &WsError) -> bool {
    match error {
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => false,
        WsError::Protocol(_) | WsError::Utf8(_) | WsError::AttackAttempt => true,
        _ => false,
    }
}

/// The tungstenite error type, re-exported for the connection module.
pub(crate) type ReadError = tungstenite::Error;

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    use super::*;

    #[test]
    fn the_query_is_appended_once_and_replaces_any_other() {
        assert_eq!(
            with_gateway_query("wss://gateway.discord.gg", Compression::None),
            "wss://gateway.discord.gg/?v=10&encoding=json"
        );
        assert_eq!(
            with_gateway_query("wss://gateway-us-east1-b.discord.gg/", Compression::None),
            "wss://gateway-us-east1-b.discord.gg/?v=10&encoding=json"
        );
        assert_eq!(
            with_gateway_query("ws://127.0.0.1:9000/?v=6&encoding=etf#x", Compression::None),
            "ws://127.0.0.1:9000/?v=10&encoding=json"
        );
        // The same compression on every URL, resume URLs included.
        assert_eq!(
            with_gateway_query(
                "wss://r.discord.gg/?compress=zlib-stream",
                Compression::ZstdStream
            ),
            "wss://r.discord.gg/?v=10&encoding=json&compress=zstd-stream"
        );
        assert_eq!(
            with_gateway_query("wss://r.discord.gg", Compression::ZlibStream),
            "wss://r.discord.gg/?v=10&encoding=json&compress=zlib-stream"
        );
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn retry_after_is_read_as_seconds() {
        assert_eq!(retry_after_ms(&headers("2")), 2_000);
        assert_eq!(retry_after_ms(&headers(" 1.25 ")), 1_250);
        assert_eq!(retry_after_ms(&headers("0")), 0);
        assert_eq!(retry_after_ms(&headers("-3")), 0);
        assert_eq!(retry_after_ms(&headers("NaN")), 0);
        assert_eq!(retry_after_ms(&headers("inf")), 0);
        assert_eq!(retry_after_ms(&headers("Wed, 21 Oct 2015 07:28:00 GMT")), 0);
        assert_eq!(retry_after_ms(&HeaderMap::new()), 0);
        assert_eq!(retry_after_ms(&headers("1e300")), 30 * 24 * 3_600 * 1_000);
    }

    #[tokio::test]
    async fn a_closed_port_is_refused() {
        // Bind then drop, so the port is (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dialer = Dialer::new(
            1 << 20,
            HeaderValue::from_static(DEFAULT_USER_AGENT),
            Compression::None,
        )
        .unwrap();
        let err = dialer
            .dial(&format!("ws://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert_eq!(err.failure, ConnectFailure::Refused, "{}", err.detail);
    }
}
