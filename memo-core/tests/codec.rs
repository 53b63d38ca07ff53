//! Object codec: round trips, pinned test vectors, property tests and bad input.

use memo_core::codec::*;
use memo_core::{Keypair, ShardId};
use proptest::prelude::*;
use std::io;

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.finalize_xof().fill(&mut out);
    out
}

fn small(k: u8, m: u8) -> CodecParams {
    CodecParams {
        chunk_size: MIN_CHUNK_SIZE,
        data_shards: k,
        parity_shards: m,
    }
}

fn store(chunks: &[EncodedChunk]) -> MemoryShards {
    let s = MemoryShards::new();
    chunks.iter().for_each(|c| s.insert_chunk(c));
    s
}

/// Known input and secret give known ids: these pin the chunk, shard, manifest and object
/// formats. If one changes, every stored object becomes unreadable: bump a format version.
#[test]
fn test_vectors_pin_the_format() {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let enc = Encoder::new(ConvergenceDomain::global(), small(3, 2)).unwrap();
    let (obj, chunks) = enc.encode_bytes(&data).unwrap();
    assert_eq!(chunks.len(), 4, "3 data chunks + the manifest");
    let first = &chunks[0].chunk;
    assert_eq!(
        first.id.to_hex(),
        "bde849ef6af4d22cb6618d1291cf3ef39d6ad6a9992f310d1beccc45d6d6246d"
    );
    assert_eq!(
        first.shards[0].to_hex(),
        "13a3fa2effb10cf925c3015898f1e8281c3491b00fd9d1d1facfc46b4ad47067"
    );
    assert_eq!(
        first.shards[4].to_hex(),
        "c80d29f404a70246f65c6d3143c42448b1acf02886236bdefe18216e25b526a7"
    );
    assert_eq!(
        obj.id().to_hex(),
        "10780c4b89bcd86d00ca3fb9cea388d88369e4b7b27109640b8c7e98c9d94774"
    );
    let group = Encoder::new(ConvergenceDomain::group(b"memo test group"), small(3, 2)).unwrap();
    assert_eq!(
        group.encode_bytes(&data).unwrap().0.id().to_hex(),
        "ffe917a2ab436bc380df56c8bc6bd084115a6efff945a4c341378fe8f56e3b2e"
    );
    // A chunk of eight SIV segments (default 4 MiB chunking, 4+2).
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let enc = Encoder::new(ConvergenceDomain::global(), CodecParams::default()).unwrap();
    let (obj, chunks) = enc.encode_bytes(&big).unwrap();
    assert_eq!(
        chunks[0].chunk.id.to_hex(),
        "f89fec7da095f83fa6807845a737e1cc09b59b75c81ae28558c2f4180731ad24"
    );
    assert_eq!(
        obj.id().to_hex(),
        "541264c8abf3bf08250ad060d6648891e3b1fd25a1fb174795845703c07c0fe3"
    );
}

#[test]
fn same_data_same_ids_other_domain_other_ids() {
    let data = pseudo_random(50_000, 1);
    let g1 = Encoder::new(ConvergenceDomain::global(), small(4, 2)).unwrap();
    let (a, ca) = g1.encode_bytes(&data).unwrap();
    let (b, cb) = g1.encode_bytes(&data).unwrap();
    assert_eq!(a, b);
    assert_eq!(ca, cb);
    let p = Encoder::new(
        ConvergenceDomain::private(&Keypair::from_seed("u")),
        small(4, 2),
    )
    .unwrap();
    let (c, cc) = p.encode_bytes(&data).unwrap();
    assert_ne!(a.id(), c.id());
    assert!(ca.iter().zip(&cc).all(|(x, y)| x.chunk.id != y.chunk.id));
    // Decoding needs no domain: the secrets travel in the reference and manifest.
    assert_eq!(
        Decoder::default().decode_to_vec(&store(&cc), &c).unwrap(),
        data
    );
}

#[test]
fn streaming_reports_progress_and_range_reads() {
    let data = pseudo_random(100_000, 2);
    let enc = Encoder::new(ConvergenceDomain::global(), small(2, 1))
        .unwrap()
        .with_parallelism(Parallelism {
            threads: 3,
            window: 2,
        });
    let mut seen = Vec::new();
    let mut chunks = Vec::new();
    let obj = enc
        .encode_reader(
            &data[..],
            Some(data.len() as u64),
            &mut |p| seen.push(p),
            &mut |c| {
                chunks.push(c);
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(seen.len(), data.len().div_ceil(MIN_CHUNK_SIZE as usize));
    assert_eq!(seen.last().unwrap().done, data.len() as u64);
    assert!(seen.windows(2).all(|w| w[0].done < w[1].done));
    let shards = store(&chunks);
    let dec = Decoder::new(Parallelism {
        threads: 2,
        window: 3,
    });
    for (a, b) in [
        (0u64, 1u64),
        (4095, 4097),
        (10_000, 60_000),
        (99_999, 100_000),
        (0, 100_000),
        (5, 1 << 40),
    ] {
        let mut out = Vec::new();
        let n = dec
            .decode_to_writer(&shards, &obj, Some(a..b), &mut |_| {}, &mut out)
            .unwrap();
        let b = b.min(data.len() as u64);
        assert_eq!(n, b - a);
        assert_eq!(out, &data[a as usize..b as usize]);
    }
}

#[test]
fn bad_input_gets_typed_errors() {
    let enc = Encoder::new(ConvergenceDomain::global(), small(3, 2)).unwrap();
    // An empty file is an object of no chunks: it decodes to nothing.
    let (obj, chunks) = enc.encode_bytes(b"").unwrap();
    assert_eq!((obj.size, chunks.len()), (0, 1), "just the manifest");
    // k + m out of range.
    for (k, m) in [(0u8, 2u8), (1, 2), (3, 0), (200, 100)] {
        assert!(matches!(
            Encoder::new(ConvergenceDomain::global(), CodecParams::with_shards(k, m)),
            Err(CodecError::InvalidParams(_))
        ));
    }
    let bad_chunk = CodecParams {
        chunk_size: 10,
        ..CodecParams::default()
    };
    assert!(matches!(
        Encoder::new(ConvergenceDomain::global(), bad_chunk),
        Err(CodecError::InvalidParams(_))
    ));

    let data = pseudo_random(20_000, 3);
    let (obj, chunks) = enc.encode_bytes(&data).unwrap();
    let dec = Decoder::default();

    // Wrong key: the manifest secret is wrong.
    let mut wrong = obj.clone();
    wrong.manifest.secret[5] ^= 1;
    assert!(matches!(
        dec.decode_to_vec(&store(&chunks), &wrong),
        Err(CodecError::Decrypt(_))
    ));

    // Fewer than k shards of a data chunk.
    let shards = store(&chunks);
    for id in &chunks[1].chunk.shards[..3] {
        shards.remove(id);
    }
    match dec.decode_to_vec(&shards, &obj) {
        Err(CodecError::NotEnoughShards {
            needed: 3, good: 2, ..
        }) => {}
        other => panic!("{other:?}"),
    }

    // Shards from another object, stored under this object's shard ids.
    let (_, other) = enc.encode_bytes(&pseudo_random(20_000, 4)).unwrap();
    let shards = store(&chunks);
    for i in 0..3 {
        shards.insert(chunks[0].chunk.shards[i], other[0].shards[i].clone());
    }
    match dec.decode_to_vec(&shards, &obj) {
        Err(CodecError::NotEnoughShards {
            rejected: 3,
            good: 2,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }

    // Altered manifest shards: rejected by id, and with too many altered, an error.
    let shards = store(&chunks);
    let man = chunks.last().unwrap();
    for (i, id) in man.chunk.shards.iter().enumerate() {
        let mut b = man.shards[i].to_vec();
        b[0] ^= 0xff;
        shards.insert(*id, b);
    }
    assert!(matches!(
        dec.decode_to_vec(&shards, &obj),
        Err(CodecError::NotEnoughShards { rejected: 5, .. })
    ));

    // A manifest that decrypts but lies about the object size.
    let mut liar = obj.clone();
    liar.size += 1;
    assert!(matches!(
        dec.decode_to_vec(&store(&chunks), &liar),
        Err(CodecError::ManifestInconsistent(_))
    ));

    // Truncated or altered object reference text.
    let text = obj.to_string();
    assert_eq!(text.parse::<ObjectRef>().unwrap(), obj);
    assert!(matches!(
        text[..text.len() - 10].parse::<ObjectRef>(),
        Err(CodecError::Manifest(_))
    ));
    assert!(matches!(
        "memo-obj1:zz".parse::<ObjectRef>(),
        Err(CodecError::BadObjectRef(_))
    ));
    assert!(matches!(
        "nope".parse::<ObjectRef>(),
        Err(CodecError::BadObjectRef(_))
    ));

    // Manifest bytes: truncated, altered, wrong version.
    let manifest = read_manifest(&store(&chunks), &obj).unwrap();
    let bytes = manifest.to_bytes();
    assert!(Manifest::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert!(matches!(
        Manifest::from_bytes(&v2),
        Err(CodecError::Manifest(
            memo_core::wire::WireError::Version { .. }
        ))
    ));
    let mut m2 = manifest.clone();
    m2.size += 5;
    assert!(matches!(
        Manifest::from_bytes(&m2.to_bytes()),
        Err(CodecError::ManifestInconsistent(_))
    ));
}

struct FailingSource<'a>(&'a MemoryShards, usize);
impl ShardSource for FailingSource<'_> {
    fn fetch(&self, chunk: &ChunkRef, index: usize) -> io::Result<Option<Bytes>> {
        if index == self.1 {
            return Err(io::Error::other("holder down"));
        }
        self.0.fetch(chunk, index)
    }
}

#[test]
fn a_failing_holder_is_a_missing_shard() {
    let enc = Encoder::new(ConvergenceDomain::global(), small(2, 2)).unwrap();
    let data = pseudo_random(9000, 5);
    let (obj, chunks) = enc.encode_bytes(&data).unwrap();
    let s = store(&chunks);
    assert_eq!(
        Decoder::default()
            .decode_to_vec(&FailingSource(&s, 0), &obj)
            .unwrap(),
        data
    );
}

#[test]
fn a_failing_writer_stops_the_decode() {
    struct Broken(usize);
    impl io::Write for Broken {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk full"));
            }
            self.0 -= 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let enc = Encoder::new(ConvergenceDomain::global(), small(2, 1)).unwrap();
    let data = pseudo_random(40_000, 6);
    let (obj, chunks) = enc.encode_bytes(&data).unwrap();
    let r = Decoder::default().decode_to_writer(
        &store(&chunks),
        &obj,
        None,
        &mut |_| {},
        &mut Broken(2),
    );
    assert!(matches!(r, Err(CodecError::Io(_))));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any object, any k+m, any <= m lost or corrupted shards per chunk: the exact bytes.
    #[test]
    fn any_object_survives_up_to_m_faults(
        len in 1usize..40_000,
        seed in any::<u64>(),
        k in 2u8..8,
        m in 1u8..5,
        faults in proptest::collection::vec((any::<u8>(), any::<bool>()), 0..5),
    ) {
        let data = pseudo_random(len, seed);
        let enc = Encoder::new(ConvergenceDomain::global(), small(k, m)).unwrap();
        let (obj, chunks) = enc.encode_bytes(&data).unwrap();
        let shards = store(&chunks);
        let n = (k + m) as usize;
        for c in &chunks {
            let mut hit: Vec<usize> = faults.iter().map(|(i, _)| *i as usize % n).collect();
            hit.sort();
            hit.dedup();
            for (j, &i) in hit.iter().take(m as usize).enumerate() {
                let id: ShardId = c.chunk.shards[i];
                if faults[j % faults.len()].1 {
                    shards.remove(&id);
                } else {
                    let mut b = c.shards[i].to_vec();
                    let at = b.len() / 2;
                    b[at] ^= 0x5a;
                    shards.insert(id, b);
                }
            }
        }
        prop_assert_eq!(Decoder::default().decode_to_vec(&shards, &obj).unwrap(), data);
    }

    /// Decoding arbitrary bytes as a manifest or object reference never panics.
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Manifest::from_bytes(&bytes);
        let _ = ObjectRef::from_bytes(&bytes);
        let mut v = vec![1u8];
        v.extend_from_slice(&bytes);
        let _ = Manifest::from_bytes(&v);
        let _ = ObjectRef::from_bytes(&v);
    }
}

/// The documented construction, rebuilt from the primitives: chunk secret = keyed blake3 of
/// the plaintext under the domain key; SIV key = 64 bytes of blake3 XOF keyed by the secret;
/// a chunk under 32 KiB is one RFC 5297 AES-256-SIV segment with header
/// "memo/chunk/v2" ‖ [0, 1], laid out as ciphertext ‖ tag; id = blake3(all of it).
#[test]
fn chunk_format_matches_its_documentation() {
    use aes_siv::KeyInit;
    let plain = pseudo_random(5000, 9);
    let domain_key = blake3::derive_key("memo 2026 convergence global v1", b"");
    let secret = *blake3::keyed_hash(&domain_key, &plain).as_bytes();
    let mut key = [0u8; 64];
    blake3::Hasher::new_keyed(&secret)
        .update(b"aes-256-siv key")
        .finalize_xof()
        .fill(&mut key);
    let siv = aes_siv::siv::Aes256Siv::new((&key).into())
        .encrypt([&b"memo/chunk/v2\x00\x01"[..]], &plain)
        .unwrap();
    let mut ct = siv[16..].to_vec();
    ct.extend_from_slice(&siv[..16]);
    let e = encode_chunk(&ConvergenceDomain::global(), &plain, 3, 2).unwrap();
    assert_eq!(e.chunk.secret, secret);
    assert_eq!(e.chunk.id.0, *blake3::hash(&ct).as_bytes());
    let slen = (ct.len().div_ceil(3) + 1) & !1;
    assert_eq!(&e.shards[0][..], &ct[..slen]);
    assert_eq!(e.chunk.shards[0].0, *blake3::hash(&ct[..slen]).as_bytes());
}
