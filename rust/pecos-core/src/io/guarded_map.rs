//! Read-only maps of model files that survive the file being truncated by another program.
//!
//! Reading a page of a map beyond the end of its file raises `SIGBUS`, which kills the process
//! by default. On Linux, the first [`GuardedMap`] installs a `SIGBUS` handler: a fault inside a
//! registered map puts zero pages in place of the rest of that map (so the read completes, with
//! zeros) and marks the map damaged; the users of a mapped model check the mark after reading
//! ([`GuardedMap::check_intact`]) and fail with a format error instead of returning what they
//! computed from zeros. Faults anywhere else go to the handler that was installed before. On
//! other systems the maps are plain maps (a truncated file still kills the process there).

use crate::error::{PecosError, Result};
use memmap2::{Mmap, MmapOptions};
use std::fs::File;
use std::ops::Deref;

/// A read-only map of a whole file, registered with the `SIGBUS` handler while it lives.
pub struct GuardedMap {
    map: Mmap,
    guard: Option<guard::Registration>,
}

impl GuardedMap {
    /// Maps `file`; with `populate`, reads all of it into the page cache at once (for a load that
    /// copies everything anyway).
    ///
    /// # Errors
    /// The operating system's, if the file cannot be mapped.
    pub fn new(file: &File, populate: bool) -> std::io::Result<Self> {
        let mut options = MmapOptions::new();
        if populate {
            options.populate();
        }
        // SAFETY: the map is only read, through bounds-checked views; a file changed in place is
        // outside the contract of the mapped load (`super::load_mapped`), and a truncated one is
        // caught by the guard (Linux) before its zero pages are trusted.
        let map = unsafe { options.map(file) }?;
        let guard = guard::Registration::new(map.as_ptr() as usize, map.len());
        Ok(GuardedMap { map, guard })
    }

    /// Whether a read of this map faulted because its file had become shorter.
    pub fn is_damaged(&self) -> bool {
        self.guard
            .as_ref()
            .is_some_and(guard::Registration::is_damaged)
    }

    /// # Errors
    /// [`PecosError::Format`] if the file was truncated while mapped ([`GuardedMap::is_damaged`]).
    pub fn check_intact(&self) -> Result<()> {
        if self.is_damaged() {
            return Err(PecosError::Format(
                "the memory-mapped model file was truncated or shortened on disk while in use: \
                 what was read from it is lost; load the model again"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Deref for GuardedMap {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

#[cfg(target_os = "linux")]
mod guard {
    use std::ptr;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::OnceLock;

    /// At most this many maps are guarded at once; more are mapped unguarded.
    const SLOTS: usize = 256;

    /// A guarded address range. `start` is 0 while the slot is free or being filled; the handler
    /// reads only slots whose `start` it sees set (after their `len`).
    struct Slot {
        claimed: AtomicBool,
        start: AtomicUsize,
        len: AtomicUsize,
        damaged: AtomicBool,
    }

    #[allow(clippy::declare_interior_mutable_const)] // the initialiser of each array element
    const FREE: Slot = Slot {
        claimed: AtomicBool::new(false),
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        damaged: AtomicBool::new(false),
    };
    static REGISTRY: [Slot; SLOTS] = [FREE; SLOTS];

    /// The `SIGBUS` action that was there before ours, and the page size; set once, before our
    /// handler is installed (`None` if installing failed: the maps are then unguarded).
    struct Installed {
        previous: libc::sigaction,
        page: usize,
    }
    static INSTALLED: OnceLock<Option<Installed>> = OnceLock::new();

    /// A map's slot in the registry, freed on drop (before the map itself is unmapped: the
    /// `GuardedMap` drops its fields after this).
    pub(super) struct Registration(usize);

    impl Registration {
        pub(super) fn new(start: usize, len: usize) -> Option<Self> {
            if len == 0 || INSTALLED.get_or_init(install).is_none() {
                return None;
            }
            let slot = REGISTRY.iter().position(|s| {
                s.claimed
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })?;
            let s = &REGISTRY[slot];
            s.damaged.store(false, Ordering::Relaxed);
            s.len.store(len, Ordering::Relaxed);
            s.start.store(start, Ordering::Release);
            Some(Registration(slot))
        }

        pub(super) fn is_damaged(&self) -> bool {
            REGISTRY[self.0].damaged.load(Ordering::Acquire)
        }
    }

    impl Drop for Registration {
        fn drop(&mut self) {
            let s = &REGISTRY[self.0];
            s.start.store(0, Ordering::Release);
            s.claimed.store(false, Ordering::Release);
        }
    }

    fn install() -> Option<Installed> {
        // SAFETY: plain libc calls on zeroed, then filled, `sigaction` structs that outlive them.
        unsafe {
            let page = usize::try_from(libc::sysconf(libc::_SC_PAGESIZE)).ok()?;
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = on_sigbus as *const () as usize;
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut ours.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            // Read the previous action first, so the handler never runs without it.
            if libc::sigaction(libc::SIGBUS, ptr::null(), &mut previous) != 0 {
                return None;
            }
            let installed = Installed { previous, page };
            // `INSTALLED` is set from this return value only after the handler is in place; the
            // handler reads it through `get`, so a fault in between goes to `pass_on`'s default.
            if libc::sigaction(libc::SIGBUS, &ours, ptr::null_mut()) != 0 {
                return None;
            }
            Some(installed)
        }
    }

    /// The `SIGBUS` handler: async-signal-safe (atomics and `mmap`, no allocation, no lock).
    extern "C" fn on_sigbus(
        signal: libc::c_int,
        info: *mut libc::siginfo_t,
        context: *mut libc::c_void,
    ) {
        // SAFETY: the kernel passes a valid `siginfo_t` to an SA_SIGINFO handler.
        let address = unsafe { (*info).si_addr() } as usize;
        let page = match INSTALLED.get() {
            Some(Some(installed)) => installed.page,
            _ => return pass_on(signal, info, context),
        };
        for s in &REGISTRY {
            let start = s.start.load(Ordering::Acquire);
            let len = s.len.load(Ordering::Relaxed);
            if start == 0 || address < start || address - start >= len {
                continue;
            }
            // Zero pages from the faulting page to the end of the map, in one call.
            let from = address & !(page - 1);
            let end = start + len;
            let length = (end - from).div_ceil(page) * page;
            // SAFETY: the range lies inside this live map (it stays mapped while registered), so
            // replacing its pages touches no other memory; `mmap` is a plain system call.
            let replaced = unsafe {
                libc::mmap(
                    from as *mut libc::c_void,
                    length,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if replaced == libc::MAP_FAILED {
                break;
            }
            s.damaged.store(true, Ordering::Release);
            return; // the faulting read runs again and reads zeros
        }
        pass_on(signal, info, context);
    }

    /// Hands a fault that is not ours to the previous action: calls its handler, or restores the
    /// default (or ignore) action so that the fault, raised again on return, takes its course.
    fn pass_on(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
        let previous = match INSTALLED.get() {
            Some(Some(installed)) => &installed.previous,
            _ => {
                // SAFETY: restoring the default action with a zeroed struct (SIG_DFL is 0).
                unsafe {
                    let default: libc::sigaction = std::mem::zeroed();
                    libc::sigaction(signal, &default, ptr::null_mut());
                }
                return;
            }
        };
        let handler = previous.sa_sigaction;
        if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
            // SAFETY: reinstalling an action the process had.
            unsafe { libc::sigaction(signal, previous, ptr::null_mut()) };
        } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
            // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this type.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(handler) };
            f(signal, info, context);
        } else {
            // SAFETY: a handler installed without SA_SIGINFO takes the signal number only.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
            f(signal);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod guard {
    /// No guard outside Linux: never registered.
    pub(super) struct Registration;

    impl Registration {
        pub(super) fn new(_start: usize, _len: usize) -> Option<Self> {
            None
        }

        pub(super) fn is_damaged(&self) -> bool {
            false
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_truncated_under_its_map_reads_zeros_and_marks_the_map() {
        let path = std::env::temp_dir().join(format!("pecos-guarded-map-{}", std::process::id()));
        let mut file = File::create(&path).unwrap();
        file.write_all(&vec![7u8; 64 * 1024]).unwrap();
        file.sync_all().unwrap();
        let file = File::open(&path).unwrap();
        let map = GuardedMap::new(&file, false).unwrap();
        assert_eq!(map[100], 7);
        assert!(map.check_intact().is_ok());
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4096)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        // The first page is still the file's; the rest is gone and reads as zeros.
        assert_eq!(map[10], 7);
        assert_eq!(std::hint::black_box(&map[..])[40_000], 0);
        assert!(map.is_damaged());
        assert!(matches!(map.check_intact(), Err(PecosError::Format(_))));
        // A fresh map of another file is not damaged.
        let other = GuardedMap::new(&File::open("/proc/self/exe").unwrap(), false).unwrap();
        assert!(!other.is_damaged());
    }
}
