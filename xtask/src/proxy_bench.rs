//! The proxy benchmarks: in `cargo xtask bench`, per-request latency (p50,
//! p99) and sequential requests per second, direct to a mock upstream and
//! through `keyhelper proxy`; `cargo xtask bench proxy` adds nginx, as a
//! plain reverse proxy to the same upstream, as the yardstick, at 1 and 64
//! concurrent keep-alive connections.

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

/// Latencies and throughput of one proxy (or none) at one concurrency.
struct Load {
    latencies: Vec<Duration>,
    per_second: f64,
}

/// `connections` keep-alive connections to `address`, each sending GETs one
/// after another for `duration`.
fn load(address: &str, key: &str, connections: usize, duration: Duration) -> Result<Load> {
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (address, key) = (address.to_string(), key.to_string());
            std::thread::spawn(move || -> Result<Vec<Duration>> {
                let mut all = Vec::new();
                let deadline = Instant::now() + duration;
                while Instant::now() < deadline {
                    all.extend(measure(&address, &key, 500)?);
                }
                Ok(all)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??);
    }
    let per_second = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok(Load { latencies, per_second })
}

impl Load {
    fn at(&self, p: usize) -> Duration {
        self.latencies[(self.latencies.len() - 1) * p / 100]
    }
}

/// nginx as a plain reverse proxy to `upstream`, with keep-alive both ways,
/// as many workers as keyhelper's proxy has threads; stopped on drop.
struct Nginx {
    child: Child,
    dir: std::path::PathBuf,
    address: String,
}

impl Nginx {
    fn start(upstream_port: u16) -> Result<Self> {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(std::path::Path::new)
            .find(|p| p.exists())
            .context("nginx is not installed; install it (Debian: `apt-get install nginx`)")?;
        let dir = std::env::temp_dir().join(format!("keyhelper-bench-nginx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs"))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = format!(
            "daemon off;\nworker_processes 2;\npid {dir}/nginx.pid;\nerror_log {dir}/logs/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
             fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
             upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}\n\
             server {{\n    listen 127.0.0.1:{port};\n    keepalive_requests 1000000;\n\
             location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n  }}\n}}\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), config)?;
        let child = Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&address).is_err() {
            if Instant::now() > deadline {
                bail!("nginx did not start; see {}/logs/error.log", dir.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { child, dir, address })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master stops its workers; killed, it would orphan them.
        let stopped = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        if !stopped.is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The paths a request can take in the yardstick benchmark.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    Direct,
    Nginx,
    Keyhelper,
}

impl Path {
    const ALL: [Path; 3] = [Path::Direct, Path::Nginx, Path::Keyhelper];

    fn label(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Nginx => "nginx",
            Path::Keyhelper => "keyhelper proxy",
        }
    }
}

/// One path's measurements over every round at one concurrency.
#[derive(Default)]
struct Pooled {
    latencies: Vec<Duration>,
    requests: usize,
    elapsed: Duration,
    rounds: usize,
    /// CPU seconds the proxy's processes used, per round where `/proc` told.
    cpu: Vec<f64>,
}

impl Pooled {
    fn add(&mut self, load: Load, elapsed: Duration, cpu: Option<f64>) {
        self.requests += load.latencies.len();
        self.latencies.extend(load.latencies);
        self.elapsed += elapsed;
        self.rounds += 1;
        self.cpu.extend(cpu);
    }

    fn finish(mut self) -> (Load, Option<Duration>) {
        self.latencies.sort_unstable();
        let told = self.rounds > 0 && self.cpu.len() == self.rounds;
        let per_request =
            told.then(|| Duration::from_secs_f64(self.cpu.iter().sum::<f64>() / self.requests as f64));
        (
            Load { per_second: self.requests as f64 / self.elapsed.as_secs_f64(), latencies: self.latencies },
            per_request,
        )
    }
}

/// CPU seconds (user and system) that `pids` and their child processes
/// have used so far, from Linux's `/proc`; none elsewhere.
fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    let mut all = pids.to_vec();
    for pid in pids {
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        all.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
    }
    let mut ticks = 0u64;
    for pid in all {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        ticks += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(ticks as f64 / CLOCK_TICKS_PER_SECOND)
}

/// The unit of `/proc/<pid>/stat`'s times (`getconf CLK_TCK`, 100 on Linux).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// `cargo xtask bench proxy [--seconds N]`: keyhelper's proxy against nginx
/// as a plain reverse proxy to the same upstream, at 1 and 64 concurrent
/// keep-alive connections: added p50/p99 latency over going direct, and
/// requests per second. Each path gets N one-second rounds per concurrency,
/// the three paths taking turns in a rotating order, so that a slow moment
/// of a shared two-core machine falls on all of them alike; each path's
/// figures pool its rounds.
pub fn bench(args: &[String]) -> Result<()> {
    let rounds: u32 = match args {
        [flag, n] if flag == "--seconds" => n.parse().context("--seconds takes a number")?,
        [] => 6,
        _ => bail!("bench proxy takes only --seconds N"),
    };
    let keyhelper = crate::shipped::ShippedBuild::for_host()?.build_executables()?.join("keyhelper");
    let home = ProxyHome::new()?;
    let upstream_port = start_upstream()?;
    let direct = format!("127.0.0.1:{upstream_port}");
    let nginx = Nginx::start(upstream_port)?;
    let client_key = "bench-client-key-0123456789";
    let (mut proxy, proxied) = start_proxy({
        let mut command = home.command(&keyhelper);
        command
            .args(["proxy", "work", "--upstream", &format!("http://{direct}")])
            .env("KEYHELPER_PROXY_KEY", client_key);
        command
    })?;
    let target = |path: Path| match path {
        Path::Direct => (direct.as_str(), "x", vec![]),
        Path::Nginx => (nginx.address.as_str(), "x", vec![nginx.child.id()]),
        Path::Keyhelper => (proxied.as_str(), client_key, vec![proxy.id()]),
    };
    let us = |d: Duration| format!("{:.0} us", d.as_secs_f64() * 1e6);
    println!(
        "{rounds} one-second rounds per path and concurrency, the paths taking turns\n\n{:<8} {:<22} {:>10} {:>10} {:>12} {:>12} {:>11} {:>12}",
        "clients", "path", "p50", "p99", "added p50", "added p99", "req/s", "CPU/request"
    );
    let mut verdicts = Vec::new();
    for connections in [1, 64] {
        let mut pooled: [Pooled; 3] = Default::default();
        for round in 0..rounds as usize {
            for step in 0..Path::ALL.len() {
                let path = Path::ALL[(round + step) % Path::ALL.len()];
                let (address, key, pids) = target(path);
                load(address, key, connections, Duration::from_millis(100))?; // warm-up
                let (started, cpu_before) = (Instant::now(), cpu_seconds(&pids));
                let measured = load(address, key, connections, Duration::from_secs(1))?;
                let cpu = match (pids.is_empty(), cpu_before, cpu_seconds(&pids)) {
                    (false, Some(before), Some(after)) => Some(after - before),
                    _ => None,
                };
                pooled[path as usize].add(measured, started.elapsed(), cpu);
            }
        }
        let [(base, _), (through_nginx, nginx_cpu), (through_keyhelper, keyhelper_cpu)] =
            pooled.map(Pooled::finish);
        let cpu = [None, nginx_cpu, keyhelper_cpu];
        let added = |load: &Load, p| load.at(p).saturating_sub(base.at(p));
        for path in Path::ALL {
            let load = [&base, &through_nginx, &through_keyhelper][path as usize];
            let shown = |p| if path == Path::Direct { "-".into() } else { us(added(load, p)) };
            let cpu_shown =
                cpu[path as usize].map_or("-".into(), |d| format!("{:.1} us", d.as_secs_f64() * 1e6));
            println!(
                "{connections:<8} {:<22} {:>10} {:>10} {:>12} {:>12} {:>11.0} {:>12}",
                path.label(),
                us(load.at(50)),
                us(load.at(99)),
                shown(50),
                shown(99),
                load.per_second,
                cpu_shown
            );
        }
        let verdict = |met: bool| if met { "met" } else { "missed" };
        verdicts.push(format!(
            "{connections} client(s): added p50 {} vs nginx {} ({}), added p99 {} vs {} ({}), req/s {:.2}x nginx's ({})",
            us(added(&through_keyhelper, 50)),
            us(added(&through_nginx, 50)),
            verdict(added(&through_keyhelper, 50) <= added(&through_nginx, 50)),
            us(added(&through_keyhelper, 99)),
            us(added(&through_nginx, 99)),
            verdict(added(&through_keyhelper, 99) <= added(&through_nginx, 99)),
            through_keyhelper.per_second / through_nginx.per_second,
            verdict(through_keyhelper.per_second >= 0.9 * through_nginx.per_second),
        ));
    }
    let _ = proxy.kill();
    let _ = proxy.wait();
    println!();
    for verdict in verdicts {
        println!("{verdict}");
    }
    Ok(())
}

/// A temporary home whose credential `work` comes from a fake `az` that
/// answers at once with a token valid until 2100.
struct ProxyHome {
    dir: std::path::PathBuf,
}

impl ProxyHome {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("keyhelper-proxy-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin"))?;
        std::fs::create_dir_all(dir.join(".config/keyhelper"))?;
        let az = dir.join("bin/az");
        std::fs::write(
            &az,
            "#!/bin/sh\necho '{\"accessToken\":\"eyJ0eXAi.bench.token\",\"expires_on\":4102444800}'\n",
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755))?;
        std::fs::write(
            dir.join(".config/keyhelper/config.toml"),
            "[credentials.work]\nprovider = \"azure\"\n",
        )?;
        Ok(Self { dir })
    }

    fn command(&self, program: &std::path::Path) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join(".config"))
            .env("XDG_CACHE_HOME", self.dir.join(".cache"))
            .env("XDG_DATA_HOME", self.dir.join(".local/share"))
            .env("XDG_STATE_HOME", self.dir.join(".local/state"))
            .env("PATH", format!("{}:/usr/bin:/bin", self.dir.join("bin").display()));
        command
    }
}

impl Drop for ProxyHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
