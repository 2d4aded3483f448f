//! Typed JSON state reads for both object context kinds, with keys built
//! at run time (the SDK's own `get` wants keys that outlive the context).
//!
//! A stored value that does not decode fails the invocation with a
//! terminal error (code [`UNREADABLE_STATE`]) instead of the SDK's
//! retryable one: retrying cannot make stored bytes readable, and a retry
//! loop would hold the object's key for as long as the retry policy lasts.

use std::future::Future;

use restate_sdk::prelude::*;
use serde::de::DeserializeOwned;

/// Reads one JSON value of an object's state.
pub(crate) trait ReadState {
    /// The value under `key`, if set.
    fn read<'a, T>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<T>, TerminalError>> + Send + 'a
    where
        T: DeserializeOwned + Send + 'static;
}

macro_rules! read_state_for {
    ($($context:ident),*) => {$(
        impl ReadState for $context<'_> {
            fn read<'a, T>(
                &'a self,
                key: &'a str,
            ) -> impl Future<Output = Result<Option<T>, TerminalError>> + Send + 'a
            where
                T: DeserializeOwned + Send + 'static,
            {
                // Contexts are covariant: shorten to the key's lifetime.
                let ctx: &'a $context<'a> = self;
                let read = ctx.get::<Vec<u8>>(key);
                async move { read.await?.map(|bytes| decode(key, &bytes)).transpose() }
            }
        }
    )*};
}

read_state_for!(ObjectContext, SharedObjectContext);

/// Code of the terminal error for a stored value that cannot be decoded.
pub(crate) const UNREADABLE_STATE: u16 = 500;

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, TerminalError> {
    serde_json::from_slice(bytes).map_err(|err| {
        TerminalError::new_with_code(
            UNREADABLE_STATE,
            format!("stored state `{key}` cannot be read: {err}"),
        )
    })
}

/// Awaits futures one after another and collects their results.
///
/// Every SDK operation is sent when its future is created, so issuing a
/// batch first and then awaiting it in order still costs one round trip;
/// polling them concurrently (`join`) is not something the SDK's futures
/// support: such a join never wakes.
pub(crate) async fn in_order<T, E, F>(futures: impl IntoIterator<Item = F>) -> Result<Vec<T>, E>
where
    F: Future<Output = Result<T, E>>,
{
    let pending: Vec<F> = futures.into_iter().collect();
    let mut done = Vec::with_capacity(pending.len());
    for future in pending {
        done.push(future.await?);
    }
    Ok(done)
}
