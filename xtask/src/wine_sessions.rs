//! The long-running parts of keyhelper under Wine, after `cross`'s
//! one-shot scenarios: a renewal in the background (a detached
//! `keyhelper-full.exe renew-in-background` that outlives the `get` that
//! started it) and the proxy (a Linux client through the Windows proxy to a
//! Linux upstream, which must see the stored key and nothing else).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};

use crate::wine::{Wine, stderr, stdout, windows_path};

/// Lifetime of the first token: its refresh window is half of it (20 s), its
/// floor half of that (10 s), so a `get` 22 s after the fetch is inside the
/// window and above the floor: answered from the cache, renewed behind it.
const SHORT_LIFETIME: u64 = 40;
const IN_WINDOW_AFTER: Duration = Duration::from_secs(22);

/// A fake `az.cmd` printing `token`, expiring at `expires` (unix seconds),
/// logging each call to `az-renewal.log`.
fn fake_az(wine: &Wine, token: &str, expires: u64) -> Result<()> {
    let script = format!(
        "@echo off\r\necho %* >> \"%~dp0az-renewal.log\"\r\necho {{\"accessToken\": \"{token}\", \"expires_on\": {expires}, \"tokenType\": \"Bearer\"}}\r\n"
    );
    std::fs::write(wine.dir.join("bin").join("az.cmd"), script)?;
    Ok(())
}

fn now() -> Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
}

/// A `get` inside the refresh window answers the cached token although the
/// provider now has another, and a detached renewer puts the new one in the
/// cache after the `get` has exited.
pub fn background_renewal(wine: &Wine) -> Result<()> {
    let config = wine.write(
        "renewal.toml",
        "[credentials.soon]\nprovider = \"azure\"\nscope = \"api://renewal/.default\"\n",
    )?;
    let get = || -> Result<String> {
        let output = wine.keyhelper(&config, &["get", "soon"], None)?;
        ensure!(output.status.success(), "get of the renewing credential failed: {}", stderr(&output));
        Ok(stdout(&output).trim_end().to_string())
    };
    let fetched = Instant::now();
    fake_az(wine, "token-1", now()? + SHORT_LIFETIME)?;
    ensure!(get()? == "token-1", "the first get did not fetch token-1");
    fake_az(wine, "token-2", now()? + 3600)?;
    std::thread::sleep(IN_WINDOW_AFTER.saturating_sub(fetched.elapsed()));
    let in_window = get()?;
    ensure!(
        fetched.elapsed() < Duration::from_secs(SHORT_LIFETIME / 2 + SHORT_LIFETIME / 4),
        "Wine was too slow to reach the refresh window above its floor ({:?})",
        fetched.elapsed()
    );
    ensure!(
        in_window == "token-1",
        "a get inside the refresh window printed {in_window:?}: it renewed in the foreground instead of answering from the cache"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if get()? == "token-2" {
            break;
        }
        if Instant::now() > deadline {
            bail!("no renewal in the background put token-2 in the cache within 60 s");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = std::fs::read_to_string(wine.dir.join("bin").join("az-renewal.log"))?;
    ensure!(
        log.lines().count() == 2,
        "az.cmd ran {} times, not twice (fetch, renewal): {log}",
        log.lines().count()
    );
    eprintln!("xtask: wine: a renewal in the background, after the get that started it exited ✓");
    wine.stop_all()
}

/// A loopback upstream on Linux: answers each request with the
/// `Authorization` header it got, and reports it.
fn upstream() -> Result<(u16, mpsc::Receiver<String>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (seen, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let head = read_head(&mut stream).unwrap_or_default();
            let authorization = header(&head, "authorization").unwrap_or_default();
            let body = serde_json::json!({ "authorization": authorization }).to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = seen.send(authorization);
        }
    });
    Ok((port, receiver))
}

/// The request or response head (up to the blank line), as text.
fn read_head(stream: &mut TcpStream) -> Result<String> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim().to_string())
}

/// `GET path` to the proxy with `key` as the client key; its status line
/// and body.
fn request(port: u16, key: &str) -> Result<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut response = String::new();
    stream.read_to_string(&mut response).context("reading the proxy's answer")?;
    let status = response.lines().next().unwrap_or_default().to_string();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// `keyhelper.exe proxy` for the stored OpenAI key (from the file-store
/// scenario): a request with the client key reaches the upstream with the
/// real key; one without it is refused and reaches nothing.
pub fn proxy(wine: &Wine) -> Result<()> {
    let (port, seen) = upstream()?;
    let config = wine.dir.join("openai-file.toml");
    let exe = wine.bin.join("keyhelper.exe");
    let mut child = wine
        .command(&exe.to_string_lossy())
        .args(["proxy", "oai", "--upstream", &format!("http://127.0.0.1:{port}"), "--json"])
        .env("KEYHELPER_CONFIG", windows_path(&config))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().context("piped")?).read_line(&mut line);
    let outcome = (|| -> Result<()> {
        read.context("reading the proxy's announcement")?;
        let announced: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("the proxy announced {line:?}"))?;
        let listen = announced["listen"].as_str().context("no `listen` in the announcement")?;
        let proxy_port: u16 = listen.rsplit(':').next().unwrap_or_default().parse()?;
        let key = announced["env"]["OPENAI_API_KEY"].as_str().context("no client key in the announcement")?;
        let (status, body) = request(proxy_port, key)?;
        ensure!(status.contains(" 200 "), "the proxy answered {status:?}: {body}");
        let upstream_saw =
            seen.recv_timeout(Duration::from_secs(5)).context("nothing reached the upstream")?;
        ensure!(
            upstream_saw == "Bearer sk-proj-winefile0123456789abcdefghijklmnopqrstuv",
            "the upstream got Authorization {upstream_saw:?}, not the stored key"
        );
        let (status, _) = request(proxy_port, "kh-proxy-not-the-client-key")?;
        ensure!(status.contains(" 401 "), "a request without the client key got {status:?}");
        ensure!(
            seen.recv_timeout(Duration::from_millis(500)).is_err(),
            "a refused request reached the upstream"
        );
        Ok(())
    })();
    wine.stop_all()?;
    let _ = child.kill();
    let _ = child.wait();
    outcome?;
    eprintln!("xtask: wine: the proxy, with the stored key upstream and the client key checked ✓");
    Ok(())
}
