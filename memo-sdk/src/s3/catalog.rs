//! Buckets and keys in the user's object index.
//!
//! Every bucket, object key, multipart upload and uploaded part is a small *entry object* in
//! the user's index: its sealed name is `memo-s3/1 ` followed by the entry as JSON, and its
//! content is the same JSON (with, for an object, the handles of its data). The data itself is
//! stored as ordinary memo objects, one per PutObject body or multipart part, and each key
//! holds exactly one reference to each of its data objects. So a delete drops one reference,
//! and the same bytes under two keys are stored once (dedup), while each key keeps its own
//! entry (the keeper keeps one index entry per object id, so names alone could not).
//!
//! Nonces make every entry's bytes, hence its object id, unique.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Client, ClientError, ObjectId, ObjectRef, calls};

/// The prefix of every gateway entry's name in the user's index.
const PREFIX: &str = "memo-s3/1 ";

/// The name data objects are first stored under (dedup keeps the first name of an object).
pub(crate) const DATA_NAME: &str = "memo-s3/data";

/// One data object of an S3 object: a whole PutObject body, or one multipart part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct DataRef {
    /// The `memo-obj1:` handle.
    pub(crate) handle: String,
    /// Its size in bytes.
    pub(crate) size: u64,
}

impl DataRef {
    /// An empty body: memo stores no empty objects, so it references none.
    pub(crate) fn empty() -> Self {
        Self {
            handle: String::new(),
            size: 0,
        }
    }

    pub(crate) fn object_ref(&self) -> Option<ObjectRef> {
        self.handle.parse().ok()
    }
}

/// An S3 object: what HEAD and LIST return, and (in the entry's content) its data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ObjectMeta {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) size: u64,
    /// The ETag without quotes.
    pub(crate) etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) content_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) meta: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch.
    pub(crate) modified: u64,
    pub(crate) nonce: u64,
    /// The data objects, in order (only in the entry's content, never in its name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) data: Vec<DataRef>,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct UploadMeta {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) upload_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) content_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) meta: BTreeMap<String, String>,
    pub(crate) initiated: u64,
    pub(crate) nonce: u64,
}

/// An uploaded part of a multipart upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PartMeta {
    pub(crate) upload_id: String,
    pub(crate) part: i32,
    /// The MD5 of the part, hex, without quotes.
    pub(crate) etag: String,
    pub(crate) modified: u64,
    pub(crate) nonce: u64,
    pub(crate) data: DataRef,
}

/// A bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct BucketMeta {
    pub(crate) bucket: String,
    pub(crate) created: u64,
    pub(crate) nonce: u64,
}

/// One gateway entry in the user's index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "t")]
pub(crate) enum Entry {
    #[serde(rename = "b")]
    Bucket(BucketMeta),
    #[serde(rename = "o")]
    Object(ObjectMeta),
    #[serde(rename = "u")]
    Upload(UploadMeta),
    #[serde(rename = "p")]
    Part(PartMeta),
}

impl Entry {
    /// The name it is stored under: the entry without an object's data handles.
    fn name(&self) -> String {
        let shown = match self {
            Entry::Object(o) => Entry::Object(ObjectMeta {
                data: Vec::new(),
                ..o.clone()
            }),
            other => other.clone(),
        };
        let json = serde_json::to_string(&shown).unwrap_or_default();
        format!("{PREFIX}{json}")
    }

    fn parse_name(name: &str) -> Option<Self> {
        serde_json::from_str(name.strip_prefix(PREFIX)?).ok()
    }
}

/// An entry found in the index, with the id and handle of the object that holds it.
#[derive(Debug, Clone)]
pub(crate) struct Found<T> {
    pub(crate) meta: T,
    pub(crate) id: ObjectId,
    pub(crate) handle: ObjectRef,
    pub(crate) refs: u64,
}

/// Everything the gateway keeps in the index, read at once.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub(crate) buckets: BTreeMap<String, Vec<Found<BucketMeta>>>,
    /// Per bucket and key, every entry (normally one; newest wins, older ones are leftovers
    /// of concurrent writes, cleared by the next write of the key).
    pub(crate) objects: BTreeMap<(String, String), Vec<Found<ObjectMeta>>>,
    pub(crate) uploads: HashMap<String, Found<UploadMeta>>,
    pub(crate) parts: HashMap<String, Vec<Found<PartMeta>>>,
}

impl Listing {
    pub(crate) fn has_bucket(&self, bucket: &str) -> bool {
        self.buckets.contains_key(bucket)
    }

    /// The current entry of a key.
    pub(crate) fn object(&self, bucket: &str, key: &str) -> Option<&Found<ObjectMeta>> {
        self.objects
            .get(&(bucket.to_string(), key.to_string()))?
            .iter()
            .max_by_key(|f| (f.meta.modified, f.meta.nonce))
    }

    /// Every entry of a key.
    pub(crate) fn all_of(&self, bucket: &str, key: &str) -> Vec<Found<ObjectMeta>> {
        self.objects
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// The current entries of a bucket, sorted by key.
    pub(crate) fn bucket_objects<'a>(
        &'a self,
        bucket: &'a str,
    ) -> impl Iterator<Item = &'a Found<ObjectMeta>> + 'a {
        self.objects
            .range((bucket.to_string(), String::new())..)
            .take_while(move |((b, _), _)| b == bucket)
            .filter_map(|(_, v)| v.iter().max_by_key(|f| (f.meta.modified, f.meta.nonce)))
    }

    /// The parts of an upload, newest entry per part number, by part number.
    pub(crate) fn upload_parts(&self, upload_id: &str) -> BTreeMap<i32, Found<PartMeta>> {
        let mut out: BTreeMap<i32, Found<PartMeta>> = BTreeMap::new();
        for p in self.parts.get(upload_id).into_iter().flatten() {
            let newer = out
                .get(&p.meta.part)
                .is_none_or(|q| (p.meta.modified, p.meta.nonce) > (q.meta.modified, q.meta.nonce));
            if newer {
                out.insert(p.meta.part, p.clone());
            }
        }
        out
    }
}

/// The catalog over one client.
pub(crate) struct Catalog<'a> {
    pub(crate) client: &'a Arc<Client>,
}

impl Catalog<'_> {
    /// Reads every gateway entry in the user's index.
    pub(crate) async fn load(&self) -> Result<Listing, ClientError> {
        let mut out = Listing::default();
        for info in calls::list(self.client).await? {
            let Some(entry) = Entry::parse_name(&info.name) else {
                continue;
            };
            let (id, handle, refs) = (info.id, info.object_ref, info.refs);
            match entry {
                Entry::Bucket(meta) => {
                    out.buckets
                        .entry(meta.bucket.clone())
                        .or_default()
                        .push(Found {
                            meta,
                            id,
                            handle,
                            refs,
                        })
                }
                Entry::Object(meta) => out
                    .objects
                    .entry((meta.bucket.clone(), meta.key.clone()))
                    .or_default()
                    .push(Found {
                        meta,
                        id,
                        handle,
                        refs,
                    }),
                Entry::Upload(meta) => {
                    out.uploads.insert(
                        meta.upload_id.clone(),
                        Found {
                            meta,
                            id,
                            handle,
                            refs,
                        },
                    );
                }
                Entry::Part(meta) => {
                    out.parts
                        .entry(meta.upload_id.clone())
                        .or_default()
                        .push(Found {
                            meta,
                            id,
                            handle,
                            refs,
                        })
                }
            }
        }
        Ok(out)
    }

    /// Stores an entry (a new small object in the index).
    pub(crate) async fn store(&self, entry: &Entry) -> Result<ObjectId, ClientError> {
        let body = serde_json::to_vec(entry).unwrap_or_default();
        Ok(calls::put_bytes(self.client, &entry.name(), &body)
            .await?
            .id)
    }

    /// An object entry with its data handles (read from the entry object's content).
    pub(crate) async fn full_object(
        &self,
        found: &Found<ObjectMeta>,
    ) -> Result<ObjectMeta, ClientError> {
        let bytes = calls::get_bytes(self.client.clone(), found.handle.to_string()).await?;
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(Entry::Object(o)) if o.data.iter().map(|d| d.size).sum::<u64>() == o.size => Ok(o),
            _ => Err(ClientError::NotFound(format!(
                "a readable s3 entry for {}/{}",
                found.meta.bucket, found.meta.key
            ))),
        }
    }

    /// Drops an entry object (every reference the user holds to it).
    pub(crate) async fn drop_entry(&self, id: ObjectId, refs: u64) -> Result<(), ClientError> {
        for _ in 0..refs.max(1) {
            calls::delete_id(self.client, id).await?;
        }
        Ok(())
    }

    /// Drops one reference to each data object.
    pub(crate) async fn drop_data(&self, data: &[DataRef]) -> Result<(), ClientError> {
        for d in data {
            if let Some(r) = d.object_ref() {
                calls::delete_id(self.client, r.id()).await?;
            }
        }
        Ok(())
    }

    /// Removes an object entry and the references it held: the entry first, so a failure
    /// half-way leaves an unreferenced data object at worst, never a key whose data is gone.
    /// An entry already removed (by a concurrent writer, which then dropped its references)
    /// is left alone.
    pub(crate) async fn remove_object(&self, found: &Found<ObjectMeta>) -> Result<(), ClientError> {
        let full = self.full_object(found).await;
        if !self.claim(found.id, found.refs).await? {
            return Ok(());
        }
        if let Ok(full) = full {
            self.drop_data(&full.data).await?;
        }
        Ok(())
    }

    /// Drops an entry object; `false` when it was gone already (the keeper refuses a user
    /// holding no reference), so whoever dropped it also drops what it referenced.
    pub(crate) async fn claim(&self, id: ObjectId, refs: u64) -> Result<bool, ClientError> {
        match self.drop_entry(id, refs).await {
            Ok(()) => Ok(true),
            Err(ClientError::Refused(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_hide_data() {
        let o = Entry::Object(ObjectMeta {
            bucket: "b".into(),
            key: "a/k \"x\"".into(),
            size: 3,
            etag: "e".into(),
            content_type: Some("text/plain".into()),
            meta: [("m".to_string(), "v".to_string())].into(),
            modified: 5,
            nonce: 7,
            data: vec![DataRef {
                handle: "h".into(),
                size: 3,
            }],
        });
        let name = o.name();
        assert!(!name.contains("\"h\""), "{name}");
        let Some(Entry::Object(back)) = Entry::parse_name(&name) else {
            panic!("{name}");
        };
        assert_eq!(back.key, "a/k \"x\"");
        assert!(back.data.is_empty());
        assert_eq!(Entry::parse_name("photo.jpg"), None);
        assert_eq!(Entry::parse_name("memo-s3/1 {garbage"), None);
    }
}
