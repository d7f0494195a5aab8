//! Sleeping and waking a core: an eventfd another core signals when it hands
//! over frames, and poll(2) over the core's sockets and that eventfd.
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A non-blocking eventfd.
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new eventfd with count zero.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain eventfd(2); the result is checked before it is owned.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(EventFd { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Makes the eventfd readable (wakes a poller).
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64, as eventfd requires. A full
        // counter (EAGAIN) already means "readable", so the result is ignored.
        unsafe {
            libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }

    /// Resets the count so the eventfd is no longer readable.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN (count zero) is fine.
        unsafe {
            libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8);
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The timespec ppoll gets for `t`: to the nanosecond, not rounded to a
/// millisecond as poll(2)'s timeout would be.
fn timespec_of(t: std::time::Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    }
}

/// Waits until one of `fds` is readable or `timeout` passes (`None`: no
/// limit); returns whether any was readable. EINTR counts as a timeout.
/// ppoll(2), so a timer deadline is honoured to the microsecond rather than
/// rounded to a millisecond.
pub fn poll_fds(fds: &[BorrowedFd<'_>], timeout: Option<std::time::Duration>) -> io::Result<bool> {
    let mut pfds = [libc::pollfd { fd: -1, events: 0, revents: 0 }; 8];
    if fds.len() > pfds.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "poll_fds takes at most 8 descriptors"));
    }
    let n = fds.len();
    for (p, fd) in pfds.iter_mut().zip(fds) {
        *p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    }
    let ts = timeout.map(timespec_of);
    let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `pfds[..n]` is a live array of n pollfd structs, `tsp` is null
    // or points to a live timespec, and no signal mask is passed.
    let rc = unsafe { libc::ppoll(pfds.as_mut_ptr(), n as libc::nfds_t, tsp, std::ptr::null()) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EINTR) { Ok(false) } else { Err(e) };
    }
    Ok(rc > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_wakes_poll_and_drains() {
        let e = EventFd::new().unwrap();
        let zero = Some(std::time::Duration::ZERO);
        assert!(!poll_fds(&[e.as_fd()], zero).unwrap());
        e.signal();
        e.signal();
        assert!(poll_fds(&[e.as_fd()], Some(std::time::Duration::from_secs(1))).unwrap());
        e.drain();
        assert!(!poll_fds(&[e.as_fd()], zero).unwrap());
    }

    #[test]
    fn a_timeout_below_a_millisecond_is_passed_exactly() {
        let t = timespec_of(std::time::Duration::from_micros(300));
        assert_eq!((t.tv_sec, t.tv_nsec), (0, 300_000), "not rounded to a millisecond");
        let t = timespec_of(std::time::Duration::new(2, 5));
        assert_eq!((t.tv_sec, t.tv_nsec), (2, 5));
        let e = EventFd::new().unwrap();
        assert!(!poll_fds(&[e.as_fd()], Some(std::time::Duration::from_micros(300))).unwrap());
        let many: Vec<_> = (0..9).map(|_| e.as_fd()).collect();
        assert!(poll_fds(&many, Some(std::time::Duration::ZERO)).is_err(), "more than 8 descriptors are refused");
    }
}
