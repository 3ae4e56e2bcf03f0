//! A tiny QMP client: QEMU's machine protocol, one JSON object a line over a Unix socket. QEMU
//! writes its replies and events in a fixed form, so a few text searches read what the checks
//! need ([`number`], [`strings`]) without a JSON library.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A connection past the capabilities negotiation.
#[derive(Debug)]
pub(crate) struct Qmp {
    sock: UnixStream,
    /// Bytes of an incomplete line.
    partial: Vec<u8>,
    /// Every event line received, in order.
    pub events: Vec<String>,
}

/// How long a command waits for its reply.
const REPLY_WAIT: Duration = Duration::from_secs(30);

impl Qmp {
    /// Connects to `path` (waiting up to `wait` for QEMU to create it) and negotiates.
    pub(crate) fn connect(path: &Path, wait: Duration) -> Result<Qmp, String> {
        let start = Instant::now();
        let sock = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > wait => {
                    return Err(format!("QMP socket {}: {e}", path.display()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let mut q = Qmp {
            sock,
            partial: Vec::new(),
            events: Vec::new(),
        };
        q.next_line(REPLY_WAIT)?
            .filter(|l| l.contains("\"QMP\""))
            .ok_or("QMP: no greeting")?;
        q.execute("qmp_capabilities", "{}")?;
        Ok(q)
    }

    /// The next line QEMU sends, or `None` after `wait`.
    fn next_line(&mut self, wait: Duration) -> Result<Option<String>, String> {
        let start = Instant::now();
        loop {
            if let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=i).collect();
                return Ok(Some(String::from_utf8_lossy(&line).trim().to_string()));
            }
            if start.elapsed() > wait {
                return Ok(None);
            }
            let mut buf = [0u8; 4096];
            match self.sock.read(&mut buf) {
                Ok(0) => return Err("QMP: QEMU closed the connection".into()),
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("QMP: {e}")),
            }
        }
    }

    /// Runs `command` with `arguments` (a JSON object) and returns its reply line; an error
    /// reply is an `Err` with QEMU's description.
    pub(crate) fn execute(&mut self, command: &str, arguments: &str) -> Result<String, String> {
        let line = format!("{{\"execute\": \"{command}\", \"arguments\": {arguments}}}\n");
        self.sock
            .write_all(line.as_bytes())
            .map_err(|e| format!("QMP {command}: {e}"))?;
        let start = Instant::now();
        while start.elapsed() < REPLY_WAIT {
            let Some(reply) = self.next_line(Duration::from_millis(500))? else {
                continue;
            };
            if reply.contains("\"event\"") {
                self.events.push(reply);
            } else if reply.contains("\"error\"") {
                return Err(format!(
                    "QMP {command}: {}",
                    strings(&reply, "desc").join("; ")
                ));
            } else if reply.contains("\"return\"") {
                return Ok(reply);
            }
        }
        Err(format!("QMP {command}: no reply in {REPLY_WAIT:?}"))
    }

    /// Reads events for up to `wait`, until one named `name` whose text contains `needle`
    /// arrives (true) or the time is up (false).
    pub(crate) fn wait_event(
        &mut self,
        name: &str,
        needle: &str,
        wait: Duration,
    ) -> Result<bool, String> {
        let start = Instant::now();
        loop {
            if self.has_event(name, needle) {
                return Ok(true);
            }
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Ok(false);
            }
            if let Some(l) = self.next_line(left.min(Duration::from_millis(200)))?
                && l.contains("\"event\"")
            {
                self.events.push(l);
            }
        }
    }

    /// Whether an event `name` whose text contains `needle` was received.
    pub(crate) fn has_event(&self, name: &str, needle: &str) -> bool {
        let mark = format!("\"event\": \"{name}\"");
        self.events
            .iter()
            .any(|e| e.contains(&mark) && e.contains(needle))
    }
}

/// The number after the first `"key":` of a JSON text.
pub(crate) fn number(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = json[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Every string value of `"key":` in a JSON text, in order (QEMU's strings here carry no
/// escaped quotes).
pub(crate) fn strings(json: &str, key: &str) -> Vec<String> {
    let mark = format!("\"{key}\":");
    let mut out = Vec::new();
    let mut rest = json;
    while let Some(i) = rest.find(&mark) {
        rest = rest[i + mark.len()..].trim_start();
        if let Some(body) = rest.strip_prefix('"')
            && let Some(end) = body.find('"')
        {
            out.push(body[..end].to_string());
            rest = &body[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_and_strings_as_qemu_writes_them() {
        let balloon = r#"{"return": {"actual": 314572800}}"#;
        assert_eq!(number(balloon, "actual"), Some(314_572_800));
        assert_eq!(number(balloon, "other"), None);
        let list = r#"{"return": [{"name": "type", "type": "string"}, {"name": "balloon", "type": "child<hv-balloon>"}]}"#;
        assert_eq!(strings(list, "name"), ["type", "balloon"]);
        let err = r#"{"error": {"class": "GenericError", "desc": "hv-balloon: no"}}"#;
        assert_eq!(strings(err, "desc"), ["hv-balloon: no"]);
    }
}
