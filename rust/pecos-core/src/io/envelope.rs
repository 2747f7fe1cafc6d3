//! The one envelope of every saved artifact (model, text vocabulary, and those to come):
//!
//! ```text
//! magic [u8; 8] | format version u32 | header length u64 | header JSON | body | CRC-32 u32
//! ```
//! all little-endian, the checksum over everything before it. The body is a sequence of flat
//! arrays whose lengths the header gives. In an aligned layout every array starts at a multiple of
//! [`ALIGN`] bytes from the start of the file (zero padding before it), so that a memory map of the
//! file can be read as typed slices in place.
//!
//! Opening checks, in order: the magic, the version (the caller's decision), the header, that the
//! file is exactly as long as the header's counts say (so a truncated or padded file is refused
//! before anything is allocated from those counts), then the checksum. A memory-mapped file skips
//! the checksum at opening (it would read the whole file) and checks it on demand
//! ([`verify_checksum`]).

use crate::error::{PecosError, Result};
use crate::model::storage::Element;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, Write};

/// Alignment of the arrays in an aligned layout: enough for every element type stored (u64, f64).
pub(crate) const ALIGN: usize = 8;

/// Size of the fixed prefix: magic, version and header length.
const PREFIX: usize = 8 + 4 + 8;

fn corrupt(msg: &str) -> PecosError {
    PecosError::Format(msg.to_string())
}

/// Writes an artifact: the prefix and header first, then the body's arrays in order, then the
/// checksum. Into memory ([`Writer::new`], [`Writer::finish`]) or straight into a file or any
/// other sink ([`Writer::into_sink`], [`Writer::finish_sink`]), so that saving a large model does
/// not first hold a copy of it in memory.
pub(crate) struct Writer<W: Write = Vec<u8>> {
    out: W,
    /// Bytes written so far (the position in the file).
    len: usize,
    crc: crc32fast::Hasher,
    aligned: bool,
    /// The little-endian bytes of the elements being written, a block at a time.
    block: Vec<u8>,
    /// The first error of the sink; nothing more is written after it.
    error: Option<io::Error>,
}

/// Elements converted to bytes at once on their way to the sink (64 KB of u64).
const BLOCK_ELEMENTS: usize = 8192;

impl Writer<Vec<u8>> {
    pub(crate) fn new(
        magic: &[u8; 8],
        version: u32,
        header: &impl Serialize,
        aligned: bool,
    ) -> Self {
        Writer::into_sink(Vec::new(), magic, version, header, aligned)
    }

    /// The finished file: everything written, then its checksum.
    pub(crate) fn finish(self) -> Vec<u8> {
        match self.finish_sink() {
            Ok(bytes) => bytes,
            Err(e) => unreachable!("writing to a Vec<u8> cannot fail: {e}"),
        }
    }
}

impl<W: Write> Writer<W> {
    /// A writer into `out`, the prefix and header written.
    pub(crate) fn into_sink(
        out: W,
        magic: &[u8; 8],
        version: u32,
        header: &impl Serialize,
        aligned: bool,
    ) -> Self {
        // Serialising plain structs of numbers, strings and JSON values cannot fail.
        let header = serde_json::to_vec(header).unwrap_or_default();
        let mut w = Writer {
            out,
            len: 0,
            crc: crc32fast::Hasher::new(),
            aligned,
            block: Vec::new(),
            error: None,
        };
        w.put(magic);
        w.put(&version.to_le_bytes());
        w.put(&(header.len() as u64).to_le_bytes());
        w.put(&header);
        w
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(bytes) {
                self.error = Some(e);
            }
        }
        self.crc.update(bytes);
        self.len += bytes.len();
    }

    /// Appends an array, each element by its little-endian bytes.
    pub(crate) fn elements<T: Element>(&mut self, v: &[T]) {
        if self.aligned {
            let padding = self.len.next_multiple_of(ALIGN) - self.len;
            self.put(&[0; ALIGN][..padding]);
        }
        let mut block = std::mem::take(&mut self.block);
        for elements in v.chunks(BLOCK_ELEMENTS) {
            block.clear();
            elements.iter().for_each(|&x| x.put_le(&mut block));
            self.put(&block);
        }
        self.block = block;
    }

    pub(crate) fn u32s(&mut self, v: &[u32]) {
        self.elements(v);
    }

    pub(crate) fn u64s(&mut self, v: &[u64]) {
        self.elements(v);
    }

    pub(crate) fn f32s(&mut self, v: &[f32]) {
        self.elements(v);
    }

    pub(crate) fn f64s(&mut self, v: &[f64]) {
        self.elements(v);
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.elements(v);
    }

    /// Writes the checksum and flushes the sink.
    ///
    /// # Errors
    /// The first error of the sink.
    pub(crate) fn finish_sink(mut self) -> io::Result<W> {
        let crc = self.crc.clone().finalize();
        self.put(&crc.to_le_bytes());
        match self.error {
            Some(e) => Err(e),
            None => {
                self.out.flush()?;
                Ok(self.out)
            }
        }
    }
}

/// An artifact whose magic bytes matched, read step by step: [`Opened::version`], then
/// [`Opened::header`], then [`Opened::body`].
pub(crate) struct Opened<'a> {
    bytes: &'a [u8],
    version: u32,
}

/// Checks the magic bytes and reads the format version; `foreign` is the message for a file of
/// another kind.
///
/// # Errors
/// [`PecosError::Format`] if the file is too short or its magic bytes differ.
pub(crate) fn open<'a>(bytes: &'a [u8], magic: &[u8; 8], foreign: &str) -> Result<Opened<'a>> {
    if bytes.get(..8) != Some(magic.as_slice()) {
        return Err(corrupt(foreign));
    }
    let mut r = Reader::new(bytes, 8, false);
    let version = r.u32()?;
    Ok(Opened { bytes, version })
}

/// As [`open`], for an artifact of which this build reads one format `version`: a file of another
/// version is refused. `what` names the artifact in the messages ("text featurizer").
///
/// # Errors
/// [`PecosError::Format`] if the file is too short, foreign, or of another version.
pub(crate) fn open_version<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    what: &str,
    version: u32,
) -> Result<Opened<'a>> {
    let file = open(
        bytes,
        magic,
        &format!("not a pecos_rs {what} (bad magic bytes)"),
    )?;
    if file.version != version {
        return Err(PecosError::Format(format!(
            "{what} format version {} is not supported (this build reads version {version})",
            file.version
        )));
    }
    Ok(file)
}

impl<'a> Opened<'a> {
    pub(crate) fn version(&self) -> u32 {
        self.version
    }

    /// The header, parsed from its JSON.
    ///
    /// # Errors
    /// [`PecosError::Format`] for a truncated or malformed header.
    pub(crate) fn header<H: DeserializeOwned>(&self) -> Result<H> {
        let (start, len) = self.header_span()?;
        let json = self
            .bytes
            .get(start..start + len)
            .ok_or_else(|| corrupt("unexpected end of file"))?;
        serde_json::from_slice(json).map_err(|e| PecosError::Format(format!("corrupt header: {e}")))
    }

    /// Offset and length of the header JSON (the length is checked against the file size).
    fn header_span(&self) -> Result<(usize, usize)> {
        let mut r = Reader::new(self.bytes, 12, false);
        let len = usize::try_from(r.u64()?).map_err(|_| corrupt("header length overflows"))?;
        if len > self.bytes.len() - PREFIX {
            return Err(corrupt("unexpected end of file"));
        }
        Ok((PREFIX, len))
    }

    /// A plan of the body's arrays, to compute the exact file size their counts imply.
    ///
    /// # Errors
    /// As [`Opened::header`].
    pub(crate) fn layout(&self, aligned: bool) -> Result<Layout> {
        let (start, len) = self.header_span()?;
        Ok(Layout {
            end: Some(start + len),
            aligned,
        })
    }

    /// A reader of the body, once the file is exactly as long as `layout` says (plus the
    /// checksum) and the checksum matches.
    ///
    /// # Errors
    /// [`PecosError::Format`] for a file of another size (truncated, padded or a corrupt header)
    /// or a checksum mismatch.
    pub(crate) fn body(&self, layout: &Layout) -> Result<Reader<'a>> {
        let body = self.body_unverified(layout)?;
        verify_checksum(self.bytes)?;
        Ok(body)
    }

    /// As [`Opened::body`] without the checksum, for a memory-mapped file: every array is in
    /// bounds, but its contents are not verified.
    ///
    /// # Errors
    /// [`PecosError::Format`] for a file of another size (truncated, padded or a corrupt header).
    pub(crate) fn body_unverified(&self, layout: &Layout) -> Result<Reader<'a>> {
        let (start, len) = self.header_span()?;
        if layout.end.and_then(|e| e.checked_add(4)) != Some(self.bytes.len()) {
            return Err(corrupt(
                "file size does not match its header (truncated or corrupt)",
            ));
        }
        let payload = &self.bytes[..self.bytes.len() - 4];
        Ok(Reader::new(payload, start + len, layout.aligned))
    }
}

/// Checks the CRC-32 that ends `bytes` (a whole file) against everything before it.
///
/// # Errors
/// [`PecosError::Format`] for a mismatch or a file too short to hold a checksum.
pub(crate) fn verify_checksum(bytes: &[u8]) -> Result<()> {
    let Some(payload_len) = bytes.len().checked_sub(4) else {
        return Err(corrupt("unexpected end of file"));
    };
    let (payload, crc) = bytes.split_at(payload_len);
    if crc32fast::hash(payload).to_le_bytes() != crc {
        return Err(corrupt("checksum mismatch (corrupt file)"));
    }
    Ok(())
}

/// The end offset of a body described array by array; `None` once a count overflows.
pub(crate) struct Layout {
    end: Option<usize>,
    aligned: bool,
}

impl Layout {
    /// Adds an array of `n` elements of `width` bytes.
    pub(crate) fn array(&mut self, n: usize, width: usize) -> &mut Self {
        let aligned = self.aligned;
        self.end = self.end.and_then(|end| {
            let start = if aligned {
                end.checked_next_multiple_of(ALIGN)?
            } else {
                end
            };
            start.checked_add(n.checked_mul(width)?)
        });
        self
    }
}

/// Reads flat little-endian arrays from a byte slice, skipping alignment padding when aligned.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    aligned: bool,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], pos: usize, aligned: bool) -> Self {
        Reader {
            bytes,
            pos,
            aligned,
        }
    }

    /// The next `n` elements of `width` bytes, as raw bytes.
    fn array(&mut self, n: usize, width: usize) -> Result<&'a [u8]> {
        let span = self.span(n, width)?;
        Ok(&self.bytes[span])
    }

    /// The byte offsets of the next `n` elements of `width` bytes (inside the body).
    pub(crate) fn span(&mut self, n: usize, width: usize) -> Result<std::ops::Range<usize>> {
        let start = if self.aligned {
            self.pos.next_multiple_of(ALIGN)
        } else {
            self.pos
        };
        let end = n
            .checked_mul(width)
            .and_then(|len| start.checked_add(len))
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| corrupt("unexpected end of file"))?;
        self.pos = end;
        Ok(start..end)
    }

    /// The next `n` elements of type `T`, copied out.
    pub(crate) fn elements<T: Element>(&mut self, n: usize) -> Result<Vec<T>> {
        let width = size_of::<T>();
        Ok(self
            .array(n, width)?
            .chunks_exact(width)
            .map(T::from_le_slice)
            .collect())
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.array(1, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(self.u64s(1)?[0])
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        self.array(n, 1)
    }

    pub(crate) fn u32s(&mut self, n: usize) -> Result<Vec<u32>> {
        self.elements(n)
    }

    pub(crate) fn u64s(&mut self, n: usize) -> Result<Vec<u64>> {
        self.elements(n)
    }

    pub(crate) fn f64s(&mut self, n: usize) -> Result<Vec<f64>> {
        Ok(self.u64s(n)?.into_iter().map(f64::from_bits).collect())
    }
}

/// Checks a sorted string table as bodies store one (`offsets u64[n + 1] | text u8[..]`): the
/// offsets cut `text` at character boundaries into strictly increasing strings (sorted, no two
/// equal; so only the first may be empty). `what` names the strings in the messages ("n-grams").
///
/// # Errors
/// [`PecosError::Format`] naming what is wrong.
pub(crate) fn check_sorted_strings(text: &str, offsets: &[u64], what: &str) -> Result<()> {
    if offsets.first() != Some(&0) || offsets.last() != Some(&(text.len() as u64)) {
        return Err(PecosError::Format(format!(
            "the offsets of the {what} do not span their text"
        )));
    }
    let mut previous: Option<&str> = None;
    for w in offsets.windows(2) {
        let s = text.get(w[0] as usize..w[1] as usize).ok_or_else(|| {
            PecosError::Format(format!(
                "the offsets of the {what} are not increasing character boundaries"
            ))
        })?;
        if previous.is_some_and(|p| p >= s) {
            return Err(PecosError::Format(format!(
                "{what} are not sorted and unique"
            )));
        }
        previous = Some(s);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"TESTFILE";

    fn sample(aligned: bool) -> Vec<u8> {
        let mut w = Writer::new(MAGIC, 7, &serde_json::json!({"n": 3}), aligned);
        w.bytes(b"abc");
        w.u32s(&[1, 2, 3]);
        w.f64s(&[0.5]);
        w.finish()
    }

    fn read(bytes: &[u8], aligned: bool) -> Result<(u32, serde_json::Value, Vec<u32>, Vec<f64>)> {
        let file = open(bytes, MAGIC, "foreign")?;
        let header: serde_json::Value = file.header()?;
        let mut layout = file.layout(aligned)?;
        layout.array(3, 1).array(3, 4).array(1, 8);
        let mut body = file.body(&layout)?;
        assert_eq!(body.bytes(3)?, b"abc");
        Ok((file.version(), header, body.u32s(3)?, body.f64s(1)?))
    }

    #[test]
    fn round_trips_aligned_and_packed() {
        for aligned in [false, true] {
            let bytes = sample(aligned);
            let (version, header, ints, floats) = read(&bytes, aligned).unwrap();
            assert_eq!(version, 7);
            assert_eq!(header["n"], 3);
            assert_eq!((ints, floats), (vec![1, 2, 3], vec![0.5]));
        }
        // header "{"n":3}" is 7 bytes: arrays start at 27 packed, at 32 / 40 / 56 aligned.
        assert_eq!(sample(false).len(), PREFIX + 7 + 3 + 12 + 8 + 4);
        assert_eq!(sample(true).len(), 56 + 8 + 4);
        let aligned = sample(true);
        assert_eq!(&aligned[32..35], b"abc");
        assert_eq!(&aligned[40..44], &1u32.to_le_bytes());
    }

    #[test]
    fn refuses_damage_before_reading_the_body() {
        for aligned in [false, true] {
            let bytes = sample(aligned);
            for n in 0..bytes.len() {
                assert!(read(&bytes[..n], aligned).is_err(), "truncated at {n}");
            }
            for i in 0..bytes.len() {
                let mut b = bytes.clone();
                b[i] ^= 0x41;
                assert!(read(&b, aligned).is_err(), "flipped byte {i}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(read(&longer, aligned).is_err());
            // Read with the other layout, the size no longer adds up.
            assert!(read(&bytes, !aligned).is_err());
        }
        assert!(matches!(
            open(b"PK\x03\x04 zip", MAGIC, "not ours"),
            Err(PecosError::Format(m)) if m == "not ours"
        ));
    }

    #[test]
    fn sorted_string_tables_are_checked() {
        assert!(check_sorted_strings("abb", &[0, 1, 3], "names").is_ok());
        assert!(
            check_sorted_strings("ab", &[0, 0, 2], "names").is_ok(),
            "one empty, first"
        );
        for (text, offsets) in [
            ("abb", &[0u64, 1][..]),
            ("abb", &[1, 3]),
            ("ba", &[0, 1, 2]),
            ("aa", &[0, 1, 2]),
            ("ab", &[0, 2, 1, 2]),
            ("\u{e9}", &[0, 1, 2]),
        ] {
            let err = check_sorted_strings(text, offsets, "names");
            assert!(matches!(err, Err(PecosError::Format(m)) if m.contains("names")));
        }
    }

    #[test]
    fn overflowing_counts_are_refused() {
        let bytes = sample(true);
        let file = open(&bytes, MAGIC, "foreign").unwrap();
        let mut layout = file.layout(true).unwrap();
        layout.array(usize::MAX / 2, 4);
        assert!(file.body(&layout).is_err());
    }
}
