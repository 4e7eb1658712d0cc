//! The proxy benchmark of `cargo xtask bench`: per-request latency (p50, p99)
//! and sequential requests per second, direct to a mock upstream and through
//! `keyhelper proxy`, measured in the same run over keep-alive connections.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A keep-alive HTTP/1.1 server answering every request with `200 ok`.
pub fn start_upstream() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut reader = BufReader::new(stream.try_clone().expect("cloning a socket"));
                let mut writer = stream;
                loop {
                    if read_head(&mut reader).is_none() {
                        return;
                    }
                    if writer
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok",
                        )
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(port)
}

/// Reads one message head; returns its content-length.
fn read_head(reader: &mut impl BufRead) -> Option<usize> {
    let mut length = 0;
    let mut first = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" && !first {
            return Some(length);
        }
        first = false;
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
}

/// `count` sequential GETs on one keep-alive connection; the latency of each.
pub fn measure(address: &str, key: &str, count: usize) -> Result<Vec<Duration>> {
    let stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let request =
        format!("GET /v1/models HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\n\r\n");
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        writer.write_all(request.as_bytes())?;
        let length = read_head(&mut reader).context("the connection closed")?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        times.push(start.elapsed());
        if body != b"ok" {
            bail!("unexpected response body from {address}");
        }
    }
    Ok(times)
}

/// Starts `keyhelper proxy`; returns it and its address.
pub fn start_proxy(mut command: Command) -> Result<(Child, String)> {
    let mut child = command.stderr(Stdio::piped()).spawn().context("starting keyhelper proxy")?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let address = loop {
        let line = lines.next().context("the proxy exited before listening")??;
        if let Some(rest) = line.strip_prefix("keyhelper: proxying http://") {
            break rest.split_whitespace().next().unwrap_or_default().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Ok((child, address))
}
