//! Services a test owns and can take away: a TCP proxy that cuts and restores connections, a
//! private Kafka-protocol broker behind it, and a private Redis that can be stopped and started.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::free_port;

/// Forwards `127.0.0.1:port` to a target. `cut()` closes every connection and stops listening
/// (clients get "connection refused"), as when a broker's host drops off the network;
/// `restore()` listens again on the same port.
pub struct TcpProxy {
    pub port: u16,
    target: String,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpProxy {
    pub fn start(port: u16, target: &str) -> Self {
        let mut proxy = Self {
            port,
            target: target.to_owned(),
            open: Arc::new(AtomicBool::new(false)),
            connections: Arc::default(),
            acceptor: None,
        };
        proxy.restore();
        proxy
    }

    pub fn cut(&mut self) {
        self.open.store(false, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for connection in self.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&mut self) {
        if self.open.swap(true, Ordering::SeqCst) {
            return;
        }
        let listener = bind_retrying(self.port);
        listener.set_nonblocking(true).unwrap();
        let (open, connections, target) = (
            self.open.clone(),
            self.connections.clone(),
            self.target.clone(),
        );
        self.acceptor = Some(std::thread::spawn(move || {
            while open.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(&target) else {
                            continue;
                        };
                        let mut list = connections.lock().unwrap();
                        list.push(client.try_clone().unwrap());
                        list.push(server.try_clone().unwrap());
                        pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                        pipe(server, client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            // The listener drops here: the port refuses connections until restore().
        }));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

fn bind_retrying(port: u16) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => return listener,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => panic!("cannot listen on port {port}: {error}"),
        }
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not open port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A private tansu broker that tells clients to reach it at `advertised_port` (a proxy).
pub struct Broker {
    child: Child,
    pub port: u16,
}

impl Broker {
    pub fn start(advertised_port: u16) -> Self {
        let tansu = std::env::var("ARGUS_TANSU")
            .expect("ARGUS_TANSU is not set: run the tests with `make test` (deploy/env.sh)");
        let port = free_port();
        let child = Command::new(tansu)
            .arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{advertised_port}"))
            .arg("--storage-engine")
            .arg("memory://tansu/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        wait_for_port(port, "tansu");
        Self { child, port }
    }
}

/// A broker that keeps its topics on disk (tansu with SQLite, the one `make run` uses), on a
/// fixed port, so that it can be killed and started again as the same broker.
pub struct DurableBroker {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl DurableBroker {
    pub fn start(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mut broker = Self {
            child: None,
            port: free_port(),
            dir,
        };
        broker.restart();
        broker
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on its port and its storage.
    pub fn restart(&mut self) {
        self.kill();
        let tansu = std::env::var("ARGUS_TANSU_DURABLE").expect(
            "ARGUS_TANSU_DURABLE is not set: run the tests with `make test` (deploy/env.sh)",
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .unwrap();
        let child = Command::new(tansu)
            .current_dir(&self.dir)
            .arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .arg("--storage-engine")
            .arg("sqlite://tansu.db")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the durable tansu starts");
        self.child = Some(child);
        wait_for_port(self.port, "the durable tansu");
    }
}

impl Drop for DurableBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private redis-server; `stop()` and `start()` keep its port and settings.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    dir: PathBuf,
    /// Serves TLS only (on `port`) when set.
    tls: bool,
}

impl RedisServer {
    /// `args` are extra redis-server options, e.g. `["--requirepass", "secret"]`.
    pub fn start(dir: PathBuf, args: &[&str]) -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            args: args.iter().map(|a| a.to_string()).collect(),
            dir,
            tls: false,
        };
        server.restart();
        server
    }

    /// A TLS-only Redis with a fresh self-signed certificate for 127.0.0.1; returns it and the
    /// certificate (PEM), which clients must trust.
    pub fn start_tls(dir: PathBuf) -> (Self, PathBuf) {
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl made no certificate");
        let path = |p: &PathBuf| p.display().to_string();
        let mut server = Self {
            child: None,
            port: free_port(),
            args: vec![
                "--tls-cert-file".into(),
                path(&cert),
                "--tls-key-file".into(),
                path(&key),
                "--tls-ca-cert-file".into(),
                path(&cert),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
            dir,
            tls: true,
        };
        server.restart();
        (server, cert)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        std::fs::create_dir_all(&self.dir).unwrap();
        let mut command = Command::new("redis-server");
        if self.tls {
            command.args(["--port", "0", "--tls-port"]);
        } else {
            command.arg("--port");
        }
        let child = command
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
