//! The VM thread's interval timer: a POSIX timer that sends SIGALRM to the VM thread.
//! Guest code is never interrupted for the monitor's convenience except through it: the
//! signal forces an exit from translated code (chained translations never exit on their
//! own) so that the monitor can deliver pending interrupts.

use std::io;

/// Signal used to kick the VM thread out of guest code.
pub const KICK_SIGNAL: libc::c_int = libc::SIGALRM;

/// Period of the backstop kick.
pub const BACKSTOP_NS: u64 = 2_000_000;

pub struct Timer {
    id: libc::timer_t,
}

impl Timer {
    /// Creates a timer delivering `KICK_SIGNAL` to the calling thread.
    pub fn new() -> io::Result<Timer> {
        // SAFETY: a zeroed sigevent is a valid starting point; gettid has no preconditions.
        let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = KICK_SIGNAL;
        // SAFETY: gettid(2) cannot fail.
        sev.sigev_notify_thread_id = unsafe { libc::gettid() };
        let mut id: libc::timer_t = std::ptr::null_mut();
        // SAFETY: valid pointers to a sigevent and a timer_t we own.
        if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut id) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Timer { id })
    }

    /// Arms the timer to fire after `ns` nanoseconds, then every `BACKSTOP_NS`: a kick that
    /// lands while the monitor itself runs (e.g. in the entry trampoline) cannot be turned
    /// into an exit, so a periodic one guarantees the next.
    pub fn arm(&mut self, ns: u64) {
        let ts = libc::timespec { tv_sec: (ns / 1_000_000_000) as libc::time_t, tv_nsec: (ns % 1_000_000_000) as libc::c_long };
        let every = libc::timespec { tv_sec: 0, tv_nsec: BACKSTOP_NS as libc::c_long };
        let spec = libc::itimerspec { it_interval: every, it_value: ts };
        // SAFETY: our timer id and a valid itimerspec; failure only means EINVAL on bad
        // values, which cannot happen for these.
        unsafe { libc::timer_settime(self.id, 0, &spec, std::ptr::null_mut()) };
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // SAFETY: deleting the timer we created.
        unsafe { libc::timer_delete(self.id) };
    }
}

/// Monotonic host time in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The host TSC and monotonic time read together once (at the first call of
/// [`tsc_delta_ns`], or [`start_tsc_clock`]): the TSC rate is estimated over the whole
/// interval since, so its error shrinks as the run goes on (about 1e-6 after a second).
static TSC_ANCHOR: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

/// Starts the TSC-rate estimate: call once when the VM is created, long before the guest
/// programs a TSC deadline.
pub fn start_tsc_clock() {
    tsc_anchor();
}

fn tsc_anchor() -> (u64, u64) {
    *TSC_ANCHOR.get_or_init(|| (crate::rdtsc(), now_ns()))
}

/// Nanoseconds the host TSC takes to advance by `delta` ticks (rounded up: a TSC deadline
/// converted with it never fires early by more than the rate estimate's error). The rate
/// is measured since [`start_tsc_clock`]; while that is under 1 ms ago this waits until
/// it is not, so the estimate is never worse than about 1e-4.
pub fn tsc_delta_ns(delta: u64) -> u64 {
    const MIN_NS: u64 = 1_000_000;
    let (t0, n0) = tsc_anchor();
    let (mut t1, mut n1) = (crate::rdtsc(), now_ns());
    while n1.saturating_sub(n0) < MIN_NS {
        std::hint::spin_loop();
        (t1, n1) = (crate::rdtsc(), now_ns());
    }
    let (ticks, ns) = (u128::from(t1.saturating_sub(t0).max(1)), u128::from(n1 - n0));
    u64::try_from((u128::from(delta) * ns).div_ceil(ticks)).unwrap_or(u64::MAX)
}

/// Sleeps the VM thread for at most `ns` nanoseconds (an idle guest: HLT with IF=1). A
/// kick signal ends the sleep early.
pub fn idle(ns: u64) {
    let ts = libc::timespec { tv_sec: (ns / 1_000_000_000) as libc::time_t, tv_nsec: (ns % 1_000_000_000) as libc::c_long };
    // SAFETY: valid timespec; EINTR is the expected early wake-up.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}
