//! The control plane's child processes. Each is started as `setpriv --pdeathsig SIGKILL --
//! <binary>` by one thread that lives exactly as long as the control plane: PDEATHSIG fires
//! when the spawning *thread* ends, so a child never outlives the test process (even one
//! killed by a signal), and the workspace forbids the `unsafe` that `pre_exec` would need.
//! Output goes to a log file per process; stopping is by PID.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

type Request = (Command, mpsc::Sender<std::io::Result<Child>>);

/// The thread that starts every child.
pub struct Spawner {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Spawner {
    pub fn new() -> anyhow::Result<Self> {
        if !Path::new("/usr/bin/setpriv").exists() && !Path::new("/bin/setpriv").exists() {
            anyhow::bail!("setpriv is missing: install util-linux (apt-get install util-linux)");
        }
        let (requests, inbox) = mpsc::channel::<Request>();
        let thread =
            std::thread::Builder::new().name("controlplane-spawner".into()).spawn(move || {
                // Lives until the control plane drops its sender; its children are killed by
                // the kernel when it ends.
                for (mut command, reply) in inbox {
                    let _ = reply.send(command.spawn());
                }
            })?;
        Ok(Self { requests: Some(requests), thread: Some(thread) })
    }

    /// Starts `program args`, its standard output and error appended to `log`.
    pub fn spawn(
        &self,
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<Process> {
        let out = File::create(log)?;
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "SIGKILL", "--"])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let (reply, answer) = mpsc::channel();
        self.requests
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the spawner has stopped"))?
            .send((command, reply))
            .map_err(|_| anyhow::anyhow!("the spawner thread has ended"))?;
        let child = answer
            .recv()
            .map_err(|_| anyhow::anyhow!("the spawner thread has ended"))?
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", program.display()))?;
        Ok(Process { name: name.to_owned(), child, log: log.to_owned() })
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A running child.
pub struct Process {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error with the end of its log if it has exited.
    pub fn check(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => anyhow::bail!(
                "{} exited ({status}); the end of its log ({}):\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 4000)
            ),
        }
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Kills it (SIGKILL by PID) and reaps it.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `max` bytes of a file, lossily decoded.
pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut bytes = Vec::new();
    let _ = file.take(max).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}
