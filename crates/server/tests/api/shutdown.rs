//! Graceful shutdown of the real `agent-portal` binary (a child process, embedded default with
//! the State Manager over HTTP to the in-process sandbox, which answers 1.5 s late): on
//! SIGTERM the open WebSocket gets a 1001 close, new connections are refused, the slow
//! dashboard request still completes with 200, and the process exits 0 as soon as the last
//! connection is gone (milliseconds, not actix's once-a-second check).

use crate::helpers::*;
use futures::StreamExt;
use portal_sandbox::demo::ACME_ADMIN_EMAIL;
use reqwest::{Client, StatusCode};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How late the sandbox's State Manager answers.
const SLOW: Duration = Duration::from_millis(1500);

/// A TCP relay in front of the sandbox that reports when the service sends it a request, so
/// the test knows a slow call is in flight without sleeping (plain threads: blocking copies).
fn relay(target: &str) -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let target = target.trim_start_matches("http://").to_owned();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for inbound in listener.incoming() {
            let Ok(inbound) = inbound else { break };
            let target = target.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                let Ok(outbound) = std::net::TcpStream::connect(&target) else {
                    return;
                };
                // Every chunk the service sends (a request, also on a reused connection) is
                // reported, then relayed; answers are relayed back as they come.
                let (mut in_read, mut out_write) =
                    (inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
                let upstream = std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = in_read.read(&mut buf) {
                        if n == 0 || out_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        let _ = tx.send(());
                    }
                    let _ = out_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut out_read, mut in_write) = (outbound, inbound);
                let _ = std::io::copy(&mut out_read, &mut in_write);
                let _ = in_write.shutdown(std::net::Shutdown::Write);
                let _ = upstream.join();
            });
        }
    });
    (address, rx)
}

/// The binary on the embedded default, with the State Manager at `state_manager_url`.
fn start(state_manager_url: &str) -> Portal {
    start_portal([
        ("HOST", "127.0.0.1"),
        ("WORKERS", "2"),
        ("LOG_LEVEL", "info"),
        ("STATE_MANAGER_URL", state_manager_url),
        ("SHUTDOWN_GRACE_SECONDS", "5"),
    ])
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_closes_sockets_with_1001_and_exits_0() {
    drains_on("TERM").await;
}

/// Ctrl-C in a terminal (or an orchestrator sending SIGINT) drains the same way.
#[tokio::test]
async fn sigint_drains_the_same_way() {
    drains_on("INT").await;
}

async fn drains_on(signal: &str) {
    let sandbox = start_sandbox();
    let admin = Client::new();
    let res = admin
        .put(format!("{sandbox}/_admin/faults"))
        .json(&json!({"route": "stateManager", "errorRate": 0.0, "latencyMs": SLOW.as_millis(), "timeout": false}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "fault set: {}", res.status());

    let (state_manager, mut calls) = relay(&sandbox);
    let mut portal = start(&state_manager);
    let base = format!("http://localhost:{}", portal.port);

    let (client, mut ws) = signed_in_socket(portal.port).await;

    // A slow request in flight: the dashboard's first load waits on the State Manager.
    while calls.try_recv().is_ok() {} // calls made before it (if any) do not count
    let started = Instant::now();
    let slow = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/api/v1/dashboard/stats");
        async move { client.get(url).send().await }
    });
    // It is in flight once the service calls the State Manager (which then takes SLOW).
    tokio::time::timeout(Duration::from_secs(5), calls.recv())
        .await
        .expect("the dashboard calls the State Manager")
        .unwrap();

    let status = Command::new("kill")
        .args([&format!("-{signal}"), &portal.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // The socket is closed with 1001 (going away).
    let code = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("a close within 3 s");
    assert_eq!(code, Some(1001));

    // New connections are refused while the slow request drains.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", portal.port)).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // Still listening; or the handshake completed in the backlog of a listener that
            // closed before our connect returned (reset, never served): ask again.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("connecting after SIG{signal}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "still accepting connections 1 s after SIG{signal}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !slow.is_finished(),
        "the slow request was still in flight when the listener closed"
    );

    // The in-flight request finishes normally.
    let res = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body.is_object(), "{body}");
    assert!(started.elapsed() >= SLOW);

    // And the process exits 0 right after it.
    drop(ws);
    let drained = Instant::now();
    let exit = exit_of(&mut portal).await;
    assert_eq!(exit.code(), Some(0), "exit status: {exit:?}");
    assert!(
        drained.elapsed() < PROMPT,
        "exited {:?} after the last request",
        drained.elapsed()
    );
}

/// Far above a shutdown's few milliseconds, far below the second it used to take.
const PROMPT: Duration = Duration::from_millis(500);

/// A signed-in browser (the simulated Genesys login of the embedded default) with an open
/// WebSocket.
async fn signed_in_socket(port: u16) -> (Client, Ws) {
    // BASE_URL's host name (the default): the session cookie is that host's.
    let base = format!("http://localhost:{port}");
    let client = new_client();
    let res = client
        .get(format!(
            "{base}/api/v1/auth/login?login_hint={ACME_ADMIN_EMAIL}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let res = client.get(location(&res)).send().await.unwrap();
    let res = client.get(location(&res)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let cookie = set_cookie(&res, "sessionId")
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .expect("a session cookie");
    let tenant = portal_sandbox::demo::acme_tenant_id();
    let mut req = format!("ws://127.0.0.1:{port}/tenant/{tenant}/portal")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut()
        .insert("origin", FRONTEND.parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade accepted");
    (client, ws)
}

/// The process's exit status (5 s at most).
async fn exit_of(portal: &mut Portal) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = portal.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "still running after 5 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An instance with an open socket (read by a client that closes its side when the server has
/// closed, as a browser does) and an idle keep-alive connection exits within milliseconds of
/// SIGTERM (it took 1.02 s).
#[tokio::test]
async fn an_instance_with_open_connections_exits_promptly_on_sigterm() {
    let mut portal = start_portal([
        ("HOST", "127.0.0.1"),
        ("WORKERS", "2"),
        ("LOG_LEVEL", "info"),
    ]);
    let (client, mut ws) = signed_in_socket(portal.port).await;
    // A keep-alive connection in the client's pool.
    let res = client
        .get(format!("http://localhost:{}/api/v1/auth/me", portal.port))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let reader = tokio::spawn(async move {
        let mut code = None;
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Close(frame) = msg {
                code = frame.map(|f| u16::from(f.code));
            }
        }
        code
    });

    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &portal.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = exit_of(&mut portal).await;
    let took = signalled.elapsed();
    assert_eq!(exit.code(), Some(0), "exit status: {exit:?}");
    assert_eq!(reader.await.unwrap(), Some(1001));
    assert!(took < PROMPT, "exited {took:?} after SIGTERM");
}
