//! Waiting for the stack to become healthy.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::engine::{Container, Engine};

/// Why the stack is not healthy.
#[derive(Debug, Clone)]
pub struct Unhealthy {
    /// What failed.
    pub reason: String,
    /// The container to blame, if one.
    pub container: Option<String>,
}

/// GETs an `http://` URL; returns the status code.
pub fn http_get(url: &str, timeout: Duration) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("health URL {url:?}: only http:// is supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr_s = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:80")
    };
    let addr = addr_s
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: {e}"))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nUser-Agent: installer\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("{url}: {e}"))?;
    let mut buf = Vec::new();
    s.take(64 * 1024)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{url}: {e}"))?;
    let line = String::from_utf8_lossy(&buf);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer"))?;
    Ok(code)
}

/// GETs a URL and returns the body (for the demo and tests).
pub fn http_body(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").ok_or("only http://")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = TcpStream::connect(hostport).map_err(|e| bundle_format::error_text(&e))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n")
        .map_err(|e| bundle_format::error_text(&e))?;
    let mut b = String::new();
    s.read_to_string(&mut b)
        .map_err(|e| bundle_format::error_text(&e))?;
    Ok(b.split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default())
}

fn check(containers: &[Container], compose_checks: bool) -> Result<bool, Unhealthy> {
    if containers.is_empty() {
        return Ok(false);
    }
    let mut ready = true;
    for c in containers {
        match c.status.as_str() {
            "running" => {}
            "exited" if c.exit_code == 0 => continue,
            "created" | "restarting" => {
                ready = false;
                continue;
            }
            other => {
                return Err(Unhealthy {
                    reason: format!(
                        "container {} (service {}) is {other} with exit code {}",
                        c.name, c.service, c.exit_code
                    ),
                    container: Some(c.name.clone()),
                })
            }
        }
        if compose_checks {
            match c.health.as_str() {
                "" | "healthy" => {}
                "unhealthy" => {
                    return Err(Unhealthy {
                        reason: format!(
                            "container {} (service {}) failed its healthcheck",
                            c.name, c.service
                        ),
                        container: Some(c.name.clone()),
                    })
                }
                _ => ready = false,
            }
        }
    }
    Ok(ready)
}

/// Waits until every container runs (or exited 0), compose healthchecks
/// pass (when asked) and the URL answers 2xx, or `timeout` passes.
pub fn wait(
    engine: &dyn Engine,
    project: &str,
    url: Option<&str>,
    compose_checks: bool,
    timeout: Duration,
    interrupted: &dyn Fn() -> bool,
) -> Result<(), Unhealthy> {
    let deadline = Instant::now() + timeout;
    let mut last;
    let mut blame = None;
    loop {
        if interrupted() {
            return Err(Unhealthy {
                reason: "interrupted while waiting for health".into(),
                container: None,
            });
        }
        let containers = engine.containers(project).map_err(|e| Unhealthy {
            reason: e.to_string(),
            container: None,
        })?;
        match check(&containers, compose_checks) {
            Err(u) => return Err(u),
            Ok(false) => {
                last = if containers.is_empty() {
                    "no container of the project is running".to_owned()
                } else {
                    "containers are still starting".to_owned()
                };
                blame = containers
                    .iter()
                    .find(|c| {
                        c.status != "running" || (!c.health.is_empty() && c.health != "healthy")
                    })
                    .map(|c| c.name.clone());
            }
            Ok(true) => match url {
                None => return Ok(()),
                Some(u) => match http_get(u, Duration::from_secs(2)) {
                    Ok(code) if (200..300).contains(&code) => return Ok(()),
                    Ok(code) => {
                        last = format!("{u} answered HTTP {code}");
                        blame = containers.first().map(|c| c.name.clone());
                    }
                    Err(e) => last = e,
                },
            },
        }
        if Instant::now() >= deadline {
            return Err(Unhealthy {
                reason: format!("not healthy after {}s: {last}", timeout.as_secs()),
                container: blame,
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::fake_engine::FakeEngine;
    use rstest::rstest;

    fn c(status: &str, exit_code: i64, health: &str) -> Container {
        Container {
            name: "demo-web-1".into(),
            service: "web".into(),
            status: status.into(),
            exit_code,
            health: health.into(),
            image_id: "sha256:1".into(),
        }
    }

    #[rstest]
    #[case::running(c("running", 0, ""), true, Ok(true))]
    #[case::healthy(c("running", 0, "healthy"), true, Ok(true))]
    #[case::starting(c("running", 0, "starting"), true, Ok(false))]
    #[case::starting_but_checks_off(c("running", 0, "starting"), false, Ok(true))]
    #[case::one_shot_done(c("exited", 0, ""), true, Ok(true))]
    #[case::created(c("created", 0, ""), true, Ok(false))]
    #[case::crashed(c("exited", 3, ""), true, Err("container demo-web-1 (service web) is exited with exit code 3".to_string()))]
    #[case::unhealthy(c("running", 0, "unhealthy"), true, Err("container demo-web-1 (service web) failed its healthcheck".to_string()))]
    fn a_container_state_decides_health(
        #[case] container: Container,
        #[case] compose_checks: bool,
        #[case] want: Result<bool, String>,
    ) {
        assert_eq!(
            check(&[container], compose_checks).map_err(|u| u.reason),
            want
        );
    }

    #[test]
    fn waiting_ends_at_the_first_failure_naming_the_container() {
        let e = FakeEngine::default();
        *e.containers.borrow_mut() = vec![
            vec![c("running", 0, "starting")],
            vec![c("running", 0, "unhealthy")],
        ];
        let u = wait(&e, "demo", None, true, Duration::from_secs(30), &|| false).unwrap_err();
        assert_eq!(u.container.as_deref(), Some("demo-web-1"));
        assert!(u.reason.contains("failed its healthcheck"), "{}", u.reason);
        let u = wait(&e, "demo", None, true, Duration::from_secs(30), &|| true).unwrap_err();
        assert_eq!(u.reason, "interrupted while waiting for health");
        *e.containers.borrow_mut() = vec![vec![]];
        let u = wait(&e, "demo", None, true, Duration::ZERO, &|| false).unwrap_err();
        assert_eq!(
            u.reason,
            "not healthy after 0s: no container of the project is running"
        );
    }
}
