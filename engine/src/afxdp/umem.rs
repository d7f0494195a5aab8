//! The UMEM: one anonymous mapping of equal, power-of-two sized frames,
//! registered with the kernel by the first socket and shared by all queues.
use std::io;
use std::ptr::NonNull;
use std::sync::Arc;

/// The UMEM memory. Frames are `frame_size` bytes (a power of two), so the
/// frame that holds any address is `addr & !(frame_size - 1)`.
pub struct UmemArea {
    ptr: NonNull<u8>,
    len: usize,
    frame_size: u32,
    frame_count: u32,
}

// SAFETY: the area is plain memory owned by this value; moving it between
// threads moves the ownership of the mapping.
unsafe impl Send for UmemArea {}
// SAFETY: through a shared reference the area gives out only raw pointers
// (`ptr_at`); the one place they become slices is `FrameTable`, the single
// table of this area (it maps the area itself), and only for the holder of a
// frame's unique `Frame` token, so two threads never get one frame.
unsafe impl Sync for UmemArea {}

impl UmemArea {
    /// Maps `frame_count` frames of `frame_size` bytes (2048 or 4096).
    /// Only [`super::FrameTable::create`] makes areas, one table each.
    pub(super) fn new(frame_count: u32, frame_size: u32) -> io::Result<Arc<Self>> {
        if !(frame_size == 2048 || frame_size == 4096) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame size must be 2048 or 4096"));
        }
        if frame_count == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "UMEM needs at least one frame"));
        }
        let len = frame_count as usize * frame_size as usize;
        // SAFETY: a fresh private anonymous mapping; no Rust memory is aliased,
        // and the result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Arc::new(UmemArea { ptr, len, frame_size, frame_count }))
    }

    /// Start of the area, for XDP_UMEM_REG.
    pub(crate) fn base(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an area has at least one frame.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes per frame.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Number of frames.
    pub fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// UMEM address of frame number `i`.
    pub fn frame_addr(&self, i: u32) -> u64 {
        i as u64 * self.frame_size as u64
    }

    /// The frame that holds UMEM address `addr`.
    pub fn frame_base(&self, addr: u64) -> u64 {
        addr & !(self.frame_size as u64 - 1)
    }

    /// Frame number of address `addr`.
    pub fn frame_index(&self, addr: u64) -> u32 {
        (addr / self.frame_size as u64) as u32
    }

    /// Whether `addr..addr+len` lies inside one frame of the area.
    #[cfg(any(test, feature = "fake-kernel"))]
    pub(super) fn in_one_frame(&self, addr: u64, len: u32) -> bool {
        let end = addr.saturating_add(len as u64);
        end <= self.len as u64 && (len == 0 || self.frame_base(addr) == self.frame_base(end - 1))
    }
}

impl UmemArea {
    /// A raw pointer to UMEM address `addr` (not dereferenced here; the
    /// frame table turns it into a slice for the holder of a frame's token).
    pub(super) fn ptr_at(&self, addr: u64) -> *mut u8 {
        self.ptr.as_ptr().wrapping_add(addr as usize)
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in `new`; every socket that
        // registered it holds an Arc, so none is left when this runs.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_arithmetic_and_ranges() {
        let area = UmemArea::new(4, 2048).unwrap();
        assert!(area.in_one_frame(0, 2048));
        assert!(area.in_one_frame(100, 1948));
        assert!(!area.in_one_frame(100, 1949), "crosses into the next frame");
        assert!(area.in_one_frame(3 * 2048, 2048));
        assert!(!area.in_one_frame(4 * 2048, 1), "past the end");
        assert!(!area.in_one_frame(u64::MAX - 2, 10));
        assert_eq!(area.frame_base(2048 + 300), 2048);
        assert_eq!(area.frame_index(3 * 2048 + 1), 3);
        assert_eq!(area.frame_addr(2), 4096);
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(UmemArea::new(4, 1000).is_err());
        assert!(UmemArea::new(0, 2048).is_err());
    }
}
