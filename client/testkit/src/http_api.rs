//! A loopback stand-in for the HTTP API's `GET /api/v10/gateway/bot`, a
//! real HTTP/1.1 server on `127.0.0.1` (hyper), whose answer the test sets:
//! a normal one, 401, 429 with `Retry-After`, malformed JSON, a gateway URL
//! outside the allowed domains, ... It counts the requests and whether
//! each carried the expected `Authorization: Bot <token>`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::debug;

/// What the endpoint answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiAnswer {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers (`Retry-After`, ...).
    pub headers: Vec<(String, String)>,
    /// The body, sent as `application/json`.
    pub body: String,
}

impl ApiAnswer {
    /// A 200 with `url`, `shards`, and a session-start limit of `total`
    /// starts (all left, reset in 24 h) and `max_concurrency` buckets.
    #[must_use]
    pub fn gateway_bot(url: &str, shards: u32, total: u32, max_concurrency: u16) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: serde_json::json!({
                "url": url,
                "shards": shards,
                "session_start_limit": {
                    "total": total,
                    "remaining": total,
                    "reset_after": 86_400_000_u64,
                    "max_concurrency": max_concurrency,
                },
            })
            .to_string(),
        }
    }

    /// A bare status with a JSON body.
    #[must_use]
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    answer: Option<ApiAnswer>,
    requests: u64,
    authorized: u64,
}

#[derive(Debug)]
struct Shared {
    token: String,
    state: Mutex<State>,
}

/// A running endpoint. Dropping it stops it.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl ApiServer {
    /// Starts on `127.0.0.1` (a port the system picks), expecting `token`
    /// and answering `answer` until told otherwise.
    ///
    /// # Errors
    ///
    /// The listener could not be bound.
    pub async fn start(token: &str, answer: ApiAnswer) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            state: Mutex::new(State {
                answer: Some(answer),
                ..State::default()
            }),
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(Self { addr, shared, task })
    }

    /// The API base URL to give the client (`http://127.0.0.1:PORT/api/v10`).
    #[must_use]
    pub fn api_base(&self) -> String {
        format!("http://{}/api/v10", self.addr)
    }

    /// Answers `answer` from now on.
    pub fn set_answer(&self, answer: ApiAnswer) {
        self.lock().answer = Some(answer);
    }

    /// Requests served, and how many carried the expected token.
    #[must_use]
    pub fn requests(&self) -> (u64, u64) {
        let state = self.lock();
        (state.requests, state.authorized)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |request| answer(Arc::clone(&shared), request));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "API connection failed");
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let expected = format!("Bot {}", shared.token);
    let authorized = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    let answer = {
        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.requests += 1;
        state.authorized += u64::from(authorized);
        state.answer.clone()
    };
    let found =
        request.method() == hyper::Method::GET && request.uri().path() == "/api/v10/gateway/bot";
    let answer = match answer {
        Some(answer) if found => answer,
        _ => ApiAnswer::status(404, r#"{"message":"404: Not Found","code":0}"#),
    };
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    Ok(response)
}
