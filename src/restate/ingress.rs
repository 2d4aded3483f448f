//! One ingress connection: typed calls through the restate-sdk ingress
//! client, idempotency keys on writes, transport retries, and error codes
//! mapped back to [`ProcessError`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use restate_sdk::ingress::{Client, ClientError, Request, RequestTarget};
use restate_sdk::serde::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ProcessError, ProcessResult};
use crate::restate::codes;

/// Attempts per call when the transport fails before an answer arrives.
const ATTEMPTS: u32 = 4;
/// First pause between attempts; doubles each time.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Whether a call changes state (and so carries an idempotency key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Read,
    Write,
}

/// A cheap-to-clone ingress connection.
#[derive(Clone)]
pub(crate) struct Ingress {
    client: Client<reqwest::Client>,
    http: reqwest::Client,
    base: reqwest::Url,
    keys: Arc<KeySource>,
}

/// Idempotency keys unique to this connection: a random nonce and a counter.
struct KeySource {
    nonce: u128,
    next: AtomicU64,
}

impl KeySource {
    /// A 128-bit nonce from the operating system's random source: no two
    /// connections, in any process on any host, share a key.
    fn new() -> ProcessResult<Self> {
        let mut nonce = [0; 16];
        getrandom::fill(&mut nonce).map_err(|err| {
            ProcessError::unavailable(format!("the system random source failed: {err}"))
        })?;
        Ok(Self {
            nonce: u128::from_le_bytes(nonce),
            next: AtomicU64::new(1),
        })
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("procreg-{:032x}-{n}", self.nonce)
    }
}

impl Ingress {
    /// Connects to the ingress at `url` (e.g. `http://127.0.0.1:8080`).
    pub(crate) fn connect(url: &str) -> ProcessResult<Self> {
        let bad = |err: &dyn std::fmt::Display| {
            ProcessError::invalid(format!("ingress url `{url}`: {err}"))
        };
        let base = reqwest::Url::parse(url).map_err(|err| bad(&err))?;
        let uri = url.parse().map_err(|err| bad(&err))?;
        // HTTP/1.1 keep-alive, a connection per call in flight, reused: on
        // the 2-core box, HTTP/2 prior knowledge (every call multiplexed on
        // one connection) ran reads ~20% and appends ~15% slower.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|err| ProcessError::unavailable_because("http client", err))?;
        let client = Client::new(uri, http.clone()).map_err(|err| bad(&err))?;
        Ok(Self {
            client,
            http,
            base,
            keys: Arc::new(KeySource::new()?),
        })
    }

    /// The plain HTTP client and base URL, for the few calls the typed
    /// client has no verb for (workflow attach by key).
    pub(crate) fn http(&self) -> (&reqwest::Client, &reqwest::Url) {
        (&self.http, &self.base)
    }

    /// Calls a handler with a JSON body.
    pub(crate) async fn call<Req, Res>(
        &self,
        target: RequestTarget,
        input: &Req,
        kind: Call,
    ) -> ProcessResult<Res>
    where
        Req: Serialize + Clone + Send + Sync + 'static,
        Res: DeserializeOwned + Send + 'static,
    {
        self.retrying(kind, |key| {
            let request = self
                .client
                .request::<Json<Req>, Json<Res>>(target.clone(), Json(input.clone()));
            let request = with_key(request, key);
            async move { request.call().await?.into_body() }
        })
        .await
    }

    /// Calls a handler that takes no input (no body, no content type).
    pub(crate) async fn call_empty<Res>(
        &self,
        target: RequestTarget,
        kind: Call,
    ) -> ProcessResult<Res>
    where
        Res: DeserializeOwned + Send + 'static,
    {
        self.retrying(kind, |key| {
            let request = with_key(
                self.client.request::<(), Json<Res>>(target.clone(), ()),
                key,
            );
            async move { request.call().await?.into_body() }
        })
        .await
    }

    /// Runs `attempt` until it gets an answer or runs out of attempts; a
    /// write gets one idempotency key, the same on every attempt.
    async fn retrying<Res, F, Fut>(&self, kind: Call, mut attempt: F) -> ProcessResult<Res>
    where
        F: FnMut(Option<&str>) -> Fut,
        Fut: std::future::Future<Output = Result<Json<Res>, ClientError>>,
    {
        let key = (kind == Call::Write).then(|| self.keys.next());
        let mut pause = RETRY_PAUSE;
        for _ in 1..ATTEMPTS {
            match attempt(key.as_deref()).await {
                Err(ClientError::Transport { source }) => {
                    tracing::debug!(%source, ?pause, "ingress transport failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                other => return other.map(Json::into_inner).map_err(to_process_error),
            }
        }
        attempt(key.as_deref())
            .await
            .map(Json::into_inner)
            .map_err(to_process_error)
    }
}

fn with_key<Req, Res>(
    request: Request<reqwest::Client, Req, Res>,
    key: Option<&str>,
) -> Request<reqwest::Client, Req, Res> {
    match key {
        Some(key) => request.idempotency_key(key),
        None => request,
    }
}

/// Maps an ingress failure to the model error the handler raised, or to
/// `Unavailable` when the engine itself failed.
pub(crate) fn to_process_error(error: ClientError) -> ProcessError {
    match &error {
        ClientError::Status { status, response } => {
            decode_failure(status.as_u16(), response.body())
        }
        _ => ProcessError::unavailable_because("ingress call failed", error),
    }
}

/// Decodes an ingress error body (`{"message": ..}` or plain text).
pub(crate) fn decode_failure(status: u16, body: &[u8]) -> ProcessError {
    #[derive(serde::Deserialize)]
    struct Failure {
        message: String,
    }
    let message = serde_json::from_slice::<Failure>(body)
        .map(|failure| failure.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
    codes::decode(status, &message).unwrap_or_else(|| {
        let message = codes::readable(&message);
        ProcessError::unavailable(format!("ingress answered {status}: {message}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_differ_across_connections_and_calls() {
        let (a, b) = (KeySource::new().unwrap(), KeySource::new().unwrap());
        assert_ne!(a.nonce, b.nonce);
        let first = a.next();
        assert_ne!(first, a.next());
        assert_ne!(first, b.next());
        assert!(
            first.starts_with("procreg-") && first.len() <= 64,
            "{first}"
        );
    }

    /// The ingress wraps a handler's terminal error in its own JSON body.
    #[test]
    fn a_failed_call_reads_back_as_the_handler_error() {
        let text = "\"quoted\" `ticked`\nnon-ASCII ✓";
        for error in codes::every_variant(text) {
            let body = serde_json::json!({
                "code": codes::code_of(&error),
                "message": codes::encode(&error),
            });
            let body = serde_json::to_vec(&body).expect("a document");
            assert_eq!(decode_failure(codes::code_of(&error), &body), error);
        }
    }

    #[test]
    fn a_foreign_failure_is_unavailable_with_its_text() {
        let body = br#"{"message":"service 'Nope' not found"}"#;
        assert_eq!(
            decode_failure(404, body),
            ProcessError::unavailable("ingress answered 404: service 'Nope' not found")
        );
        let newer = serde_json::json!({
            "message": r#"{"error":"from_the_future","message":"slow down"}"#
        });
        assert_eq!(
            decode_failure(429, newer.to_string().as_bytes()),
            ProcessError::unavailable("ingress answered 429: slow down")
        );
    }
}
