//! A TCP forwarder that can be shut like a server going away: while shut, its port refuses
//! connections and the ones open are cut; opened again, it listens on the same port. TLS and
//! long-lived watches pass through untouched.

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
            connections: Arc::new(Mutex::new(Vec::new())),
        };
        let (open, stop, connections) =
            (gate.open.clone(), gate.stop.clone(), gate.connections.clone());
        std::thread::spawn(move || serve(listener, upstream, &open, &stop, &connections));
        Ok(gate)
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
                    forward(client, server, connections);
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
fn forward(client: TcpStream, server: TcpStream, connections: &Mutex<Vec<TcpStream>>) {
    let clones = (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone());
    let (Ok(client_reader), Ok(server_writer), Ok(client_kept), Ok(server_kept)) = clones else {
        return;
    };
    connections.lock().unwrap_or_else(|e| e.into_inner()).extend([client_kept, server_kept]);
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    };
    pipe(client_reader, server_writer);
    pipe(server, client);
}
