//! Certificates for TLS deployments, and how a deployment is secured.

use super::*;

/// A throw-away CA, a server certificate (for `127.0.0.1` and `localhost`) and a client
/// certificate, all PEM, made with the `openssl` command. Removed on drop.
#[derive(Debug)]
pub struct TlsFiles {
    dir: PathBuf,
}

impl TlsFiles {
    /// Generates the files (EC P-256, valid two days).
    ///
    /// # Panics
    /// If `openssl` is missing or fails: tests never skip silently.
    pub fn generate() -> Self {
        let dir = temp_dir("tls");
        let ext = dir.join("leaf.ext");
        let written = std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        );
        assert!(
            written.is_ok(),
            "test harness: cannot write {}",
            ext.display()
        );
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => panic!(
                    "test harness: openssl {args:?} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => panic!("test harness: cannot run `openssl` ({e}); install it"),
            }
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=portal-test-ca",
        ]);
        run(&ca);
        for name in ["server", "client"] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let crt = format!("{name}.crt");
            let subj = format!("/CN=portal-test-{name}");
            let mut req = vec!["req"];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            run(&req);
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
            ]);
        }
        Self { dir }
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    /// The server certificate and key.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("server.crt"), self.dir.join("server.key"))
    }
    /// The client certificate and key.
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("client.crt"), self.dir.join("client.key"))
    }

    /// The certificates as the `redis` crate takes them (CA + client certificate).
    pub fn certificates(&self) -> redis::TlsCertificates {
        let read = |p: PathBuf| match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) => panic!("test harness: cannot read {}: {e}", p.display()),
        };
        let (cert, key) = self.client();
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: read(cert),
                client_key: read(key),
            }),
            root_cert: Some(read(self.ca())),
        }
    }

    /// `redis-server` arguments: TLS only (no plain port), client certificates required, TLS
    /// for replication and the cluster bus.
    pub(super) fn server_args(&self, port: u16) -> Vec<String> {
        let (cert, key) = self.server();
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path(&cert),
            "--tls-key-file",
            &path(&key),
            "--tls-ca-cert-file",
            &path(&self.ca()),
            "--tls-auth-clients",
            "yes",
            "--tls-replication",
            "yes",
            "--tls-cluster",
            "yes",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// `redis-cli` arguments for TLS with the client certificate.
    pub(super) fn cli_args(&self) -> Vec<String> {
        let (cert, key) = self.client();
        vec![
            "--tls".into(),
            "--cacert".into(),
            path(&self.ca()),
            "--cert".into(),
            path(&cert),
            "--key".into(),
            path(&key),
        ]
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        drop(std::fs::remove_dir_all(&self.dir));
    }
}

/// How a server is secured: nothing (the default), or TLS with required client certificates
/// and an ACL user ([`ACL_USER`]) whose password is required (the default user is disabled).
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub(super) tls: Option<std::sync::Arc<TlsFiles>>,
}

impl Security {
    /// TLS + client certificates + ACL user, with `files`.
    pub fn tls(files: std::sync::Arc<TlsFiles>) -> Self {
        Self { tls: Some(files) }
    }

    /// The TLS files, if any.
    pub fn files(&self) -> Option<&TlsFiles> {
        self.tls.as_deref()
    }

    pub(super) fn server_args(&self, port: u16, sentinel: bool) -> Vec<String> {
        match &self.tls {
            None => vec!["--port".into(), port.to_string()],
            Some(files) => {
                let mut args = files.server_args(port);
                let password = format!(">{ACL_PASSWORD}");
                args.extend(
                    [
                        "--user", "default", "off", "--user", ACL_USER, "on", &password, "~*",
                        "&*", "+@all",
                    ]
                    .iter()
                    .map(|s| (*s).to_owned()),
                );
                if !sentinel {
                    args.extend(
                        ["--masteruser", ACL_USER, "--masterauth", ACL_PASSWORD]
                            .iter()
                            .map(|s| (*s).to_owned()),
                    );
                }
                args
            }
        }
    }

    pub(super) fn cli_args(&self) -> Vec<String> {
        match &self.tls {
            None => Vec::new(),
            Some(files) => {
                let mut args = files.cli_args();
                args.extend([
                    "--user".into(),
                    ACL_USER.into(),
                    "--pass".into(),
                    ACL_PASSWORD.into(),
                ]);
                args.push("--no-auth-warning".into());
                args
            }
        }
    }

    /// A client for `127.0.0.1:port` with these credentials.
    pub(super) fn client(&self, port: u16) -> redis::Client {
        let client = match &self.tls {
            None => redis::Client::open(format!("redis://127.0.0.1:{port}/0")),
            Some(files) => redis::Client::build_with_tls(
                format!("rediss://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{port}/0"),
                files.certificates(),
            ),
        };
        match client {
            Ok(c) => c,
            Err(e) => panic!("test harness: bad client settings: {e}"),
        }
    }
}
