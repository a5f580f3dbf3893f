//! Every store round trip runs inside a `store` span (exported over OTLP as a client span),
//! named by the operation, never by a key or a value.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use portal_domain::model::SessionId;
use portal_domain::ports::stores::SessionStore;
use portal_domain::secret::SecretString;
use portal_redis::{RedisServer, RedisSettings, RedisStores};
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn a_store_call_is_a_store_span_named_by_its_operation() {
    let server = RedisServer::start().await;
    let stores = RedisStores::connect(RedisSettings::new(SecretString::from(server.url())))
        .expect("valid settings");
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(buffer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let id = SessionId::from_random([7; 32]);
    let found = stores.get(&id.key()).await.unwrap();
    assert!(found.is_none());

    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let closed: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let store = closed
        .iter()
        .find(|l| l["span"]["name"] == "store")
        .unwrap_or_else(|| panic!("a store span: {text}"));
    assert_eq!(store["span"]["db.system.name"], "redis", "{store}");
    assert_eq!(store["span"]["db.system"], "redis", "{store}");
    assert_eq!(store["span"]["db.operation.name"], "session get", "{store}");
    assert_eq!(store["span"]["otel.kind"], "client", "{store}");
    assert!(
        !text.contains(id.key().as_str()),
        "no key in the span: {text}"
    );
}
