//! A `redis-server` of a test's own: on 127.0.0.1, on a free port, no
//! persistence (`--save '' --appendonly no`), in a temporary directory,
//! killed on drop. When it cannot be started, the test says why, loudly,
//! and is skipped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reconnect_client::Clock;

/// A `redis-server` of the test's own, stopped on drop.
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one on a free port, or says loudly why it cannot.
    pub fn start(test: &str) -> Option<Self> {
        let mut server = Self::reserve(test)?;
        match server.launch() {
            Ok(()) => Some(server),
            Err(reason) => {
                skip(test, &reason);
                None
            }
        }
    }

    /// A port and a directory for one, not started yet.
    pub fn reserve(test: &str) -> Option<Self> {
        let port = match free_port() {
            Ok(port) => port,
            Err(error) => {
                skip(test, &format!("no free port: {error}"));
                return None;
            }
        };
        let dir =
            std::env::temp_dir().join(format!("reconnect-redis-{}-{port}", std::process::id()));
        if let Err(error) = std::fs::create_dir_all(&dir) {
            skip(test, &format!("no temporary directory: {error}"));
            return None;
        }
        Some(Self {
            child: None,
            port,
            dir,
            extra: Vec::new(),
        })
    }

    /// Adds arguments to its command line (`--requirepass ...`).
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|arg| (*arg).to_owned()));
        self
    }

    /// Starts it (again) and waits until it answers.
    pub fn launch(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("`redis-server` could not be started: {error}"))?;
        self.child = Some(child);
        let clock = Clock::start();
        while clock.elapsed() < Duration::from_secs(10) {
            if ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(format!(
            "`redis-server` did not answer PING on port {} within 10 s",
            self.port
        ))
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills it (as a crash would) and waits for it to go.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.launch().expect("redis-server restarts on its port");
    }

    /// The names of every key (`KEYS *`), over a plain socket.
    pub fn keys(&self) -> Vec<String> {
        let mut stream = TcpStream::connect(self.addr()).expect("redis answers");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n")
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let count: usize = line.trim().trim_start_matches('*').parse().unwrap();
        (0..count)
            .map(|_| {
                let mut len = String::new();
                reader.read_line(&mut len).unwrap();
                let mut name = String::new();
                reader.read_line(&mut name).unwrap();
                name.trim_end().to_owned()
            })
            .collect()
    }

    /// One command, over a plain socket: the reply's first line.
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect(self.addr()).expect("redis answers");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(len) = line.strip_prefix('$') {
            let len: i64 = len.trim().parse().unwrap();
            if len < 0 {
                return String::new();
            }
            let mut body = vec![0; usize::try_from(len).unwrap() + 2];
            reader.read_exact(&mut body).unwrap();
            return String::from_utf8_lossy(&body[..body.len() - 2]).into_owned();
        }
        line.trim().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Says, loudly, why a test is skipped.
pub fn skip(test: &str, reason: &str) {
    eprintln!(
        "\n!!!!!!!! SKIPPED {test}: {reason}\n!!!!!!!! install Redis (`apt-get install -y redis-server`) to run it\n"
    );
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0; 5];
    // Up, whether or not it asks for a password first.
    stream.read_exact(&mut reply).is_ok() && (&reply == b"+PONG" || &reply == b"-NOAU")
}
