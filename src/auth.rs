//! Authentication: Argon2id password hashing off the runtime, session tokens (only their SHA-256
//! is stored), the `AuthUser` request guard (Bearer or cookie, with the cross-origin check for
//! cookies) and the login throttle.

use crate::error::Error;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

/// Name of the session cookie.
pub const COOKIE: &str = "recorder_session";

fn argon2() -> Argon2<'static> {
    // OWASP: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password (blocking: call from a blocking thread).
pub fn hash_password_blocking(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::internal("salt", e))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal("password hash", e))
}

/// Checks a password against a stored hash (blocking). With no stored hash it verifies against
/// a dummy one, so an unknown user costs the same time as a wrong password.
pub fn verify_password_blocking(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password_blocking("not a real password").unwrap_or_default());
    let stored_or_dummy = stored.unwrap_or(dummy);
    let Ok(parsed) = PasswordHash::new(stored_or_dummy) else {
        return false;
    };
    let ok = argon2().verify_password(password.as_bytes(), &parsed).is_ok();
    ok && stored.is_some()
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs password hashing on a few threads of its own, at the lowest CPU priority, so a burst of
/// logins can neither exhaust memory (19 MiB each, at most one per thread) nor take CPU from
/// other requests: on a busy 2-core machine a list request would wait behind a normal-priority
/// hash for a scheduler slice, but it preempts an idle-class one at once.
pub struct Passwords {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Passwords {
    pub fn new() -> Passwords {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for n in 0..cores.clamp(1, 4) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{n}")).spawn(move || {
                lower_priority("password hashing");
                loop {
                    // The lock is held only to take one job; the threads end with the sender.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking job answers its caller with an error (its sender is
                        // dropped) and the thread lives on for the next one.
                        Ok(job) => {
                            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                                log::error!("password hashing panicked");
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                log::error!("cannot start a password hashing thread: {e}");
            }
        }
        Passwords { jobs: tx }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A caller that gave up (the client hung up) costs no hash.
            if !tx.is_closed() {
                let _ = tx.send(f());
            }
        });
        self.jobs.send(job).map_err(|e| Error::internal("password hashing", e))?;
        rx.await.map_err(|e| Error::internal("password hashing", e))
    }

    pub async fn hash(&self, password: String) -> Result<String, Error> {
        self.run(move || hash_password_blocking(&password)).await?
    }

    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, Error> {
        self.run(move || verify_password_blocking(&password, stored.as_deref())).await
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Passwords::new()
    }
}

/// SCHED_IDLE for the calling thread: any other runnable thread preempts it at once, yet it
/// still gets the CPU nobody else wants (Linux schedules per thread).
pub(crate) fn lower_priority(what: &str) {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy, thread_native_id,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(e) = set_thread_priority_and_policy(thread_native_id(), thread_priority::ThreadPriority::Min, idle) {
            log::warn!("cannot lower the priority of {what}: {e:?}");
        }
    }
}

/// Puts the calling thread back at normal priority. Every thread of the runtime starts with it:
/// a thread is created with its creator's policy, and the blocking pool grows from whichever
/// thread asks for it, the idle-priority job workers too; without this, requests would later
/// run on such a thread at idle priority, behind the very jobs they should preempt.
pub fn normal_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy, thread_native_id,
        };
        let normal = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
        // The crate maps 0..=99 onto nice -20..=19, reversed: 47 is nice 0 (a unit test pins it).
        let priority = thread_priority::ThreadPriority::Crossplatform(47u8.try_into().unwrap_or_default());
        if let Err(e) = set_thread_priority_and_policy(thread_native_id(), priority, normal) {
            log::debug!("cannot set a runtime thread's priority: {e:?}");
        }
    }
}

/// A new random session token and the hash to store.
pub fn new_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub(crate) fn plausible_token(token: &str) -> bool {
    token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Failed logins per username and per client address within a sliding window.
pub struct LoginThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    by_user: HashMap<String, VecDeque<i64>>,
    by_ip: HashMap<IpAddr, VecDeque<i64>>,
}

const WINDOW_MS: i64 = 15 * 60 * 1000;
const USER_LIMIT: usize = 5;
const IP_LIMIT: usize = 20;
/// Past this many tracked keys, empty entries are dropped (memory stays bounded under a spray).
const PRUNE_AT: usize = 10_000;

fn retry_after(failures: &mut VecDeque<i64>, limit: usize, now: i64) -> Option<i64> {
    while failures.front().is_some_and(|&t| t + WINDOW_MS <= now) {
        failures.pop_front();
    }
    if failures.len() >= limit {
        let oldest = failures[failures.len() - limit];
        Some(((oldest + WINDOW_MS - now) + 999) / 1000)
    } else {
        None
    }
}

impl LoginThrottle {
    pub fn new() -> LoginThrottle {
        LoginThrottle { state: Mutex::new(ThrottleState::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Err(seconds)` when this attempt must wait.
    pub fn check(&self, username: &str, ip: Option<IpAddr>, now: i64) -> Result<(), i64> {
        let mut state = self.lock();
        let by_user = state.by_user.get_mut(username).and_then(|f| retry_after(f, USER_LIMIT, now));
        let by_ip = ip.and_then(|ip| state.by_ip.get_mut(&ip)).and_then(|f| retry_after(f, IP_LIMIT, now));
        match by_user.max(by_ip) {
            Some(seconds) => Err(seconds.max(1)),
            None => Ok(()),
        }
    }

    /// `Ok` when this attempt (a login, a WebDAV sign-in, a current-password check) may go
    /// ahead, else 429 `too_many_requests` with `Retry-After`.
    pub fn admit(&self, username: &str, ip: Option<IpAddr>, now: i64) -> Result<(), Error> {
        self.check(username, ip, now).map_err(|seconds| Error::TooMany {
            message: "too many failed sign-ins or password checks; try again later".into(),
            retry_after: Some(seconds.max(0) as u64),
        })
    }

    /// Notes how an admitted attempt ended.
    pub fn record(&self, username: &str, ip: Option<IpAddr>, now: i64, succeeded: bool) {
        if succeeded {
            self.record_success(username);
        } else {
            self.record_failure(username, ip, now);
        }
    }

    fn record_failure(&self, username: &str, ip: Option<IpAddr>, now: i64) {
        let mut state = self.lock();
        if state.by_user.len() + state.by_ip.len() > PRUNE_AT {
            state.by_user.retain(|_, f| f.back().is_some_and(|&t| t + WINDOW_MS > now));
            state.by_ip.retain(|_, f| f.back().is_some_and(|&t| t + WINDOW_MS > now));
        }
        let user = state.by_user.entry(username.to_string()).or_default();
        user.push_back(now);
        if user.len() > USER_LIMIT {
            user.pop_front();
        }
        if let Some(ip) = ip {
            let by_ip = state.by_ip.entry(ip).or_default();
            by_ip.push_back(now);
            if by_ip.len() > IP_LIMIT {
                by_ip.pop_front();
            }
        }
    }

    fn record_success(&self, username: &str) {
        self.lock().by_user.remove(username);
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (nice, scheduling policy) of the calling thread, from /proc.
    #[cfg(target_os = "linux")]
    fn nice_and_policy() -> (i64, i64) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        let fields: Vec<i64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or("")
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(-1))
            .collect();
        (fields.get(16).copied().unwrap_or(-1), fields.get(38).copied().unwrap_or(-1))
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_made_idle_gets_normal_priority_back() {
        let seen = std::thread::spawn(|| {
            lower_priority("test");
            let idle = nice_and_policy();
            normal_priority();
            (idle, nice_and_policy())
        })
        .join()
        .unwrap_or(((-1, -1), (-1, -1)));
        // SCHED_IDLE is policy 5, SCHED_OTHER 0.
        assert_eq!(seen.0.1, 5, "lowered: {seen:?}");
        assert_eq!(seen.1, (0, 0), "back to nice 0 under SCHED_OTHER: {seen:?}");
    }

    #[test]
    fn throttle_after_five_failures_until_window_passes() {
        let t = LoginThrottle::new();
        let ip: Option<IpAddr> = Some([127, 0, 0, 1].into());
        for i in 0..5 {
            assert!(t.check("alice", ip, i).is_ok());
            t.record_failure("alice", ip, i);
        }
        let wait = t.check("alice", ip, 10).expect_err("throttled");
        assert!(wait > 0 && wait <= 900, "{wait}");
        assert!(t.check("bob", ip, 10).is_ok(), "other users are not throttled by alice's count");
        assert!(t.check("alice", ip, WINDOW_MS + 5).is_ok(), "window passed");
    }

    #[test]
    fn hashes_verify_and_unknown_user_fails() {
        let hash = hash_password_blocking("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password_blocking("correct horse", Some(&hash)));
        assert!(!verify_password_blocking("wrong", Some(&hash)));
        assert!(!verify_password_blocking("correct horse", None));
    }

    #[test]
    fn tokens_are_43_chars_and_hash_stably() {
        let (token, hash) = new_token();
        assert!(plausible_token(&token));
        assert_eq!(token_hash(&token), hash);
    }
}
