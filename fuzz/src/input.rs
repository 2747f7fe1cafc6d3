//! Reading structured values out of fuzzer bytes, and making a mutated artifact's checksum match
//! so that the fuzzer gets past the CRC to the checks behind it.

/// Takes values from the front of the input; once it is used up, every value is zero.
pub(crate) struct Bytes<'a> {
    rest: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Bytes { rest: data }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.rest.len());
        out[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        out
    }

    pub(crate) fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Everything not taken yet.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.rest
    }
}

/// `data` with its last four bytes replaced by the CRC-32 of the others, as the file envelope
/// ends; `None` if it is too short to hold one.
pub(crate) fn with_valid_checksum(data: &[u8]) -> Option<Vec<u8>> {
    let payload_len = data.len().checked_sub(4)?;
    let mut fixed = data.to_vec();
    let crc = crc32fast::hash(&data[..payload_len]);
    fixed[payload_len..].copy_from_slice(&crc.to_le_bytes());
    Some(fixed)
}
