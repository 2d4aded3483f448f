//! One ingress connection: typed calls through the restate-sdk ingress
//! client, idempotency keys on writes, a request timeout per attempt and a
//! retry budget per call ([`IngressOptions`]), and error codes mapped back
//! to [`ProcessError`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use restate_sdk::ingress::{Client, ClientError, Request, RequestTarget};
use restate_sdk::serde::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ProcessError, ProcessResult};
use crate::restate::codes;

/// First pause between attempts; doubles each time.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause between attempts.
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(2);
/// How long opening a connection to the ingress may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the ingress client waits for the registry.
///
/// Each attempt of a call ends after `request_timeout`. An attempt that
/// got no answer (the transport failed, or it timed out) is made again,
/// pausing from 50 ms doubling up to 2 s, until `retry_budget` has passed
/// since the call began; then the call fails with `Unavailable`. A write
/// carries one idempotency key on every attempt, so an attempt made while
/// the first is still running inside the engine (the endpoint down, the
/// engine retrying it) attaches to that invocation instead of starting a
/// second one; a write that ran out of budget may still complete later,
/// exactly once. Waits (`RestateProcessAttach`) are not bound by these:
/// they hold their request until the engine answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngressOptions {
    /// Longest wait for one attempt's answer (default 30 s).
    pub request_timeout: Duration,
    /// Longest time a call keeps making attempts (default 60 s).
    pub retry_budget: Duration,
}

impl Default for IngressOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            retry_budget: Duration::from_secs(60),
        }
    }
}

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
    options: IngressOptions,
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
    pub(crate) fn connect(url: &str, options: IngressOptions) -> ProcessResult<Self> {
        let bad = |err: &dyn std::fmt::Display| {
            ProcessError::invalid(format!("ingress url `{url}`: {err}"))
        };
        let base = reqwest::Url::parse(url).map_err(|err| bad(&err))?;
        let uri = url.parse().map_err(|err| bad(&err))?;
        // HTTP/1.1 keep-alive, a connection per call in flight, reused: on
        // the 2-core box, HTTP/2 prior knowledge (every call multiplexed on
        // one connection) ran reads ~20% and appends ~15% slower.
        let builder = || {
            reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .connect_timeout(CONNECT_TIMEOUT)
        };
        let built = |client: reqwest::Result<reqwest::Client>| {
            client.map_err(|err| ProcessError::unavailable_because("http client", err))
        };
        // Calls time out; waits hold their request as long as the engine does.
        let timed = built(builder().timeout(options.request_timeout).build())?;
        let http = built(builder().build())?;
        let client = Client::new(uri, timed).map_err(|err| bad(&err))?;
        Ok(Self {
            client,
            http,
            base,
            keys: Arc::new(KeySource::new()?),
            options,
        })
    }

    /// The plain HTTP client (no request timeout) and base URL, for the
    /// few calls the typed client has no verb for (workflow attach by key).
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

    /// Runs `attempt` until it gets an answer or the retry budget is spent
    /// (see [`IngressOptions`]); a write gets one idempotency key, the same
    /// on every attempt.
    async fn retrying<Res, F, Fut>(&self, kind: Call, mut attempt: F) -> ProcessResult<Res>
    where
        F: FnMut(Option<&str>) -> Fut,
        Fut: std::future::Future<Output = Result<Json<Res>, ClientError>>,
    {
        let key = (kind == Call::Write).then(|| self.keys.next());
        let began = tokio::time::Instant::now();
        let mut pause = RETRY_PAUSE;
        loop {
            match attempt(key.as_deref()).await {
                Err(failure @ ClientError::Transport { .. }) => {
                    let spent = began.elapsed();
                    if spent + pause >= self.options.retry_budget {
                        let message = format!(
                            "the registry gave no answer within the {:?} retry budget \
                             ({spent:?} spent; a write may still complete, once)",
                            self.options.retry_budget
                        );
                        return Err(ProcessError::unavailable_because(message, failure));
                    }
                    tracing::debug!(%failure, ?pause, "no answer from the ingress; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_PAUSE_MAX);
                }
                other => return other.map(Json::into_inner).map_err(to_process_error),
            }
        }
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
