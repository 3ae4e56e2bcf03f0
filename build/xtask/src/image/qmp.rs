//! A small QMP client (QEMU's machine protocol: one JSON object per line over a Unix socket):
//! enough to run commands and watch for events without a JSON library. Replies and events are
//! matched by their text, which QEMU writes in a fixed form (`"event": "NAME"`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A QMP connection in command mode.
#[derive(Debug)]
pub struct Qmp {
    sock: UnixStream,
    /// Everything received, in order (events and replies).
    pub received: String,
}

/// How long a command waits for its reply.
const REPLY_WAIT: Duration = Duration::from_secs(10);

impl Qmp {
    /// Connects to the socket at `path` and leaves the capabilities negotiation.
    pub fn connect(path: &Path) -> Result<Qmp, String> {
        let sock = UnixStream::connect(path).map_err(|e| format!("QMP {}: {e}", path.display()))?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        let mut q = Qmp {
            sock,
            received: String::new(),
        };
        q.wait_for("\"QMP\"", REPLY_WAIT)?;
        q.execute("qmp_capabilities", "{}")?;
        Ok(q)
    }

    /// Runs `command` with `arguments` (a JSON object) and waits for its reply; an `"error"`
    /// reply is an error carrying QEMU's text.
    pub fn execute(&mut self, command: &str, arguments: &str) -> Result<String, String> {
        let mark = self.received.len();
        let line = format!("{{\"execute\": \"{command}\", \"arguments\": {arguments}}}\n");
        self.sock
            .write_all(line.as_bytes())
            .map_err(|e| format!("QMP {command}: {e}"))?;
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            self.pump()?;
            for reply in self.received[mark..].lines() {
                if reply.contains("\"return\"") {
                    return Ok(reply.to_string());
                }
                if reply.contains("\"error\"") {
                    return Err(format!("QMP {command}: {reply}"));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("QMP {command}: no reply"));
            }
        }
    }

    /// Reads what has arrived (up to one read timeout); false once QEMU closed the socket.
    pub fn pump(&mut self) -> Result<bool, String> {
        let mut buf = [0u8; 4096];
        match self.sock.read(&mut buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.received.push_str(&String::from_utf8_lossy(&buf[..n]));
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(true)
            }
            Err(e) => Err(format!("QMP: {e}")),
        }
    }

    /// Whether event `name` has arrived (with `detail` in its line, if given).
    pub fn has_event(&self, name: &str, detail: &str) -> bool {
        let tag = format!("\"event\": \"{name}\"");
        self.received
            .lines()
            .any(|l| l.contains(&tag) && l.contains(detail))
    }

    fn wait_for(&mut self, text: &str, wait: Duration) -> Result<(), String> {
        let deadline = Instant::now() + wait;
        while !self.received.contains(text) {
            if !self.pump()? || Instant::now() > deadline {
                return Err(format!("QMP: no {text} from QEMU"));
            }
        }
        Ok(())
    }
}
