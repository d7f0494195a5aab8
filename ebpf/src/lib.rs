//! sluice's XDP steering program and its ABI.
//!
//! The program itself is C (`c/sluice_xdp.c`), built by clang from `build.rs`
//! and embedded here; [`abi`] mirrors `c/sluice_abi.h` as `#[repr(C)]` types
//! with byte encodings, so the loader can use plain byte-array map keys and
//! values. The test below checks those sizes against the compiled object.
#![forbid(unsafe_code)]

pub mod abi;

#[repr(C, align(8))]
struct Aligned<B: ?Sized> {
    bytes: B,
}

/// The ELF object of the XDP program, aligned for the ELF parser.
static OBJECT: &Aligned<[u8]> = &Aligned { bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/sluice_xdp.o")) };

/// The compiled XDP program (an ELF object with BTF-defined maps).
pub fn xdp_object() -> &'static [u8] {
    &OBJECT.bytes
}

#[cfg(test)]
mod tests {
    use super::abi::*;
    use super::xdp_object;

    fn object() -> aya_obj::Object {
        aya_obj::Object::parse(xdp_object()).expect("the embedded XDP object parses")
    }

    #[test]
    fn map_layouts_match_the_rust_mirror() {
        let obj = object();
        let services = &obj.maps[MAP_SERVICES];
        assert_eq!(services.key_size() as usize, ServiceKey::SIZE);
        assert_eq!(services.value_size() as usize, ServiceValue::SIZE);
        assert_eq!(services.max_entries(), MAX_SERVICES);

        let xsks = &obj.maps[MAP_XSKS];
        assert_eq!(xsks.key_size(), 4);
        assert_eq!(xsks.value_size(), 4);
        assert_eq!(xsks.max_entries(), MAX_QUEUES);

        let counters = &obj.maps[MAP_COUNTERS];
        assert_eq!(counters.key_size(), 4);
        assert_eq!(counters.value_size() as usize, XdpCounters::SIZE);
        assert_eq!(counters.max_entries(), 1);
    }

    #[test]
    fn map_types_are_the_expected_kernel_types() {
        // BPF_MAP_TYPE_HASH = 1, PERCPU_ARRAY = 6, XSKMAP = 17 (uapi/linux/bpf.h)
        let obj = object();
        assert_eq!(obj.maps[MAP_SERVICES].map_type(), 1);
        assert_eq!(obj.maps[MAP_COUNTERS].map_type(), 6);
        assert_eq!(obj.maps[MAP_XSKS].map_type(), 17);
    }

    #[test]
    fn program_is_present_under_its_name() {
        let obj = object();
        assert!(obj.programs.contains_key(PROGRAM_NAME), "programs: {:?}", obj.programs.keys());
    }
}
