//! Build probe: reports the ABI version so the loader can refuse a stale binary.

/// Version of the kernel ABI (bump when an export's signature or a layout changes).
#[no_mangle]
pub extern "C" fn kernels_abi_version() -> u32 {
    5
}
