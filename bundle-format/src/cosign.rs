//! Cosign signatures and attestations, checked offline with the vendor's
//! public keys: the bundler before it bundles an image, the installer on a
//! host with no network.
//!
//! What cosign writes, and so what is read here:
//! 1. A **signature** is an OCI manifest whose layers are simple-signing
//!    payloads ([`SIMPLE_SIGNING`]): JSON naming the signed manifest's digest
//!    (`critical.image.docker-manifest-digest`), with the ECDSA P-256
//!    signature over the payload's bytes (SHA-256, ASN.1 DER, base64) in the
//!    layer's [`SIGNATURE_ANNOTATION`].
//! 2. An **attestation** is an OCI manifest whose layers are DSSE envelopes
//!    ([`DSSE_ENVELOPE`]) around an in-toto statement; each envelope
//!    signature is over the DSSE pre-authentication encoding of the payload
//!    ([`pae`]), and the statement's `subject` names the image's digest.
//! 3. Either is found under cosign's tag (`sha256-<hex>.sig`, `.att`) or as
//!    an OCI 1.1 referrer whose `subject` is the image.
//!
//! Keyless signatures (Fulcio certificates, Rekor entries) are not checked
//! here: only a signature that verifies under a key given here counts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use manifest_schema::{
    Artifact, ArtifactKind, CosignKey, Descriptor, Digest, Manifest, Provenance,
};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::bundle::{EntryKind, EntrySink};

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Media type of a DSSE envelope layer.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The artifact type of a cosign signature stored as an OCI 1.1 referrer.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The layer annotation that holds a payload's signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation that names an attestation's predicate type.
pub const PREDICATE_ANNOTATION: &str = "predicateType";
/// The `type` a simple-signing payload must have.
const PAYLOAD_TYPE: &str = "cosign container image signature";
/// The DSSE payload type of an in-toto statement.
const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The largest artifact manifest or payload read.
pub const MAX_ARTIFACT_BYTES: u64 = 64 << 20;

/// What is wrong with a key, a manifest or a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CosignError(String);

fn err(s: impl Into<String>) -> CosignError {
    CosignError(s.into())
}

/// A cosign public key: ECDSA P-256, from the PEM `cosign generate-key-pair`
/// writes (`-----BEGIN PUBLIC KEY-----`, a DER `SubjectPublicKeyInfo`).
#[derive(Clone)]
pub struct CosignPublicKey {
    id: Digest,
    pem: String,
    key: VerifyingKey,
}

impl fmt::Debug for CosignPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignPublicKey({})", self.id)
    }
}

impl CosignPublicKey {
    /// Parses a PEM public key; anything but one P-256 key is an error.
    pub fn from_pem(text: &str) -> Result<Self, CosignError> {
        let body = text
            .trim()
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .and_then(|t| t.strip_suffix("-----END PUBLIC KEY-----"))
            .ok_or_else(|| {
                err("not a PEM public key (expected -----BEGIN PUBLIC KEY----- … -----END PUBLIC KEY-----, as `cosign generate-key-pair` writes cosign.pub)")
            })?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| err(format!("the PEM body is not base64: {e}")))?;
        let key = p256::PublicKey::from_public_key_der(&der)
            .map_err(|e| err(format!("not an ECDSA P-256 public key: {e}")))?;
        Ok(CosignPublicKey {
            id: Digest::from_sha256_bytes(&Sha256::digest(&der).into()),
            pem: text.trim().to_owned() + "\n",
            key: VerifyingKey::from(key),
        })
    }

    /// A key the signed manifest carries, checked against its id.
    pub fn from_manifest(k: &CosignKey) -> Result<Self, CosignError> {
        let key = Self::from_pem(&k.pem)?;
        if key.id != k.id {
            return Err(err(format!(
                "cosign key {} has id {} when parsed",
                k.id, key.id
            )));
        }
        Ok(key)
    }

    /// sha256 of the DER key.
    pub fn id(&self) -> &Digest {
        &self.id
    }

    /// The key as the manifest lists it.
    pub fn to_manifest(&self) -> CosignKey {
        CosignKey {
            id: self.id.clone(),
            pem: self.pem.clone(),
        }
    }

    fn verifies(&self, message: &[u8], b64_signature: &str) -> bool {
        let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64_signature.trim()) else {
            return false;
        };
        let Ok(sig) = Signature::from_der(&der) else {
            return false;
        };
        self.key.verify(message, &sig).is_ok()
    }
}

/// A key id as shown to people: `sha256:` and the first 12 hex digits.
pub fn short_id(id: &Digest) -> String {
    format!("sha256:{}", &id.hex()[..12])
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciManifest {
    #[serde(default)]
    media_type: Option<String>,
    config: OciDescriptor,
    #[serde(default)]
    layers: Vec<OciDescriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciDescriptor {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl OciDescriptor {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
        }
    }
}

fn parse_manifest(bytes: &[u8]) -> Result<OciManifest, CosignError> {
    let m: OciManifest = serde_json::from_slice(bytes)
        .map_err(|e| err(format!("not an OCI image manifest: {e}")))?;
    if let Some(t) = &m.media_type {
        if t != "application/vnd.oci.image.manifest.v1+json"
            && t != "application/vnd.docker.distribution.manifest.v2+json"
        {
            return Err(err(format!("media type {t:?} is not an image manifest")));
        }
    }
    Ok(m)
}

/// Reads a signature or attestation manifest as the registry served it:
/// what it holds (by its layers' media types), its config and layers, and
/// an attestation's predicate types. `None` for a manifest that holds
/// neither (another tool's referrer, a new-format sigstore bundle).
pub fn describe(manifest: &Descriptor, bytes: &[u8]) -> Result<Option<Artifact>, CosignError> {
    let m = parse_manifest(bytes)?;
    let has = |t: &str| !m.layers.is_empty() && m.layers.iter().all(|l| l.media_type == t);
    let kind = if has(SIMPLE_SIGNING) {
        ArtifactKind::Signature
    } else if has(DSSE_ENVELOPE) {
        ArtifactKind::Attestation
    } else {
        return Ok(None);
    };
    for l in &m.layers {
        if l.size > MAX_ARTIFACT_BYTES {
            return Err(err(format!(
                "layer {} is {} bytes, more than the {MAX_ARTIFACT_BYTES} a payload may have",
                l.digest, l.size
            )));
        }
    }
    Ok(Some(Artifact {
        kind,
        tag: None,
        manifest: manifest.clone(),
        config: m.config.descriptor(),
        layers: m.layers.iter().map(OciDescriptor::descriptor).collect(),
        predicate_types: match kind {
            ArtifactKind::Signature => Vec::new(),
            ArtifactKind::Attestation => m
                .layers
                .iter()
                .map(|l| {
                    l.annotations
                        .get(PREDICATE_ANNOTATION)
                        .cloned()
                        .unwrap_or_default()
                })
                .collect(),
        },
    }))
}

/// The DSSE pre-authentication encoding of a payload: what an envelope's
/// signatures are over.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    v.extend_from_slice(payload);
    v
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
    #[serde(default)]
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement<'a> {
    predicate_type: String,
    #[serde(default)]
    subject: Vec<StatementSubject>,
    #[serde(borrow)]
    predicate: Option<&'a serde_json::value::RawValue>,
}

#[derive(Debug, Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Debug, Deserialize)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: CriticalImage,
}

#[derive(Debug, Deserialize)]
struct CriticalImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

fn envelope_payload(envelope: &[u8]) -> Result<(Envelope, Vec<u8>), CosignError> {
    let e: Envelope =
        serde_json::from_slice(envelope).map_err(|e| err(format!("not a DSSE envelope: {e}")))?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&e.payload)
        .map_err(|e| err(format!("the envelope's payload is not base64: {e}")))?;
    Ok((e, payload))
}

/// An attested predicate exactly as attested (the bytes of the statement's
/// `predicate`), with its type: an SBOM for `https://spdx.dev/Document` or
/// `https://cyclonedx.org/bom`.
pub fn predicate(envelope: &[u8]) -> Result<(String, Vec<u8>), CosignError> {
    let (_, payload) = envelope_payload(envelope)?;
    let s: Statement<'_> = serde_json::from_slice(&payload).map_err(|e| {
        err(format!(
            "the envelope does not hold an in-toto statement: {e}"
        ))
    })?;
    let p = s
        .predicate
        .ok_or_else(|| err("the statement has no predicate"))?;
    Ok((s.predicate_type, p.get().as_bytes().to_vec()))
}

/// True for the predicate types of SBOMs (SPDX, CycloneDX).
pub fn is_sbom(predicate_type: &str) -> bool {
    predicate_type.starts_with("https://spdx.dev/Document")
        || predicate_type.starts_with("https://cyclonedx.org/bom")
}

/// Why an image's provenance does not meet the policy. Each names the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvenanceError {
    /// Nothing signed it.
    #[error("image {image} has no cosign signature (looked for the tag sha256-{hex}.sig and OCI referrers of {subject}); hint: the vendor signs it with `cosign sign --key …` and builds the bundle again (the spec's policy or --cosign-key requires a signature)")]
    NoSignature {
        /// The image.
        image: String,
        /// The signed digest.
        subject: Digest,
        /// Its hex.
        hex: String,
    },
    /// A trusted key signed, but another image.
    #[error("image {image}: the signature by key {key} is over another image ({named}), not {subject}: a signature copied from another image is refused; hint: the vendor signs {subject} itself and builds the bundle again")]
    OtherDigest {
        /// The image.
        image: String,
        /// The key.
        key: String,
        /// The digest the payload names.
        named: String,
        /// The digest pinned.
        subject: Digest,
    },
    /// No signature verifies under a required key.
    #[error("image {image} is not signed by key {key}: no signature verifies under it (another key signed it, or the payload was altered); hint: check which key the spec's policy or --cosign-key names; the vendor signs {subject} with it and builds the bundle again")]
    NotSignedBy {
        /// The image.
        image: String,
        /// The key.
        key: String,
        /// The digest pinned.
        subject: Digest,
    },
    /// An attestation that does not hold up.
    #[error("image {image}: attestation {predicate_type:?} ({layer}) {reason}; hint: attest {subject} again with a policy key")]
    Attestation {
        /// The image.
        image: String,
        /// Its predicate type.
        predicate_type: String,
        /// The envelope.
        layer: Digest,
        /// What is wrong.
        reason: String,
        /// The digest pinned.
        subject: Digest,
    },
    /// A manifest or payload that cannot be read.
    #[error("image {image}: {what}: {reason}")]
    Malformed {
        /// The image.
        image: String,
        /// What.
        what: String,
        /// Why.
        reason: String,
    },
}

/// What verified, per key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// Keys with a signature over the subject.
    pub signed_by: BTreeSet<Digest>,
    /// Signature layers read.
    pub signatures: usize,
    /// One per attestation layer.
    pub attestations: Vec<CheckedAttestation>,
}

/// One attestation layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedAttestation {
    /// The statement's predicate type.
    pub predicate_type: String,
    /// The envelope blob.
    pub layer: Digest,
    /// Keys whose envelope signature verifies, over a statement about the
    /// subject.
    pub signed_by: BTreeSet<Digest>,
    /// Set when a key verified it but the statement is about another image.
    pub other_subject: Option<String>,
}

/// Checks the carried artifacts of one image under `keys`, and that every
/// key in `required` signed it and vouches for each attestation. `blob`
/// gives a carried blob's bytes (already checked against its digest).
pub fn check(
    image: &str,
    prov: &Provenance,
    keys: &[CosignPublicKey],
    required: &[Digest],
    blob: &dyn Fn(&Digest) -> Option<Vec<u8>>,
) -> Result<Checked, ProvenanceError> {
    let subject = &prov.subject.digest;
    let malformed = |what: String, reason: String| ProvenanceError::Malformed {
        image: image.to_owned(),
        what,
        reason,
    };
    let get = |d: &Digest, what: &str| {
        blob(d).ok_or_else(|| {
            malformed(
                format!("{what} {d}"),
                "is not in the bundle; hint: build the bundle again".into(),
            )
        })
    };
    let mut out = Checked::default();
    let mut other: BTreeMap<Digest, String> = BTreeMap::new();
    for a in &prov.artifacts {
        let bytes = get(&a.manifest.digest, "artifact manifest")?;
        let m = parse_manifest(&bytes)
            .map_err(|e| malformed(format!("artifact manifest {}", a.manifest.digest), e.0))?;
        for l in &m.layers {
            let payload = get(&l.digest, "payload")?;
            match a.kind {
                ArtifactKind::Signature => {
                    out.signatures += 1;
                    let sig = l
                        .annotations
                        .get(SIGNATURE_ANNOTATION)
                        .map(String::as_str)
                        .unwrap_or("");
                    for k in keys.iter().filter(|k| k.verifies(&payload, sig)) {
                        let named = serde_json::from_slice::<SimpleSigning>(&payload)
                            .ok()
                            .filter(|p| p.critical.kind.eq_ignore_ascii_case(PAYLOAD_TYPE))
                            .map(|p| p.critical.image.digest);
                        match named {
                            Some(d) if d == subject.as_str() => {
                                out.signed_by.insert(k.id.clone());
                            }
                            Some(d) => {
                                other.insert(k.id.clone(), d);
                            }
                            None => {
                                other.insert(k.id.clone(), "a payload that is not cosign's".into());
                            }
                        }
                    }
                }
                ArtifactKind::Attestation => {
                    out.attestations
                        .push(check_envelope(&payload, &l.digest, subject, keys));
                }
            }
        }
    }
    for id in required {
        if out.signed_by.contains(id) {
            continue;
        }
        let key = short_id(id);
        return Err(if out.signatures == 0 {
            ProvenanceError::NoSignature {
                image: image.to_owned(),
                subject: subject.clone(),
                hex: subject.hex().to_owned(),
            }
        } else if let Some(named) = other.get(id) {
            ProvenanceError::OtherDigest {
                image: image.to_owned(),
                key,
                named: named.clone(),
                subject: subject.clone(),
            }
        } else {
            ProvenanceError::NotSignedBy {
                image: image.to_owned(),
                key,
                subject: subject.clone(),
            }
        });
    }
    if !required.is_empty() {
        for a in &out.attestations {
            if a.signed_by.iter().any(|k| required.contains(k)) {
                continue;
            }
            return Err(ProvenanceError::Attestation {
                image: image.to_owned(),
                predicate_type: a.predicate_type.clone(),
                layer: a.layer.clone(),
                reason: match &a.other_subject {
                    Some(s) => format!("is about another image ({s})"),
                    None => "is not signed by a policy key (or was altered)".into(),
                },
                subject: subject.clone(),
            });
        }
    }
    Ok(out)
}

fn check_envelope(
    bytes: &[u8],
    layer: &Digest,
    subject: &Digest,
    keys: &[CosignPublicKey],
) -> CheckedAttestation {
    let mut out = CheckedAttestation {
        predicate_type: String::new(),
        layer: layer.clone(),
        signed_by: BTreeSet::new(),
        other_subject: None,
    };
    let Ok((env, payload)) = envelope_payload(bytes) else {
        return out;
    };
    let statement = serde_json::from_slice::<Statement<'_>>(&payload).ok();
    if let Some(s) = &statement {
        out.predicate_type = s.predicate_type.clone();
    }
    if env.payload_type != IN_TOTO {
        return out;
    }
    let signed = pae(&env.payload_type, &payload);
    for k in keys {
        if !env.signatures.iter().any(|s| k.verifies(&signed, &s.sig)) {
            continue;
        }
        let about: Vec<String> = statement
            .iter()
            .flat_map(|s| &s.subject)
            .filter_map(|s| s.digest.get("sha256").map(|h| format!("sha256:{h}")))
            .collect();
        if about.iter().any(|d| d == subject.as_str()) {
            out.signed_by.insert(k.id.clone());
        } else {
            out.other_subject = Some(if about.is_empty() {
                "no subject".into()
            } else {
                about.join(", ")
            });
        }
    }
    out
}

/// An [`EntrySink`] that keeps the provenance's blobs in memory as they
/// stream by (they come before the image blobs, and are small), and passes
/// every entry on.
#[derive(Debug)]
pub struct KeepProvenance<S> {
    inner: S,
    current: Option<(Digest, Vec<u8>)>,
    kept: BTreeMap<Digest, Vec<u8>>,
}

impl<S: EntrySink> KeepProvenance<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        KeepProvenance {
            inner,
            current: None,
            kept: BTreeMap::new(),
        }
    }

    /// The kept blobs (each checked against its digest by the reader), and
    /// the inner sink.
    pub fn into_parts(self) -> (BTreeMap<Digest, Vec<u8>>, S) {
        (self.kept, self.inner)
    }
}

impl<S: EntrySink> EntrySink for KeepProvenance<S> {
    fn begin(&mut self, name: &str, kind: EntryKind<'_>) -> std::io::Result<()> {
        self.current = match kind {
            EntryKind::Provenance(d) if d.size <= MAX_ARTIFACT_BYTES => {
                Some((d.digest.clone(), Vec::with_capacity(d.size as usize)))
            }
            _ => None,
        };
        self.inner.begin(name, kind)
    }
    fn data(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if let Some((_, v)) = &mut self.current {
            v.extend_from_slice(chunk);
        }
        self.inner.data(chunk)
    }
    fn finish(&mut self) -> std::io::Result<()> {
        if let Some((d, v)) = self.current.take() {
            self.kept.insert(d, v);
        }
        self.inner.finish()
    }
}

/// What was checked of one pinned image.
#[derive(Debug, Clone)]
pub struct ImageProvenance {
    /// The pinned reference.
    pub source: String,
    /// The names compose uses for it.
    pub names: Vec<String>,
    /// What verified.
    pub checked: Checked,
}

/// Checks every pinned image of a verified bundle: each must meet the
/// manifest's own policy (its `required_keys`) and, when `keys` are given
/// (`installer verify --cosign-key`), be signed by each of them too. The
/// artifacts are checked under the manifest's keys and `keys`.
pub fn check_bundle(
    m: &Manifest,
    blobs: &BTreeMap<Digest, Vec<u8>>,
    keys: &[CosignPublicKey],
) -> Result<Vec<ImageProvenance>, ProvenanceError> {
    let mut all: Vec<CosignPublicKey> = Vec::new();
    for k in &m.cosign_keys {
        let key = CosignPublicKey::from_manifest(k).map_err(|e| ProvenanceError::Malformed {
            image: "(every image)".into(),
            what: format!("cosign key {}", k.id),
            reason: e.0,
        })?;
        all.push(key);
    }
    for k in keys {
        if !all.iter().any(|a| a.id == k.id) {
            all.push(k.clone());
        }
    }
    let mut sources: Vec<&str> = Vec::new();
    for i in &m.images {
        if !sources.contains(&i.source.as_str()) {
            sources.push(&i.source);
        }
    }
    let mut out = Vec::new();
    for source in sources {
        let names: Vec<String> = m
            .images
            .iter()
            .filter(|i| i.source == source)
            .map(|i| i.name.clone())
            .fold(Vec::new(), |mut v, n| {
                if !v.contains(&n) {
                    v.push(n);
                }
                v
            });
        let pinned = || {
            let digest = source
                .rsplit_once('@')
                .and_then(|(_, d)| d.parse::<Digest>().ok())
                .or_else(|| {
                    m.images
                        .iter()
                        .find(|i| i.source == source)
                        .map(|i| i.manifest.digest.clone())
                })
                .unwrap_or_else(|| Digest::from_sha256_bytes(&[0; 32]));
            Provenance {
                source: source.to_owned(),
                subject: Descriptor {
                    media_type: String::new(),
                    digest,
                    size: 0,
                },
                required_keys: Vec::new(),
                artifacts: Vec::new(),
            }
        };
        let p = m.provenance_of(source).cloned().unwrap_or_else(pinned);
        let mut required = p.required_keys.clone();
        for k in keys {
            if !required.contains(&k.id) {
                required.push(k.id.clone());
            }
        }
        let checked = check(source, &p, &all, &required, &|d| blobs.get(d).cloned())?;
        if !p.artifacts.is_empty() {
            tie_to_subject(m, source, &p.subject, blobs)?;
        }
        out.push(ImageProvenance {
            source: source.to_owned(),
            names,
            checked,
        });
    }
    Ok(out)
}

/// A signature is over the pinned digest; the images the bundle loads must
/// be that manifest, or be listed by that index (carried, so this holds
/// offline).
fn tie_to_subject(
    m: &Manifest,
    source: &str,
    subject: &Descriptor,
    blobs: &BTreeMap<Digest, Vec<u8>>,
) -> Result<(), ProvenanceError> {
    let entries: Vec<_> = m.images.iter().filter(|i| i.source == source).collect();
    if entries.iter().all(|i| i.manifest.digest == subject.digest) {
        return Ok(());
    }
    let malformed = |reason: String| ProvenanceError::Malformed {
        image: source.to_owned(),
        what: format!("index {}", subject.digest),
        reason,
    };
    let bytes = blobs
        .get(&subject.digest)
        .ok_or_else(|| malformed("is not in the bundle; hint: build the bundle again".into()))?;
    #[derive(Deserialize)]
    struct Index {
        manifests: Vec<OciDescriptor>,
    }
    let index: Index = serde_json::from_slice(bytes)
        .map_err(|e| malformed(format!("is not an image index: {e}")))?;
    for e in entries {
        if !index
            .manifests
            .iter()
            .any(|d| d.digest == e.manifest.digest)
        {
            return Err(malformed(format!(
                "does not list {} ({}), which the bundle loads as {}: the signatures do not cover it",
                e.manifest.digest, e.platform, e.name
            )));
        }
    }
    Ok(())
}

/// One line per pinned image for people: who signed it, and its SBOMs and
/// other attestations (absent ones said to be absent).
pub fn summary_lines(images: &[ImageProvenance]) -> Vec<String> {
    images
        .iter()
        .map(|i| {
            let c = &i.checked;
            let signed = if !c.signed_by.is_empty() {
                format!(
                    "signed by {}",
                    c.signed_by
                        .iter()
                        .map(short_id)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else if c.signatures > 0 {
                format!("{} signature(s), by no key known here", c.signatures)
            } else {
                "no signature".to_owned()
            };
            let (sboms, others): (Vec<_>, Vec<_>) = c
                .attestations
                .iter()
                .partition(|a| is_sbom(&a.predicate_type));
            let list = |v: &[&CheckedAttestation]| {
                v.iter()
                    .map(|a| {
                        let by = if a.signed_by.is_empty() {
                            "unverified".to_owned()
                        } else {
                            a.signed_by
                                .iter()
                                .map(short_id)
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        format!("{} ({by})", a.predicate_type)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut line = format!(
                "{}: {signed}; SBOM: {}",
                i.names.join(", "),
                if sboms.is_empty() {
                    "none attested".to_owned()
                } else {
                    list(&sboms)
                }
            );
            if !others.is_empty() {
                line.push_str(&format!("; attestations: {}", list(&others)));
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::EncodePublicKey as _;

    struct Vendor {
        sk: SigningKey,
        key: CosignPublicKey,
    }

    fn vendor(seed: u8) -> Vendor {
        let sk = SigningKey::from_slice(&[seed; 32]).expect("scalar");
        let pem = sk
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .expect("pem");
        Vendor {
            key: CosignPublicKey::from_pem(&pem).expect("key"),
            sk,
        }
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    fn sha(b: &[u8]) -> Digest {
        Digest::from_sha256_bytes(&Sha256::digest(b).into())
    }

    fn desc(media_type: &str, b: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: sha(b),
            size: b.len() as u64,
        }
    }

    /// A carried artifact: its manifest and blobs, as the bundle holds them.
    struct Store(BTreeMap<Digest, Vec<u8>>);

    impl Store {
        fn put(&mut self, b: Vec<u8>) -> Digest {
            let d = sha(&b);
            self.0.insert(d.clone(), b);
            d
        }
        fn artifact(&mut self, layer_type: &str, layers: Vec<(Vec<u8>, String)>) -> Artifact {
            let config = b"{}".to_vec();
            let cd = desc("application/vnd.oci.image.config.v1+json", &config);
            self.put(config);
            let ls: Vec<serde_json::Value> = layers
                .into_iter()
                .map(|(payload, sig)| {
                    let d = desc(layer_type, &payload);
                    self.put(payload);
                    serde_json::json!({"mediaType": layer_type, "digest": d.digest, "size": d.size,
                        "annotations": {SIGNATURE_ANNOTATION: sig, PREDICATE_ANNOTATION: "https://spdx.dev/Document"}})
                })
                .collect();
            let m = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": cd.media_type, "digest": cd.digest, "size": cd.size},
                "layers": ls,
            }))
            .expect("json");
            let md = desc("application/vnd.oci.image.manifest.v1+json", &m);
            self.put(m.clone());
            describe(&md, &m).expect("reads").expect("cosign")
        }
    }

    fn payload(digest: &Digest) -> Vec<u8> {
        format!(r#"{{"critical":{{"identity":{{"docker-reference":"r/x"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#).into_bytes()
    }

    fn sign(v: &Vendor, msg: &[u8]) -> String {
        let s: Signature = v.sk.sign(msg);
        b64(s.to_der().as_bytes())
    }

    fn statement(digest: &Digest) -> Vec<u8> {
        format!(r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[{{"name":"r/x","digest":{{"sha256":"{}"}}}}],"predicate":{{"spdxVersion": "SPDX-2.3","name":"x"}}}}"#, digest.hex()).into_bytes()
    }

    fn envelope(v: &Vendor, statement: &[u8]) -> Vec<u8> {
        let sig = sign(v, &pae(IN_TOTO, statement));
        serde_json::to_vec(
            &serde_json::json!({"payloadType": IN_TOTO, "payload": b64(statement),
            "signatures": [{"keyid": "", "sig": sig}]}),
        )
        .expect("json")
    }

    const IMAGE: &str = "r/x@sha256:…";

    fn subject() -> Descriptor {
        desc(
            "application/vnd.oci.image.manifest.v1+json",
            b"the image manifest",
        )
    }

    fn prov(artifacts: Vec<Artifact>) -> Provenance {
        Provenance {
            source: IMAGE.into(),
            subject: subject(),
            required_keys: Vec::new(),
            artifacts,
        }
    }

    fn run(store: &Store, p: &Provenance, keys: &[&Vendor]) -> Result<Checked, ProvenanceError> {
        let ks: Vec<CosignPublicKey> = keys.iter().map(|v| v.key.clone()).collect();
        let req: Vec<Digest> = ks.iter().map(|k| k.id().clone()).collect();
        check(IMAGE, p, &ks, &req, &|d| store.0.get(d).cloned())
    }

    #[test]
    fn a_signature_and_an_attestation_by_the_key_verify() {
        let v = vendor(7);
        let mut s = Store(BTreeMap::new());
        let p = payload(&subject().digest);
        let sig = sign(&v, &p);
        let st = statement(&subject().digest);
        let a = s.artifact(SIMPLE_SIGNING, vec![(p, sig)]);
        let b = s.artifact(DSSE_ENVELOPE, vec![(envelope(&v, &st), String::new())]);
        assert_eq!(b.predicate_types, vec!["https://spdx.dev/Document"]);
        let c = run(&s, &prov(vec![a, b.clone()]), &[&v]).expect("verifies");
        assert!(c.signed_by.contains(v.key.id()));
        assert_eq!(
            c.attestations[0].predicate_type,
            "https://spdx.dev/Document"
        );
        let (t, raw) = predicate(&s.0[&b.layers[0].digest]).expect("predicate");
        assert_eq!(t, "https://spdx.dev/Document");
        assert_eq!(raw, br#"{"spdxVersion": "SPDX-2.3","name":"x"}"#);
    }

    #[test]
    fn no_signature_is_refused() {
        let v = vendor(7);
        let s = Store(BTreeMap::new());
        let e = run(&s, &prov(vec![]), &[&v]).unwrap_err();
        assert!(matches!(e, ProvenanceError::NoSignature { .. }), "{e}");
        assert!(e.to_string().contains(IMAGE));
    }

    #[test]
    fn another_key_is_refused() {
        let (v, w) = (vendor(7), vendor(9));
        let mut s = Store(BTreeMap::new());
        let p = payload(&subject().digest);
        let sig = sign(&w, &p);
        let a = s.artifact(SIMPLE_SIGNING, vec![(p, sig)]);
        let e = run(&s, &prov(vec![a]), &[&v]).unwrap_err();
        assert!(matches!(e, ProvenanceError::NotSignedBy { .. }), "{e}");
    }

    #[test]
    fn a_flipped_payload_byte_is_refused() {
        let v = vendor(7);
        let mut s = Store(BTreeMap::new());
        let mut p = payload(&subject().digest);
        let sig = sign(&v, &p);
        let n = p.len() - 3;
        p[n] ^= 1;
        let a = s.artifact(SIMPLE_SIGNING, vec![(p, sig)]);
        let e = run(&s, &prov(vec![a]), &[&v]).unwrap_err();
        assert!(matches!(e, ProvenanceError::NotSignedBy { .. }), "{e}");
    }

    #[test]
    fn a_signature_over_another_digest_is_refused() {
        let v = vendor(7);
        let mut s = Store(BTreeMap::new());
        let p = payload(&sha(b"another image"));
        let sig = sign(&v, &p);
        let a = s.artifact(SIMPLE_SIGNING, vec![(p, sig)]);
        let e = run(&s, &prov(vec![a]), &[&v]).unwrap_err();
        assert!(matches!(e, ProvenanceError::OtherDigest { .. }), "{e}");
        assert!(e.to_string().contains(sha(b"another image").as_str()));
    }

    #[test]
    fn an_attestation_for_another_image_is_refused() {
        let v = vendor(7);
        let mut s = Store(BTreeMap::new());
        let p = payload(&subject().digest);
        let sig = sign(&v, &p);
        let a = s.artifact(SIMPLE_SIGNING, vec![(p, sig)]);
        let st = statement(&sha(b"another image"));
        let b = s.artifact(DSSE_ENVELOPE, vec![(envelope(&v, &st), String::new())]);
        let e = run(&s, &prov(vec![a, b]), &[&v]).unwrap_err();
        assert!(
            matches!(&e, ProvenanceError::Attestation { reason, .. } if reason.contains("another image")),
            "{e}"
        );
    }

    #[test]
    fn without_a_policy_nothing_is_required_but_what_verifies_is_reported() {
        let (v, w) = (vendor(7), vendor(9));
        let mut s = Store(BTreeMap::new());
        let p = payload(&subject().digest);
        let sig = sign(&w, &p);
        let a = s.artifact(SIMPLE_SIGNING, vec![(p, sig)]);
        let ks = [v.key.clone(), w.key.clone()];
        let c = check(IMAGE, &prov(vec![a]), &ks, &[], &|d| s.0.get(d).cloned()).expect("ok");
        assert_eq!(c.signed_by.iter().collect::<Vec<_>>(), vec![w.key.id()]);
    }

    /// A manifest stand-in: one image, pinned, with `prov` and the keys.
    fn manifest(prov: Provenance, keys: &[&Vendor]) -> Manifest {
        let mut m: Manifest =
            serde_json::from_str(include_str!("../../fuzz/seeds/manifest/manifest.json"))
                .expect("seed manifest");
        m.images.truncate(1);
        m.images[0].source = IMAGE.into();
        m.images[0].manifest = prov.subject.clone();
        m.cosign_keys = keys.iter().map(|v| v.key.to_manifest()).collect();
        m.provenance = vec![prov];
        m
    }

    #[test]
    fn a_bundle_is_held_to_the_policy_its_manifest_carries() {
        let (v, w) = (vendor(7), vendor(9));
        let mut s = Store(BTreeMap::new());
        let p = payload(&subject().digest);
        let sig = sign(&w, &p);
        let a = s.artifact(SIMPLE_SIGNING, vec![(p, sig)]);
        let mut pv = prov(vec![a]);
        // No policy: what verifies is reported, nothing is required.
        let m = manifest(pv.clone(), &[&v, &w]);
        let got = check_bundle(&m, &s.0, &[]).expect("no policy");
        assert_eq!(got[0].checked.signed_by.len(), 1);
        // The manifest requires v, whose signature is not there.
        pv.required_keys = vec![v.key.id().clone()];
        let m = manifest(pv.clone(), &[&v, &w]);
        let e = check_bundle(&m, &s.0, &[]).unwrap_err();
        assert!(matches!(e, ProvenanceError::NotSignedBy { .. }), "{e}");
        // --cosign-key adds a requirement the manifest does not make.
        pv.required_keys.clear();
        let m = manifest(pv, &[&w]);
        let e = check_bundle(&m, &s.0, std::slice::from_ref(&v.key)).unwrap_err();
        assert!(matches!(e, ProvenanceError::NotSignedBy { .. }), "{e}");
        assert!(check_bundle(&m, &s.0, std::slice::from_ref(&w.key)).is_ok());
        // A carried blob gone missing is an error, not a pass.
        let mut pv = prov(vec![s.artifact(
            SIMPLE_SIGNING,
            vec![(
                payload(&subject().digest),
                sign(&v, &payload(&subject().digest)),
            )],
        )]);
        pv.required_keys = vec![v.key.id().clone()];
        let m = manifest(pv, &[&v]);
        assert!(check_bundle(&m, &s.0, &[]).is_ok());
        let e = check_bundle(&m, &BTreeMap::new(), &[]).unwrap_err();
        assert!(matches!(e, ProvenanceError::Malformed { .. }), "{e}");
    }

    #[test]
    fn a_signed_index_must_list_the_manifests_the_bundle_loads() {
        let v = vendor(7);
        let mut s = Store(BTreeMap::new());
        let listed = desc(
            "application/vnd.oci.image.manifest.v1+json",
            b"amd64 manifest",
        );
        let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": listed.media_type, "digest": listed.digest, "size": listed.size}]}))
        .expect("json");
        let subject = desc("application/vnd.oci.image.index.v1+json", &index);
        s.put(index);
        let p = payload(&subject.digest);
        let sig = sign(&v, &p);
        let mut pv = prov(vec![s.artifact(SIMPLE_SIGNING, vec![(p, sig)])]);
        pv.subject = subject;
        pv.required_keys = vec![v.key.id().clone()];
        let mut m = manifest(pv, &[&v]);
        m.images[0].manifest = listed;
        assert!(check_bundle(&m, &s.0, &[]).is_ok());
        m.images[0].manifest = desc("application/vnd.oci.image.manifest.v1+json", b"another");
        let e = check_bundle(&m, &s.0, &[]).unwrap_err();
        assert!(e.to_string().contains("does not list"), "{e}");
    }

    #[test]
    fn keys_parse_only_from_p256_pem() {
        assert!(CosignPublicKey::from_pem("not a key").is_err());
        let ed = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let e = CosignPublicKey::from_pem(ed).unwrap_err();
        assert!(e.to_string().contains("P-256"), "{e}");
        let v = vendor(7);
        let again = CosignPublicKey::from_manifest(&v.key.to_manifest()).expect("round trip");
        assert_eq!(again.id(), v.key.id());
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }
}
