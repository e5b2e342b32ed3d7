//! A fixed-size pool of keep-alive HTTP connections from the lab server to an upstream
//! (another lab server): the `pool-too-small-http` scenario's application tier. A request
//! takes a connection, waiting while all are in use, and gives it back after the response.
use std::{
    io::{self, Read, Write},
    net::{Ipv4Addr, TcpStream},
    sync::{Condvar, Mutex},
};

pub struct Pool {
    port: u16,
    idle: Mutex<Vec<TcpStream>>,
    returned: Condvar,
}

impl Pool {
    /// Opens `size` connections to 127.0.0.1:`port`.
    pub fn connect(port: u16, size: usize) -> io::Result<Pool> {
        let idle = (0..size.max(1))
            .map(|_| open(port))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Pool {
            port,
            idle: Mutex::new(idle),
            returned: Condvar::new(),
        })
    }

    /// One request upstream on a pooled connection (reopened if the upstream closed it).
    pub fn call(&self) -> io::Result<()> {
        let mut conn = {
            let mut idle = self
                .idle
                .lock()
                .map_err(|_| io::Error::other("pool poisoned"))?;
            loop {
                if let Some(c) = idle.pop() {
                    break c;
                }
                idle = self
                    .returned
                    .wait(idle)
                    .map_err(|_| io::Error::other("pool poisoned"))?;
            }
        };
        let result = request(&mut conn);
        if result.is_err() {
            // Keep the pool at its size: a fresh connection replaces a broken one.
            if let Ok(fresh) = open(self.port) {
                conn = fresh;
            }
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        self.returned.notify_one();
        result
    }
}

fn open(port: u16) -> io::Result<TcpStream> {
    let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// GET / and read the whole response (head, then Content-Length bytes of body).
fn request(conn: &mut TcpStream) -> io::Result<()> {
    conn.write_all(b"GET / HTTP/1.1\r\nHost: upstream\r\n\r\n")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let body = super::server::content_length(&head);
        if buf.len() >= end + 4 + body {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{io::BufRead, net::TcpListener, thread};

    use super::*;

    #[test]
    fn requests_wait_for_a_free_connection_and_reuse_it() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // An upstream that counts its connections and answers every request.
        let server = thread::spawn(move || {
            let (conn, _) = listener.accept().expect("accept");
            let mut reader = io::BufReader::new(conn.try_clone().expect("clone"));
            let mut out = conn;
            let mut answered = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" {
                    out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                        .expect("answer");
                    answered += 1;
                }
                line.clear();
            }
            answered
        });
        let pool = std::sync::Arc::new(Pool::connect(port, 1).expect("connect"));
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || (0..5).all(|_| pool.call().is_ok()))
            })
            .collect();
        for c in callers {
            assert!(c.join().expect("caller"));
        }
        drop(pool);
        // One connection carried all 20 requests, one at a time.
        assert_eq!(server.join().expect("server"), 20);
    }
}
