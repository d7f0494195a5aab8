//! nginx from Debian as the HTTP baseline: started in the server's
//! namespace with a config of our own (one worker per queue, pinned like
//! sluiced's cores, access log off, the same body sluice answers with),
//! stopped by its master's PID.
use crate::interrupt::StopFlag;
use anyhow::{anyhow, bail, Context};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The body both servers answer with (sluice's default).
pub const BODY: &str = "hello from sluice\n";

/// Where Debian puts nginx.
fn binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"].iter().map(PathBuf::from).find(|p| p.is_file())
}

/// A running nginx; [`Nginx::stop`] (or dropping it) ends it.
pub struct Nginx {
    child: Option<Child>,
    dir: PathBuf,
}

/// The config: `workers` processes pinned to CPUs 0.., keep-alive without
/// a request limit, no logs, `return 200` of [`BODY`].
pub fn config_text(listen: SocketAddrV4, workers: u32, dir: &Path) -> String {
    let mask: Vec<String> = (0..workers)
        .map(|w| {
            let mut bits = vec!['0'; workers as usize];
            let i = workers as usize - 1 - w as usize;
            bits[i] = '1';
            bits.into_iter().collect()
        })
        .collect();
    format!(
        r#"# written by sluice-bench
worker_processes {workers};
worker_cpu_affinity {affinity};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 16384;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    server_tokens off;
    default_type "text/plain; charset=utf-8";
    server {{
        listen {listen} reuseport backlog=4096;
        location / {{
            return 200 "{body}";
        }}
    }}
}}
"#,
        affinity = mask.join(" "),
        dir = dir.display(),
        body = BODY.escape_default(),
    )
}

impl Nginx {
    /// Starts nginx in namespace `ns` listening on `listen` with `workers`
    /// workers, and waits until it answers.
    pub fn start(ns: &str, listen: SocketAddrV4, workers: u32, stop: &StopFlag) -> anyhow::Result<Nginx> {
        let bin = binary().ok_or_else(|| anyhow!("nginx is not installed: apt-get install nginx-light"))?;
        let dir = std::env::temp_dir().join(format!("sluice-bench-nginx-{}-{}", std::process::id(), listen.port()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config_text(listen, workers.max(1), &dir)).context("writing nginx.conf")?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&bin)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off; master_process on;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let mut me = Nginx { child: Some(child), dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = me.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                me.child = None;
                bail!("nginx exited at start ({st}): {}", me.log_tail());
            }
            if me.workers().len() >= workers as usize && answers(ns, listen) {
                return Ok(me);
            }
            if Instant::now() >= deadline {
                bail!("nginx did not answer on {listen} within 10 s: {}", me.log_tail());
            }
            stop.sleep(Duration::from_millis(50))?;
        }
    }

    /// The master's PID (`ip netns exec` execs nginx in place).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The master and its workers.
    pub fn pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.pid().into_iter().collect();
        v.extend(self.workers());
        v
    }

    /// The workers: the master's children.
    fn workers(&self) -> Vec<u32> {
        let Some(pid) = self.pid() else { return Vec::new() };
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// SIGTERM to the master (a fast shutdown), SIGKILL after 5 s.
    pub fn stop(mut self) -> Vec<String> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Vec<String> {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let mut problems = Vec::new();
        // The workers are the master's children, not ours: their PIDs are
        // taken now, while the master still has them.
        let workers = self.workers();
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        let _ = c.kill();
                        let _ = c.wait();
                        problems.push("nginx did not stop on SIGTERM within 5 s (killed)".into());
                        break;
                    }
                }
            }
        }
        // A worker still alive (its master was killed, or it hung) is killed
        // by its PID, if it still is an nginx.
        let deadline = Instant::now() + Duration::from_secs(2);
        for w in workers {
            let is_nginx = || std::fs::read_to_string(format!("/proc/{w}/comm")).is_ok_and(|c| c.trim() == "nginx");
            while is_nginx() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if is_nginx() {
                let _ = kill(Pid::from_raw(w as i32), Signal::SIGKILL);
                problems.push(format!("nginx worker {w} outlived its master (killed)"));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        problems
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Whether an HTTP GET to `addr` from inside `ns` gets a 200.
fn answers(ns: &str, addr: SocketAddrV4) -> bool {
    sluice_lab::Lab::run_in(ns, || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr.into(), Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").is_err() {
            return false;
        }
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf.starts_with(b"HTTP/1.1 200")
    })
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_pins_one_worker_per_queue_and_answers_the_same_body() {
        let c = config_text("198.18.0.2:80".parse().unwrap(), 3, Path::new("/tmp/x"));
        assert!(c.contains("worker_processes 3;"), "{c}");
        assert!(c.contains("worker_cpu_affinity 001 010 100;"), "{c}");
        assert!(c.contains("listen 198.18.0.2:80 reuseport"), "{c}");
        assert!(c.contains(r#"return 200 "hello from sluice\n";"#), "{c}");
        assert!(c.contains("access_log off;"));
    }
}
