//! Hashing n-grams to a fixed number of columns, compatible with scikit-learn's
//! `HashingVectorizer(alternate_sign=False)`: 32-bit MurmurHash3 (x86) of the UTF-8 bytes with
//! seed 0, read as a signed integer, absolute value modulo the number of columns.

/// MurmurHash3 x86 32-bit.
pub fn murmur3_32(key: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut blocks = key.chunks_exact(4);
    for b in &mut blocks {
        let mut k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, &byte) in tail.iter().enumerate() {
            k |= u32::from(byte) << (8 * i);
        }
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= key.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The column of `key` among `n_buckets` (`n_buckets >= 1`), as scikit-learn computes it.
pub fn bucket(key: &[u8], n_buckets: usize) -> u32 {
    let h = murmur3_32(key, 0) as i32;
    let n = n_buckets as u64;
    let index = if h == i32::MIN {
        (i32::MAX as u64 - (n - 1)) % n
    } else {
        u64::from(h.unsigned_abs()) % n
    };
    index as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_murmur3_values() {
        // Published test vectors of MurmurHash3_x86_32.
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(murmur3_32(b"Hello, world!", 1234), 0xfaf6_cdb3);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    #[test]
    fn buckets_are_in_range() {
        for key in [&b"a"[..], b"ab", b"abc", b"\xc3\xa9t\xc3\xa9"] {
            for n in [1, 2, 7, 1 << 20] {
                assert!((bucket(key, n) as usize) < n);
            }
        }
    }
}
