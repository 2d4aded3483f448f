//! Request identity on a real restate-server: a server holding the private
//! key drives the endpoint end to end, and a request not signed by it is
//! refused before any handler runs.

use restate_process_registry::testing::support::external;
use restate_process_registry::{ProcessRegistry, RestateProcessRegistry};
use restate_process_registry_services::{bind_services, serve_endpoint};
use restate_process_registry_testkit::local_server::LocalRestate;
use restate_process_registry_testkit::signing::SigningKeys;
use restate_sdk::endpoint::Endpoint;
use serde_json::json;
use tokio::net::TcpListener;

#[tokio::test]
async fn only_the_signing_server_reaches_the_endpoint() {
    let keys = SigningKeys::generate().unwrap();
    assert!(keys.public_key().starts_with("publickeyv1_"));
    let endpoint = bind_services(Endpoint::builder())
        .identity_key(keys.public_key())
        .expect("the generated public key is accepted")
        .build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint_url = format!("http://{}/", listener.local_addr().unwrap());
    let serving = tokio::spawn(serve_endpoint(endpoint, listener));

    // Signed: discovery and calls go through.
    let server = LocalRestate::start_signing(&keys).await.unwrap();
    server.register_deployment(&endpoint_url).await.unwrap();
    let registry = RestateProcessRegistry::connect(&server.ingress_url()).unwrap();
    let record = registry
        .register_process(external("signed-1"))
        .await
        .unwrap();
    assert_eq!(registry.get_process("signed-1").await, Some(record));

    // Unsigned, straight to the endpoint: refused, nothing written.
    // The endpoint speaks HTTP/2 only, as restate-server does.
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let registration = serde_json::to_vec(&external("unsigned-1")).unwrap();
    for (path, body) in [
        ("invoke/ProcessObject/register", registration),
        ("discover", Vec::new()),
    ] {
        let response = http
            .post(format!("{endpoint_url}{path}"))
            .header("content-type", "application/json")
            .header("x-restate-key", "unsigned-1")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{path} unsigned");
    }
    let forged = http
        .post(format!("{endpoint_url}invoke/ProcessObject/register"))
        .header("x-restate-signature-scheme", "v1")
        .header("x-restate-jwt-v1", "e30.e30.c2ln")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401, "a forged token");
    assert_eq!(registry.get_process("unsigned-1").await, None);

    // A server with another key cannot even register the deployment.
    let stranger = LocalRestate::start_signing(&SigningKeys::generate().unwrap())
        .await
        .unwrap();
    assert!(stranger.register_deployment(&endpoint_url).await.is_err());
    serving.abort();
}
