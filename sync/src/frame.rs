//! The frame: the unit of every Tandem-to-Tandem replication stream (snapshot partitions and journal).
//! Byte layout, little-endian, documented in docs/replication-format.md:
//!
//! ```text
//!  0  magic    4  b"TNDM"
//!  4  version  1  1
//!  5  kind     1  FrameKind
//!  6  flags    1  bit 0: payload is LZ4-compressed (block, decompressed size prepended);
//!                 bit 1: the payload continues in the next frame (a snapshot chunk larger than a frame);
//!                 others 0
//!  7  reserved 1  0
//!  8  shard    2  the primary shard the stream belongs to
//! 10  reserved 2  0
//! 12  len      4  payload bytes that follow the header
//! 16  offset   8  stream offset of the payload's first byte
//! 24  crc32c   4  CRC-32C of bytes 0..24 followed by the payload
//! 28  payload  len
//! ```
//!
//! A frame is accepted only whole and with a matching checksum: a corrupt or truncated stream is an
//! error, never a partly applied chunk.

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const MAGIC: [u8; 4] = *b"TNDM";
pub const VERSION: u8 = 2;
pub const HEADER_LEN: usize = 28;
/// Larger payloads are refused before buffering them: a corrupt length cannot make a receiver allocate.
pub const MAX_PAYLOAD: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A piece of a shard's point-in-time snapshot.
    SnapshotChunk = 1,
    /// The snapshot of this shard is complete; `offset` is its journal offset at the snapshot point.
    SnapshotEnd = 2,
    /// Journal bytes (write effects) from `offset`.
    Journal = 3,
    /// First frame of a snapshot stream: `offset` is the shard's journal offset at the snapshot point,
    /// from which the replica asks for the journal on its second connection.
    SnapshotBegin = 4,
    /// Replica to primary, on a journal flow: `offset` is the end of the last whole unit it applied.
    Ack = 5,
}

impl FrameKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(FrameKind::SnapshotChunk),
            2 => Some(FrameKind::SnapshotEnd),
            3 => Some(FrameKind::Journal),
            4 => Some(FrameKind::SnapshotBegin),
            5 => Some(FrameKind::Ack),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub shard: u16,
    pub offset: u64,
    /// The payload continues in the next frame of the stream (FLAG_MORE).
    pub more: bool,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    #[error("unsupported frame version {0}")]
    Version(u8),
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("reserved bits set in frame header")]
    Reserved,
    #[error("frame payload of {0} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("checksum mismatch: header says {expected:08x}, data gives {actual:08x}")]
    Checksum { expected: u32, actual: u32 },
    #[error("bad LZ4 payload: {0}")]
    Lz4(String),
}

/// Flag bit: the payload on the wire is LZ4-compressed (the checksum covers the compressed bytes).
pub const FLAG_LZ4: u8 = 1;
/// Flag bit: the payload continues in the next frame (a record larger than a frame is split).
pub const FLAG_MORE: u8 = 2;

impl Frame {
    pub fn encode(&self, out: &mut BytesMut) {
        self.encode_with(out, false)
    }

    /// Encodes, compressing the payload with LZ4 when `lz4` is set and it helps (an incompressible
    /// payload is sent as it is, flag clear). The receiver decompresses in `decode`.
    pub fn encode_with(&self, out: &mut BytesMut, lz4: bool) {
        assert!(
            self.payload.len() <= MAX_PAYLOAD,
            "payload over MAX_PAYLOAD"
        );
        let packed = lz4
            .then(|| lz4_flex::block::compress_prepend_size(&self.payload))
            .filter(|c| c.len() < self.payload.len());
        let (mut flags, body): (u8, &[u8]) = match &packed {
            Some(c) => (FLAG_LZ4, c),
            None => (0, &self.payload),
        };
        if self.more {
            flags |= FLAG_MORE;
        }
        let start = out.len();
        out.reserve(HEADER_LEN + body.len());
        out.put_slice(&MAGIC);
        out.put_u8(VERSION);
        out.put_u8(self.kind as u8);
        out.put_u8(flags);
        out.put_u8(0);
        out.put_u16_le(self.shard);
        out.put_u16_le(0);
        out.put_u32_le(body.len() as u32);
        out.put_u64_le(self.offset);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&out[start..start + 24]), body);
        out.put_u32_le(crc);
        out.put_slice(body);
    }

    /// Fills in the header of a frame whose payload was written in place after `HEADER_LEN` reserved
    /// bytes (no flags): the same bytes `encode` produces, without copying the payload.
    pub fn seal(buf: &mut [u8], kind: FrameKind, shard: u16, offset: u64) {
        let len = buf.len() - HEADER_LEN;
        assert!(len <= MAX_PAYLOAD, "payload over MAX_PAYLOAD");
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[5] = kind as u8;
        h[8..10].copy_from_slice(&shard.to_le_bytes());
        h[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        h[16..24].copy_from_slice(&offset.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&h), &buf[HEADER_LEN..]);
        buf[..24].copy_from_slice(&h);
        buf[24..28].copy_from_slice(&crc.to_le_bytes());
    }

    /// Takes one whole frame off the front of `buf`; Ok(None) if more bytes are needed. On error the
    /// stream is unusable (the caller drops the connection and retries the sync).
    /// Whether `buf` already holds a whole frame's bytes (header and payload; nothing is checked). A
    /// receiver uses it to answer once per burst of frames instead of once per frame.
    pub fn buffered(buf: &[u8]) -> bool {
        buf.len() >= HEADER_LEN
            && buf.len()
                >= HEADER_LEN
                    + u32::from_le_bytes(buf[12..16].try_into().expect("4 bytes")) as usize
    }

    pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < HEADER_LEN {
            // Check what is there already, so garbage fails fast instead of waiting for 28 bytes.
            let n = buf.len().min(4);
            if buf[..n] != MAGIC[..n] {
                let mut m = [0u8; 4];
                m[..n].copy_from_slice(&buf[..n]);
                return Err(FrameError::BadMagic(m));
            }
            return Ok(None);
        }
        let h = &buf[..HEADER_LEN];
        let magic: [u8; 4] = h[0..4].try_into().expect("4 bytes");
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        if h[4] != VERSION {
            return Err(FrameError::Version(h[4]));
        }
        let kind = FrameKind::from_u8(h[5]).ok_or(FrameError::Kind(h[5]))?;
        let flags = h[6];
        if flags & !(FLAG_LZ4 | FLAG_MORE) != 0 || h[7] != 0 || h[10] != 0 || h[11] != 0 {
            return Err(FrameError::Reserved);
        }
        let shard = u16::from_le_bytes([h[8], h[9]]);
        let len = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes")) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(len));
        }
        let offset = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
        let expected = u32::from_le_bytes(h[24..28].try_into().expect("4 bytes"));
        if buf.len() < HEADER_LEN + len {
            buf.reserve(HEADER_LEN + len - buf.len());
            return Ok(None);
        }
        let actual = crc32c::crc32c_append(
            crc32c::crc32c(&buf[..24]),
            &buf[HEADER_LEN..HEADER_LEN + len],
        );
        if actual != expected {
            return Err(FrameError::Checksum { expected, actual });
        }
        buf.advance(HEADER_LEN);
        let mut payload = buf.split_to(len).freeze();
        if flags & FLAG_LZ4 != 0 {
            // The size prefix is checked before allocating: a corrupt one cannot make us allocate.
            let size = payload
                .get(..4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                .ok_or_else(|| FrameError::Lz4("no size prefix".into()))?;
            if size > MAX_PAYLOAD {
                return Err(FrameError::TooLarge(size));
            }
            payload = lz4_flex::block::decompress_size_prepended(&payload)
                .map_err(|e| FrameError::Lz4(e.to_string()))?
                .into();
        }
        Ok(Some(Frame {
            kind,
            shard,
            offset,
            more: flags & FLAG_MORE != 0,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Frame {
        Frame {
            kind: FrameKind::Journal,
            shard: 3,
            offset: 0x0102_0304_0506_0708,
            more: false,
            payload: Bytes::from_static(b"hello"),
        }
    }

    /// The exact bytes of a known frame, its CRC-32C computed independently (a bitwise Python
    /// implementation checked against the standard "123456789" vector). If this changes, the format
    /// changed: bump VERSION and update docs/replication-format.md.
    const GOLDEN: &str = "544e444d02030000030000000500000008070605040302015498aae268656c6c6f";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn golden_bytes() {
        let mut out = BytesMut::new();
        sample().encode(&mut out);
        assert_eq!(hex(&out), GOLDEN);
        let bytes: Vec<u8> = (0..GOLDEN.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&GOLDEN[i..i + 2], 16).unwrap())
            .collect();
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(Frame::decode(&mut buf).unwrap(), Some(sample()));
        assert!(buf.is_empty());
    }

    /// `buffered` says yes exactly when decode would not need more bytes.
    #[test]
    fn buffered_means_whole() {
        let mut out = BytesMut::new();
        sample().encode(&mut out);
        for n in 0..out.len() {
            assert!(!Frame::buffered(&out[..n]), "{n} of {} bytes", out.len());
            assert_eq!(Frame::decode(&mut BytesMut::from(&out[..n])).unwrap(), None);
        }
        assert!(Frame::buffered(&out));
        out.extend_from_slice(b"TN");
        assert!(Frame::buffered(&out));
    }

    /// A compressible journal frame with LZ4: the flag is set, the bytes are fixed, and the payload comes
    /// back as it was. An incompressible one goes out plain.
    #[test]
    fn lz4_golden_and_round_trip() {
        let f = Frame {
            kind: FrameKind::Journal,
            shard: 1,
            offset: 7,
            more: false,
            payload: Bytes::from(vec![b'a'; 64]),
        };
        let mut out = BytesMut::new();
        f.encode_with(&mut out, true);
        assert_eq!(out[6], FLAG_LZ4);
        assert!(out.len() < HEADER_LEN + 64);
        assert_eq!(
            hex(&out),
            "544e444d02030100010000001000000007000000000000006cb000c340000000\
             1f6101002660616161616161"
        );
        let mut buf = out.clone();
        assert_eq!(Frame::decode(&mut buf).unwrap(), Some(f.clone()));
        let noise = Frame {
            payload: Bytes::from((0..64u8).map(|i| i.wrapping_mul(151)).collect::<Vec<_>>()),
            ..f
        };
        let mut plain = BytesMut::new();
        noise.encode_with(&mut plain, true);
        assert_eq!(plain[6], 0, "not worth compressing");
        assert_eq!(Frame::decode(&mut plain).unwrap(), Some(noise));
        let mut bad = out.clone();
        bad[HEADER_LEN + 3] = 0xff; // a huge size prefix, checksum fixed up: refused before allocating
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bad[..24]), &bad[HEADER_LEN..]);
        bad[24..28].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Frame::decode(&mut bad),
            Err(FrameError::TooLarge(_))
        ));
    }

    /// A continued chunk carries flag bit 1; bits above it are refused.
    #[test]
    fn more_flag() {
        let f = Frame {
            kind: FrameKind::SnapshotChunk,
            more: true,
            ..sample()
        };
        let mut out = BytesMut::new();
        f.encode(&mut out);
        assert_eq!(out[6], FLAG_MORE);
        assert_eq!(Frame::decode(&mut out.clone()).unwrap(), Some(f));
        let mut bad = out.clone();
        bad[6] = 4;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bad[..24]), &bad[HEADER_LEN..]);
        bad[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Frame::decode(&mut bad), Err(FrameError::Reserved));
    }

    #[test]
    fn sealing_in_place_gives_the_encoded_bytes() {
        let mut inplace = vec![0u8; HEADER_LEN];
        inplace.extend_from_slice(b"hello");
        Frame::seal(&mut inplace, FrameKind::Journal, 3, 0x0102_0304_0506_0708);
        assert_eq!(hex(&inplace), GOLDEN);
    }

    #[test]
    fn every_single_byte_corruption_is_detected() {
        let mut good = BytesMut::new();
        sample().encode(&mut good);
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                match Frame::decode(&mut bad) {
                    Err(_) => {}
                    // A corrupted length can make the frame look longer: the decoder waits, and the
                    // checksum fails once the bytes arrive; it never yields a frame.
                    Ok(None) => assert!((12..16).contains(&i), "byte {i} bit {bit}: waited"),
                    Ok(Some(f)) => panic!("byte {i} bit {bit}: corrupt frame accepted: {f:?}"),
                }
            }
        }
    }

    #[test]
    fn limits_and_garbage() {
        let mut buf = BytesMut::from(&b"GET x\r\n"[..]);
        assert!(matches!(
            Frame::decode(&mut buf),
            Err(FrameError::BadMagic(_))
        ));
        let mut good = BytesMut::new();
        sample().encode(&mut good);
        let mut big = good.clone();
        big[12..16].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        assert_eq!(
            Frame::decode(&mut big),
            Err(FrameError::TooLarge(MAX_PAYLOAD + 1))
        );
        let mut v1 = good.clone();
        v1[4] = 1;
        assert_eq!(Frame::decode(&mut v1), Err(FrameError::Version(1)));
    }

    proptest! {
        #[test]
        fn round_trip_in_any_pieces(frames in prop::collection::vec((1u8..6, any::<u16>(), any::<u64>(), any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)), 1..8),
                                    piece in 1usize..50) {
            let frames: Vec<Frame> = frames.into_iter().map(|(k, s, o, m, p)| Frame { kind: FrameKind::from_u8(k).unwrap(), shard: s, offset: o, more: m, payload: Bytes::from(p) }).collect();
            let mut wire = BytesMut::new();
            frames.iter().for_each(|f| f.encode(&mut wire));
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(piece) {
                buf.extend_from_slice(chunk);
                while let Some(f) = Frame::decode(&mut buf).unwrap() {
                    got.push(f);
                }
            }
            prop_assert_eq!(got, frames);
            prop_assert!(buf.is_empty());
        }
    }
}
