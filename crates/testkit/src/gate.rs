//! A TCP forwarder that can be shut like a server going away: while shut, its port refuses
//! connections and the ones open are cut; opened again, it listens on the same port. It can
//! also freeze like a server that hangs: connections stay open, new ones are accepted, and
//! no byte moves either way until it thaws. TLS and long-lived watches pass through
//! untouched. [`Silent`] is a server that accepts connections and never answers.

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The forwarder; stops on drop.
pub struct TcpGate {
    /// `127.0.0.1:<port>`.
    pub address: SocketAddr,
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl TcpGate {
    /// Forwards a free loopback port to `upstream`, open.
    ///
    /// # Errors
    /// No port can be bound.
    pub fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let gate = Self {
            address,
            open: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            frozen: Arc::new(AtomicBool::new(false)),
            connections: Arc::new(Mutex::new(Vec::new())),
        };
        let (open, stop, frozen, connections) =
            (gate.open.clone(), gate.stop.clone(), gate.frozen.clone(), gate.connections.clone());
        std::thread::spawn(move || serve(listener, upstream, &open, &stop, &frozen, &connections));
        Ok(gate)
    }

    /// Stops moving bytes: open connections stay open and silent, new ones are accepted and
    /// get no answer.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Moves bytes again, the held ones first.
    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }

    /// Shuts the port (connections refused) and cuts every open connection.
    pub fn shut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for stream in self.connections.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Let the accept loop drop its listener before the caller goes on.
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Listens again on the same port.
    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpGate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.shut();
    }
}

fn serve(
    listener: TcpListener,
    upstream: SocketAddr,
    open: &AtomicBool,
    stop: &AtomicBool,
    frozen: &Arc<AtomicBool>,
    connections: &Mutex<Vec<TcpStream>>,
) {
    let address = listener.local_addr().ok();
    let mut listener = Some(listener);
    while !stop.load(Ordering::SeqCst) {
        match (&listener, open.load(Ordering::SeqCst)) {
            (Some(_), false) => listener = None,
            (None, true) => {
                // The port was ours a moment ago; std sets SO_REUSEADDR, so it binds again.
                listener = address.and_then(|a| TcpListener::bind(a).ok());
            }
            _ => {}
        }
        let Some(l) = &listener else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if l.set_nonblocking(true).is_err() {
            return;
        }
        match l.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                if let Ok(server) = TcpStream::connect(upstream) {
                    forward(client, server, frozen, connections);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Copies both ways on two threads; the streams are kept so that `shut` can cut them.
fn forward(
    client: TcpStream,
    server: TcpStream,
    frozen: &Arc<AtomicBool>,
    connections: &Mutex<Vec<TcpStream>>,
) {
    let clones = (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone());
    let (Ok(client_reader), Ok(server_writer), Ok(client_kept), Ok(server_kept)) = clones else {
        return;
    };
    connections.lock().unwrap_or_else(|e| e.into_inner()).extend([client_kept, server_kept]);
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        let frozen = frozen.clone();
        std::thread::spawn(move || {
            let _ = copy(&mut from, &mut to, &frozen);
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    };
    pipe(client_reader, server_writer);
    pipe(server, client);
}

/// `std::io::copy`, holding each chunk while the gate is frozen.
fn copy(from: &mut TcpStream, to: &mut TcpStream, frozen: &AtomicBool) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        while frozen.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        to.write_all(&buffer[..n])?;
    }
}

/// A server that accepts every connection and never answers: the "API server" of a
/// misconfigured load balancer or a hung process. Stops on drop.
pub struct Silent {
    /// `127.0.0.1:<port>`.
    pub address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Silent {
    /// Listens on a free loopback port.
    ///
    /// # Errors
    /// No port can be bound.
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Self { address, stop })
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
