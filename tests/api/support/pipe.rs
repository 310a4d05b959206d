//! A recording's file replaced by a named pipe that the test writes into: whatever reads the
//! recording (an analysis job) gets what the test writes, when the test writes it, and never an
//! end until the test says so. A decode of it therefore cannot finish early however fast it
//! runs, and cannot run on once the test stalls it: what happens to a job in the middle is up to
//! the test, not to the speed of the build or the machine.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

/// `O_NONBLOCK` on Linux: an open of a pipe's reading end that does not wait for a writer.
const O_NONBLOCK: i32 = 0o4000;

/// How the pipe is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The bytes over and over, as fast as they are read, until the pipe is dropped.
    Endless,
    /// The bytes once; then nothing more, the pipe held open, until the pipe is dropped: a
    /// reader waits for more in the middle of its work. Then the end of the stream.
    Stalled,
}

/// A named pipe in place of a file, fed by a thread. Dropping it stops the feed and closes the
/// pipe (a reader sees the end of the stream).
pub struct Pipe {
    path: PathBuf,
    stop: Option<Sender<()>>,
    feeder: Option<JoinHandle<()>>,
}

impl Pipe {
    /// Replaces the file at `path` with a named pipe fed with `bytes` as `feed` says.
    ///
    /// Whoever opens the file may open it more than once, each time reading from the start (the
    /// server reads the first 12 bytes of a recording to check its kind, then opens it again to
    /// decode it). So the pipe first carries those 12 bytes, then the stream from its start: the
    /// first reader takes the 12, and the next finds the stream at its start. Between the two no
    /// one reads, and a write fails (the pipe's bytes stay, as long as this end is open); it is
    /// tried again until the next reader comes.
    pub fn replace(path: &Path, bytes: Vec<u8>, feed: Feed) -> Pipe {
        assert!(bytes.len() > 12, "a stream longer than its first 12 bytes");
        std::fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        let made = std::process::Command::new("mkfifo").arg(path).status().expect("run mkfifo");
        assert!(made.success(), "mkfifo {}: {made}", path.display());
        let (stop, stopped) = mpsc::channel();
        let at = path.to_path_buf();
        let feeder = std::thread::spawn(move || {
            // Waits for the first reader.
            let Ok(mut pipe) = OpenOptions::new().write(true).open(&at) else { return };
            if !write_through(&mut pipe, &bytes[..12], &stopped) {
                return;
            }
            loop {
                if !write_through(&mut pipe, &bytes, &stopped) {
                    return;
                }
                if feed == Feed::Stalled {
                    // Until the pipe is dropped; then `pipe` is closed, and the reader sees the end.
                    let _ = stopped.recv();
                    return;
                }
            }
        });
        Pipe { path: path.to_path_buf(), stop: Some(stop), feeder: Some(feeder) }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        drop(self.stop.take());
        // A feeder still waiting for its first reader is let go by a reader that leaves at once.
        let _ = OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(&self.path);
        if let Some(feeder) = self.feeder.take() {
            let _ = feeder.join();
        }
    }
}

/// Whether the feed is to stop.
fn stopped(rx: &Receiver<()>) -> bool {
    !matches!(rx.try_recv(), Err(TryRecvError::Empty))
}

/// Writes all of `bytes`, trying again while no one reads; false when told to stop first.
fn write_through(pipe: &mut std::fs::File, mut bytes: &[u8], stop: &Receiver<()>) -> bool {
    while !bytes.is_empty() {
        if stopped(stop) {
            return false;
        }
        match pipe.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            // Between two readers (see `Pipe::replace`), or after the last one.
            Err(e) if e.kind() == ErrorKind::BrokenPipe => std::thread::sleep(Duration::from_millis(1)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("writing into the pipe: {e}"),
        }
    }
    true
}
