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

// SAFETY: the area is plain memory. Who may touch which frame is decided by
// the frame ownership protocol (crate::pool): a frame is owned by exactly one
// core or by the kernel at a time, so sharing the area between threads does
// not let two of them write one frame.
unsafe impl Send for UmemArea {}
// SAFETY: see Send; shared references hand out frames only through
// `FrameAccess`, whose users follow the ownership protocol.
unsafe impl Sync for UmemArea {}

impl UmemArea {
    /// Maps `frame_count` frames of `frame_size` bytes (2048 or 4096).
    pub fn new(frame_count: u32, frame_size: u32) -> io::Result<Arc<Self>> {
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
    fn in_one_frame(&self, addr: u64, len: u32) -> bool {
        let end = addr.saturating_add(len as u64);
        end <= self.len as u64 && (len == 0 || self.frame_base(addr) == self.frame_base(end - 1))
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

/// One core's handle on the UMEM. Taking `&mut self` for a frame means a core
/// holds at most one frame slice at a time through it; cores never share a
/// handle.
pub struct FrameAccess {
    area: Arc<UmemArea>,
}

impl FrameAccess {
    /// A handle for one core.
    pub fn new(area: Arc<UmemArea>) -> Self {
        FrameAccess { area }
    }

    /// The area behind the handle.
    pub fn area(&self) -> &Arc<UmemArea> {
        &self.area
    }

    /// The bytes `addr..addr+len` of a frame this core owns, or `None` if
    /// the range leaves the frame or the area (a bad descriptor).
    pub fn bytes_mut(&mut self, addr: u64, len: u32) -> Option<&mut [u8]> {
        if !self.area.in_one_frame(addr, len) {
            return None;
        }
        // SAFETY: the range is inside the mapping (checked above). The caller
        // owns this frame under the ownership protocol (it took it from its rx
        // ring, its free list or its handoff inbox), so neither the kernel nor
        // another core touches it until it is handed on; `&mut self` keeps a
        // second slice from this handle from coexisting.
        Some(unsafe { std::slice::from_raw_parts_mut(self.area.ptr.as_ptr().add(addr as usize), len as usize) })
    }

    /// The whole frame that holds `addr`, from its start, for building a
    /// packet with headroom.
    pub fn frame_mut(&mut self, addr: u64) -> Option<&mut [u8]> {
        let base = self.area.frame_base(addr);
        let size = self.area.frame_size;
        self.bytes_mut(base, size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ranges_are_checked() {
        let area = UmemArea::new(4, 2048).unwrap();
        let mut fa = FrameAccess::new(area.clone());
        assert!(fa.bytes_mut(0, 2048).is_some());
        assert!(fa.bytes_mut(100, 1948).is_some());
        assert!(fa.bytes_mut(100, 1949).is_none(), "crosses into the next frame");
        assert!(fa.bytes_mut(3 * 2048, 2048).is_some());
        assert!(fa.bytes_mut(4 * 2048, 1).is_none(), "past the end");
        assert!(fa.bytes_mut(u64::MAX - 2, 10).is_none());
        assert_eq!(area.frame_base(2048 + 300), 2048);
        assert_eq!(area.frame_index(3 * 2048 + 1), 3);
    }

    #[test]
    fn writes_through_one_handle_are_seen_through_another() {
        let area = UmemArea::new(2, 4096).unwrap();
        let mut a = FrameAccess::new(area.clone());
        let mut b = FrameAccess::new(area);
        a.bytes_mut(4096 + 10, 3).unwrap().copy_from_slice(b"abc");
        assert_eq!(b.frame_mut(4096 + 99).unwrap()[10..13], *b"abc");
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(UmemArea::new(4, 1000).is_err());
        assert!(UmemArea::new(0, 2048).is_err());
    }
}
