//! The S3 operations, over the catalog and the client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::body::{BodyReader, BodyStop, channel_body};
use super::catalog::{
    BucketMeta, Catalog, DATA_NAME, DataRef, Entry, Found, Listing, ObjectMeta, PartMeta,
    UploadMeta,
};
use super::{Client, ClientError, GatewayConfig, calls};

/// The S3 implementation behind [`super::Gateway`].
pub(crate) struct MemoS3 {
    client: Arc<Client>,
    config: GatewayConfig,
}

const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";
const MAX_KEYS: i32 = 1000;

impl MemoS3 {
    pub(crate) fn new(client: Arc<Client>, config: GatewayConfig) -> Self {
        Self { client, config }
    }

    fn catalog(&self) -> Catalog<'_> {
        Catalog {
            client: &self.client,
        }
    }

    fn now_ms(&self) -> u64 {
        let t = (self.config.clock)();
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn nonce(&self) -> u64 {
        (self.config.random)()
    }

    async fn listing(&self) -> S3Result<Listing> {
        self.catalog().load().await.map_err(internal)
    }

    async fn listing_with_bucket(&self, bucket: &str) -> S3Result<Listing> {
        let l = self.listing().await?;
        if !l.has_bucket(bucket) {
            return Err(s3_error!(NoSuchBucket, "no bucket named {bucket}"));
        }
        Ok(l)
    }

    /// Streams `body` into a new data object (one more reference if the bytes are stored
    /// already). Nothing stays stored when it fails.
    async fn put_data(
        &self,
        body: Option<StreamingBlob>,
        content_length: Option<i64>,
        content_md5: Option<&str>,
    ) -> S3Result<(DataRef, [u8; 16])> {
        let limit = self.config.max_put_size;
        if content_length.is_some_and(|n| u64::try_from(n).map_or(true, |n| n > limit)) {
            return Err(s3_error!(
                EntityTooLarge,
                "the body is larger than {limit} bytes"
            ));
        }
        let body = body.unwrap_or_else(|| {
            StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
        });
        let (reader, outcome) = BodyReader::new(body, limit);
        let size = content_length.and_then(|n| u64::try_from(n).ok());
        let put = calls::put(&self.client, DATA_NAME, reader, size).await;
        let report = match put {
            Ok(r) => r,
            // memo stores no empty objects: an empty body is a data reference to nothing.
            Err(_)
                if outcome.digest().is_some_and(|d| d.len == 0) && size.is_none_or(|n| n == 0) =>
            {
                let md5 = outcome.digest().map(|d| d.md5).unwrap_or_default();
                if let Some(want) = content_md5
                    && want.trim() != base64_encode(&md5)
                {
                    return Err(s3_error!(BadDigest, "Content-MD5 does not match the body"));
                }
                return Ok((DataRef::empty(), md5));
            }
            Err(e) => {
                return Err(match outcome.stop() {
                    Some(BodyStop::TooLarge) => {
                        s3_error!(EntityTooLarge, "the body is larger than {limit} bytes")
                    }
                    Some(BodyStop::Broken(why)) => {
                        s3_error!(IncompleteBody, "the request body ended early: {why}")
                    }
                    None => internal(e),
                });
            }
        };
        let data = DataRef {
            handle: report.object_ref.clone(),
            size: report.size,
        };
        let Some(digest) = outcome.digest() else {
            self.undo_data(&data).await;
            return Err(s3_error!(IncompleteBody, "the request body ended early"));
        };
        if size.is_some_and(|n| n != digest.len) {
            self.undo_data(&data).await;
            return Err(s3_error!(
                IncompleteBody,
                "got {} bytes of the {} announced",
                digest.len,
                size.unwrap_or_default()
            ));
        }
        if let Some(want) = content_md5 {
            let got = base64_encode(&digest.md5);
            if want.trim() != got {
                self.undo_data(&data).await;
                return Err(s3_error!(BadDigest, "Content-MD5 does not match the body"));
            }
        }
        Ok((data, digest.md5))
    }

    /// Drops the reference a failed operation had taken (best effort: logged on failure).
    async fn undo_data(&self, data: &DataRef) {
        if let Err(e) = self.catalog().drop_data(std::slice::from_ref(data)).await {
            tracing::warn!("s3 gateway: dropping a reference after a failure: {e}");
        }
    }

    /// Stores an object entry, then removes the key's older entries (and their references).
    /// On failure the data references `meta` holds are dropped again.
    async fn commit_object(&self, meta: ObjectMeta, old: Vec<Found<ObjectMeta>>) -> S3Result<()> {
        let data = meta.data.clone();
        if let Err(e) = self.catalog().store(&Entry::Object(meta)).await {
            for d in &data {
                self.undo_data(d).await;
            }
            return Err(internal(e));
        }
        for f in &old {
            self.catalog().remove_object(f).await.map_err(internal)?;
        }
        Ok(())
    }

    /// Writes `range` of an object's data (its parts in order) to a new response body.
    fn read_body(&self, data: Vec<DataRef>, range: std::ops::Range<u64>) -> StreamingBlob {
        let (mut writer, body) = channel_body();
        let client = self.client.clone();
        tokio::spawn(async move {
            let mut offset = 0u64;
            for d in data {
                let (start, end) = (offset, offset + d.size);
                offset = end;
                let (s, e) = (range.start.max(start), range.end.min(end));
                if s >= e {
                    continue;
                }
                let sub = (s - start)..(e - start);
                let whole = sub.start == 0 && sub.end == d.size;
                let (w, r) =
                    calls::get(client.clone(), d.handle, (!whole).then_some(sub), writer).await;
                match (w, r) {
                    (Some(w), Ok(_)) => writer = w,
                    (Some(w), Err(e)) => return w.fail(e.to_string()).await,
                    (None, _) => return,
                }
            }
        });
        StreamingBlob::wrap(body)
    }

    async fn find_object(&self, bucket: &str, key: &str) -> S3Result<Found<ObjectMeta>> {
        let l = self.listing_with_bucket(bucket).await?;
        l.object(bucket, key)
            .cloned()
            .ok_or_else(|| s3_error!(NoSuchKey, "no key {key} in bucket {bucket}"))
    }

    /// The bucket and key of a copy source, with its current entry (data handles included).
    async fn copy_source(&self, src: &CopySource) -> S3Result<ObjectMeta> {
        let CopySource::Bucket { bucket, key, .. } = src else {
            return Err(s3_error!(NotImplemented, "access point copy sources"));
        };
        let found = self.find_object(bucket, key).await?;
        self.catalog().full_object(&found).await.map_err(internal)
    }

    async fn upload(&self, upload_id: &str) -> S3Result<(Listing, Found<UploadMeta>)> {
        let l = self.listing().await?;
        let up = l
            .uploads
            .get(upload_id)
            .cloned()
            .ok_or_else(|| s3_error!(NoSuchUpload, "no upload {upload_id}"))?;
        Ok((l, up))
    }

    /// Stores a part entry for data already stored, replacing any earlier part of that number.
    async fn commit_part(
        &self,
        l: &Listing,
        upload_id: &str,
        part: i32,
        data: DataRef,
        md5: [u8; 16],
    ) -> S3Result<(String, u64)> {
        let etag = hex(&md5);
        let modified = self.now_ms();
        let meta = PartMeta {
            upload_id: upload_id.to_string(),
            part,
            etag: etag.clone(),
            modified,
            nonce: self.nonce(),
            data: data.clone(),
        };
        let id = match self.catalog().store(&Entry::Part(meta)).await {
            Ok(id) => id,
            Err(e) => {
                self.undo_data(&data).await;
                return Err(internal(e));
            }
        };
        for old in l.parts.get(upload_id).into_iter().flatten() {
            if old.meta.part == part {
                self.drop_part(old).await?;
            }
        }
        // An upload completed or aborted meanwhile would leave this part behind: take it back.
        let fresh = self.listing().await?;
        if !fresh.uploads.contains_key(upload_id) {
            let mine = fresh
                .parts
                .get(upload_id)
                .into_iter()
                .flatten()
                .find(|p| p.id == id);
            if let Some(mine) = mine {
                self.drop_part(mine).await?;
            }
            return Err(s3_error!(
                NoSuchUpload,
                "upload {upload_id} ended meanwhile"
            ));
        }
        Ok((etag, modified))
    }

    async fn drop_part(&self, p: &Found<PartMeta>) -> S3Result<()> {
        let c = self.catalog();
        if !c.claim(p.id, p.refs).await.map_err(internal)? {
            return Ok(());
        }
        c.drop_data(std::slice::from_ref(&p.meta.data))
            .await
            .map_err(internal)
    }
}

fn check_part_number(n: i32) -> S3Result<()> {
    if (1..=10_000).contains(&n) {
        Ok(())
    } else {
        Err(s3_error!(
            InvalidArgument,
            "part numbers go from 1 to 10000, not {n}"
        ))
    }
}

fn internal(e: ClientError) -> S3Error {
    match e {
        ClientError::NotFound(what) => s3_error!(NoSuchKey, "{what}"),
        ClientError::Refused(why) => s3_error!(AccessDenied, "{why}"),
        ClientError::NoKeeper { .. } => {
            let mut err = S3Error::with_message(S3ErrorCode::ServiceUnavailable, e.to_string());
            err.set_source(Box::new(e));
            err
        }
        other => {
            let mut err = S3Error::with_message(S3ErrorCode::InternalError, other.to_string());
            err.set_source(Box::new(other));
            err
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn base64_encode(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

fn size_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn metadata(m: &BTreeMap<String, String>) -> Option<Metadata> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn meta_map(m: Option<Metadata>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}

/// A listing continuation token: the last key or common prefix returned, hex-encoded.
fn encode_token(s: &str) -> String {
    hex(s.as_bytes())
}

fn decode_token(t: &str) -> S3Result<String> {
    let bad = || s3_error!(InvalidArgument, "invalid continuation token");
    if !t.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..t.len())
        .step_by(2)
        .map(|i| {
            t.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(())
        })
        .collect();
    String::from_utf8(bytes.map_err(|()| bad())?).map_err(|_| bad())
}

/// `s` as S3 URL-encodes keys in listings asked with `encoding-type=url`.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a listing asked for URL-encoded keys.
fn wants_url(e: Option<&EncodingType>) -> bool {
    e.is_some_and(|e| e.as_str().eq_ignore_ascii_case(EncodingType::URL))
}

/// URL-encodes a page's keys and prefixes when asked to.
fn encode_page(page: &mut Page, url: bool) {
    if !url {
        return;
    }
    for o in &mut page.contents {
        o.key = o.key.as_deref().map(url_encode);
    }
    for p in &mut page.prefixes {
        *p = url_encode(p);
    }
}

/// One page of a bucket listing.
struct Page {
    contents: Vec<Object>,
    prefixes: Vec<String>,
    /// The last key or prefix returned, when more follow.
    next: Option<String>,
}

/// Lists `bucket`'s keys after `after`, under `prefix`, rolling keys up to `delimiter`.
fn list_page(
    l: &Listing,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: &str,
    max_keys: i32,
) -> Page {
    let max = usize::try_from(max_keys.clamp(0, MAX_KEYS)).unwrap_or(0);
    let mut page = Page {
        contents: Vec::new(),
        prefixes: Vec::new(),
        next: None,
    };
    let mut count = 0usize;
    let mut last: Option<String> = None;
    for f in l.bucket_objects(bucket) {
        let key = &f.meta.key;
        if !key.starts_with(prefix) || key.as_str() <= after {
            continue;
        }
        let rolled = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
            key[prefix.len()..]
                .find(d)
                .map(|i| key[..prefix.len() + i + d.len()].to_string())
        });
        if let Some(cp) = &rolled
            && (cp.as_str() <= after || page.prefixes.last() == Some(cp))
        {
            continue;
        }
        if count == max {
            page.next = last;
            return page;
        }
        count += 1;
        match rolled {
            Some(cp) => {
                last = Some(cp.clone());
                page.prefixes.push(cp);
            }
            None => {
                last = Some(key.clone());
                page.contents.push(Object {
                    key: Some(key.clone()),
                    e_tag: Some(ETag::Strong(f.meta.etag.clone())),
                    last_modified: Some(timestamp(f.meta.modified)),
                    size: Some(size_i64(f.meta.size)),
                    storage_class: Some(ObjectStorageClass::from_static(
                        ObjectStorageClass::STANDARD,
                    )),
                    ..Default::default()
                });
            }
        }
    }
    page
}

#[async_trait::async_trait]
impl S3 for MemoS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = req.input.bucket;
        let l = self.listing().await?;
        if l.has_bucket(&bucket) {
            return Err(s3_error!(BucketAlreadyOwnedByYou));
        }
        let meta = BucketMeta {
            bucket: bucket.clone(),
            created: self.now_ms(),
            nonce: self.nonce(),
        };
        self.catalog()
            .store(&Entry::Bucket(meta))
            .await
            .map_err(internal)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.listing_with_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.config.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.listing_with_bucket(&req.input.bucket).await?;
        let location_constraint = (self.config.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.config.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let l = self.listing().await?;
        let buckets = l
            .buckets
            .iter()
            .map(|(name, v)| Bucket {
                name: Some(name.clone()),
                creation_date: v.iter().map(|b| b.meta.created).min().map(timestamp),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..Default::default()
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket;
        let l = self.listing_with_bucket(&bucket).await?;
        let busy = l.bucket_objects(&bucket).next().is_some()
            || l.uploads.values().any(|u| u.meta.bucket == bucket);
        if busy {
            return Err(s3_error!(BucketNotEmpty));
        }
        for b in l.buckets.get(&bucket).into_iter().flatten() {
            self.catalog()
                .drop_entry(b.id, b.refs)
                .await
                .map_err(internal)?;
        }
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let l = self.listing_with_bucket(&input.bucket).await?;
        let (data, md5) = self
            .put_data(
                input.body,
                input.content_length,
                input.content_md5.as_deref(),
            )
            .await?;
        let etag = hex(&md5);
        let meta = ObjectMeta {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            size: data.size,
            etag: etag.clone(),
            content_type: input.content_type,
            meta: meta_map(input.metadata),
            modified: self.now_ms(),
            nonce: self.nonce(),
            data: vec![data],
        };
        self.commit_object(meta, l.all_of(&input.bucket, &input.key))
            .await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let found = self.find_object(&input.bucket, &input.key).await?;
        let full = self.catalog().full_object(&found).await.map_err(internal)?;
        let size = full.size;
        let (range, content_range) = match input.range {
            None => (0..size, None),
            Some(r) => {
                let got = r
                    .check(size)
                    .map_err(|_| s3_error!(InvalidRange, "the range is outside the object"))?;
                let cr = format!("bytes {}-{}/{size}", got.start, got.end - 1);
                (got, Some(cr))
            }
        };
        let len = range.end - range.start;
        let body = self.read_body(full.data.clone(), range);
        Ok(S3Response::new(GetObjectOutput {
            body: Some(body),
            content_length: Some(size_i64(len)),
            content_range,
            accept_ranges: Some("bytes".into()),
            content_type: Some(
                full.content_type
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
            ),
            e_tag: Some(ETag::Strong(full.etag.clone())),
            last_modified: Some(timestamp(full.modified)),
            metadata: metadata(&full.meta),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let f = self.find_object(&input.bucket, &input.key).await?.meta;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(size_i64(f.size)),
            accept_ranges: Some("bytes".into()),
            content_type: Some(
                f.content_type
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
            ),
            e_tag: Some(ETag::Strong(f.etag.clone())),
            last_modified: Some(timestamp(f.modified)),
            metadata: metadata(&f.meta),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let l = self.listing_with_bucket(&input.bucket).await?;
        for f in l.all_of(&input.bucket, &input.key) {
            self.catalog().remove_object(&f).await.map_err(internal)?;
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let l = self.listing_with_bucket(&input.bucket).await?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for o in input.delete.objects {
            let mut failed = None;
            for f in l.all_of(&input.bucket, &o.key) {
                if let Err(e) = self.catalog().remove_object(&f).await {
                    failed = Some(e);
                    break;
                }
            }
            match failed {
                None if !quiet => deleted.push(DeletedObject {
                    key: Some(o.key),
                    ..Default::default()
                }),
                None => {}
                Some(e) => errors.push(Error {
                    code: Some("InternalError".into()),
                    key: Some(o.key),
                    message: Some(e.to_string()),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let src = self.copy_source(&input.copy_source).await?;
        let l = self.listing_with_bucket(&input.bucket).await?;
        // One more reference to each data object: no shard moves.
        let mut taken: Vec<DataRef> = Vec::new();
        for d in &src.data {
            if d.size == 0 {
                continue;
            }
            let Some(r) = d.object_ref() else {
                return Err(s3_error!(InternalError, "a stored handle does not parse"));
            };
            if let Err(e) = calls::put_existing(&self.client, DATA_NAME, &r).await {
                for t in &taken {
                    self.undo_data(t).await;
                }
                return Err(internal(e));
            }
            taken.push(d.clone());
        }
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let (content_type, meta) = if replace {
            (input.content_type, meta_map(input.metadata))
        } else {
            (src.content_type.clone(), src.meta.clone())
        };
        let modified = self.now_ms();
        let meta = ObjectMeta {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            size: src.size,
            etag: src.etag.clone(),
            content_type,
            meta,
            modified,
            nonce: self.nonce(),
            data: src.data.clone(),
        };
        self.commit_object(meta, l.all_of(&input.bucket, &input.key))
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(src.etag)),
                last_modified: Some(timestamp(modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let l = self.listing_with_bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut after = input.start_after.clone().unwrap_or_default();
        if let Some(t) = &input.continuation_token {
            after = after.max(decode_token(t)?);
        }
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let mut page = list_page(
            &l,
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            &after,
            max_keys,
        );
        let next_continuation_token = page.next.as_deref().map(encode_token);
        let url = wants_url(input.encoding_type.as_ref());
        encode_page(&mut page, url);
        let key_count = i32::try_from(page.contents.len() + page.prefixes.len()).unwrap_or(0);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            max_keys: Some(max_keys),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.next.is_some()),
            next_continuation_token,
            contents: Some(page.contents),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix { prefix: Some(p) })
                    .collect(),
            ),
            prefix: Some(if url { url_encode(&prefix) } else { prefix }),
            delimiter: input.delimiter,
            start_after: input.start_after,
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let l = self.listing_with_bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = input.marker.clone().unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let mut page = list_page(
            &l,
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            &after,
            max_keys,
        );
        let url = wants_url(input.encoding_type.as_ref());
        let next_marker = page
            .next
            .take()
            .map(|m| if url { url_encode(&m) } else { m });
        encode_page(&mut page, url);
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(if url { url_encode(&prefix) } else { prefix }),
            marker: input.marker,
            max_keys: Some(max_keys),
            is_truncated: Some(next_marker.is_some()),
            next_marker,
            contents: Some(page.contents),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix { prefix: Some(p) })
                    .collect(),
            ),
            delimiter: input.delimiter,
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        self.listing_with_bucket(&input.bucket).await?;
        let upload_id = format!("{:016x}{:016x}", self.nonce(), self.nonce());
        let meta = UploadMeta {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: upload_id.clone(),
            content_type: input.content_type,
            meta: meta_map(input.metadata),
            initiated: self.now_ms(),
            nonce: self.nonce(),
        };
        self.catalog()
            .store(&Entry::Upload(meta))
            .await
            .map_err(internal)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        check_part_number(input.part_number)?;
        let (l, up) = self.upload(&input.upload_id).await?;
        if up.meta.bucket != input.bucket || up.meta.key != input.key {
            return Err(s3_error!(
                NoSuchUpload,
                "no upload {} for this key",
                input.upload_id
            ));
        }
        let (data, md5) = self
            .put_data(
                input.body,
                input.content_length,
                input.content_md5.as_deref(),
            )
            .await?;
        let (etag, _) = self
            .commit_part(&l, &input.upload_id, input.part_number, data, md5)
            .await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        check_part_number(input.part_number)?;
        let (l, up) = self.upload(&input.upload_id).await?;
        if up.meta.bucket != input.bucket || up.meta.key != input.key {
            return Err(s3_error!(
                NoSuchUpload,
                "no upload {} for this key",
                input.upload_id
            ));
        }
        let src = self.copy_source(&input.copy_source).await?;
        let range = match input.copy_source_range.as_deref() {
            None => 0..src.size,
            Some(r) => Range::parse(r)
                .ok()
                .and_then(|r| r.check(src.size).ok())
                .ok_or_else(|| s3_error!(InvalidArgument, "invalid copy source range {r}"))?,
        };
        let (data, md5) = match src.data.as_slice() {
            // The whole of a one-piece object: one more reference, no data moves.
            [only] if range == (0..src.size) && only.size > 0 && !src.etag.contains('-') => {
                let r = only
                    .object_ref()
                    .ok_or_else(|| s3_error!(InternalError, "a stored handle does not parse"))?;
                calls::put_existing(&self.client, DATA_NAME, &r)
                    .await
                    .map_err(internal)?;
                let md5 = parse_md5(&src.etag)
                    .ok_or_else(|| s3_error!(InternalError, "a stored ETag does not parse"))?;
                (only.clone(), md5)
            }
            _ => {
                let len = range.end - range.start;
                let body = self.read_body(src.data.clone(), range);
                self.put_data(Some(body), Some(size_i64(len)), None).await?
            }
        };
        let (etag, modified) = self
            .commit_part(&l, &input.upload_id, input.part_number, data, md5)
            .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(timestamp(modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let (l, up) = self.upload(&input.upload_id).await?;
        if up.meta.bucket != input.bucket || up.meta.key != input.key {
            return Err(s3_error!(
                NoSuchUpload,
                "no upload {} for this key",
                input.upload_id
            ));
        }
        let asked = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if asked.is_empty() {
            return Err(s3_error!(MalformedXML, "the upload lists no parts"));
        }
        let stored = l.upload_parts(&input.upload_id);
        let mut chosen: Vec<&Found<PartMeta>> = Vec::new();
        let mut prev = 0;
        for p in &asked {
            let n = p.part_number.unwrap_or(0);
            if n <= prev {
                return Err(s3_error!(InvalidPartOrder));
            }
            prev = n;
            let part = stored
                .get(&n)
                .ok_or_else(|| s3_error!(InvalidPart, "part {n} was not uploaded"))?;
            if let Some(e) = &p.e_tag
                && e.value().trim_matches('"') != part.meta.etag
            {
                return Err(s3_error!(InvalidPart, "part {n} has another ETag"));
            }
            chosen.push(part);
        }
        if let Some((_, init)) = chosen.split_last()
            && let Some(small) = init
                .iter()
                .find(|p| p.meta.data.size < self.config.min_part_size)
        {
            return Err(s3_error!(
                EntityTooSmall,
                "part {} is smaller than {} bytes",
                small.meta.part,
                self.config.min_part_size
            ));
        }
        let mut md5s = Md5::new();
        for p in &chosen {
            md5s.update(parse_md5(&p.meta.etag).unwrap_or_default());
        }
        let digest: [u8; 16] = md5s.finalize().into();
        let etag = format!("{}-{}", hex(&digest), chosen.len());
        let data: Vec<DataRef> = chosen.iter().map(|p| p.meta.data.clone()).collect();
        let meta = ObjectMeta {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            size: data.iter().map(|d| d.size).sum(),
            etag: etag.clone(),
            content_type: up.meta.content_type.clone(),
            meta: up.meta.meta.clone(),
            modified: self.now_ms(),
            nonce: self.nonce(),
            data,
        };
        let c = self.catalog();
        // Dropping the upload entry first settles a race with an abort or another complete:
        // only the one that drops it goes on.
        if !c.claim(up.id, up.refs).await.map_err(internal)? {
            return Err(s3_error!(NoSuchUpload, "no upload {}", input.upload_id));
        }
        // Listed again after the claim: a part stored since is either in this list, or its
        // upload saw the claim and took the part back (see `commit_part`).
        let all_parts = self
            .listing()
            .await?
            .parts
            .remove(&input.upload_id)
            .unwrap_or_default();
        // The object entry takes over the chosen parts' references.
        if let Err(e) = c.store(&Entry::Object(meta)).await {
            for p in &all_parts {
                self.drop_part(p).await?;
            }
            return Err(internal(e));
        }
        let chosen_ids: Vec<_> = chosen.iter().map(|p| p.id).collect();
        for p in &all_parts {
            if chosen_ids.contains(&p.id) {
                c.claim(p.id, p.refs).await.map_err(internal)?;
            } else {
                self.drop_part(p).await?;
            }
        }
        for f in l.all_of(&input.bucket, &input.key) {
            c.remove_object(&f).await.map_err(internal)?;
        }
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(ETag::Strong(etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let (l, up) = self.upload(&input.upload_id).await?;
        if up.meta.bucket != input.bucket || up.meta.key != input.key {
            return Err(s3_error!(
                NoSuchUpload,
                "no upload {} for this key",
                input.upload_id
            ));
        }
        if !self
            .catalog()
            .claim(up.id, up.refs)
            .await
            .map_err(internal)?
        {
            return Err(s3_error!(NoSuchUpload, "no upload {}", input.upload_id));
        }
        for p in l.parts.get(&input.upload_id).into_iter().flatten() {
            self.drop_part(p).await?;
        }
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let (l, up) = self.upload(&input.upload_id).await?;
        if up.meta.bucket != input.bucket || up.meta.key != input.key {
            return Err(s3_error!(
                NoSuchUpload,
                "no upload {} for this key",
                input.upload_id
            ));
        }
        let marker = input.part_number_marker.unwrap_or(0);
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000);
        let all: Vec<Found<PartMeta>> = l
            .upload_parts(&input.upload_id)
            .into_values()
            .filter(|p| p.meta.part > marker)
            .collect();
        let take = usize::try_from(max).unwrap_or(0);
        let truncated = all.len() > take;
        let parts: Vec<Part> = all
            .iter()
            .take(take)
            .map(|p| Part {
                part_number: Some(p.meta.part),
                e_tag: Some(ETag::Strong(p.meta.etag.clone())),
                size: Some(size_i64(p.meta.data.size)),
                last_modified: Some(timestamp(p.meta.modified)),
                ..Default::default()
            })
            .collect();
        let next = parts.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max),
            is_truncated: Some(truncated),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: truncated.then(|| next.unwrap_or(0)),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let l = self.listing_with_bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut ups: Vec<&Found<UploadMeta>> = l
            .uploads
            .values()
            .filter(|u| u.meta.bucket == input.bucket && u.meta.key.starts_with(&prefix))
            .collect();
        ups.sort_by(|a, b| {
            (&a.meta.key, a.meta.initiated, &a.meta.upload_id).cmp(&(
                &b.meta.key,
                b.meta.initiated,
                &b.meta.upload_id,
            ))
        });
        let uploads = ups
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(u.meta.key.clone()),
                upload_id: Some(u.meta.upload_id.clone()),
                initiated: Some(timestamp(u.meta.initiated)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: Some(prefix),
            is_truncated: Some(false),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}

fn parse_md5(hex: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    if hex.len() != 32 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = encode_token("a/b ü");
        assert_eq!(decode_token(&t).ok().as_deref(), Some("a/b ü"));
        assert!(decode_token("zz").is_err());
        assert!(decode_token("abc").is_err());
        assert_eq!(parse_md5(&"ab".repeat(16)), Some([0xab; 16]));
        assert_eq!(parse_md5("x"), None);
    }
}
