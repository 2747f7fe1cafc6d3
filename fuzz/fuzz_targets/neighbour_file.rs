#![no_main]

#[global_allocator]
static ALLOCATOR: pecos_fuzz::CappedAllocator = pecos_fuzz::CappedAllocator;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pecos_fuzz::targets::neighbour_file(data);
});
